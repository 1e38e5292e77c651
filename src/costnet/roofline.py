"""Analytical time of a piece of work from a device's peaks: the one place it is computed.

* compute time ``C = FLOPs / (peak FLOP/s * efficiency)``;
* memory time ``M = bytes / (bandwidth * efficiency)``;
* the roofline bound ``max(C, M)`` (Williams, Waterman & Patterson, "Roofline", CACM 2009):
  no kernel runs faster than either roof;
* PALEO's ``R + C + W`` (Qi, Sparks & Talwalkar, ICLR 2017, Sec. 3.1): reading, computing
  and writing one after the other, each at a platform percent of peak (PPP) as
  ``efficiency``; here ``paleo_ms`` with reads and writes together as ``nbytes``.

Every function takes floats or NumPy arrays (broadcast) and returns milliseconds. Peaks
are in GFLOP/s and bandwidths in GB/s; ``gb_bytes`` is the bytes in one GB of the
bandwidth figure (10^9 for spec sheets; PALEO's presets use 2^30).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Number = TypeVar("Number", float, np.ndarray)

GB = 1e9  # bytes in a spec sheet's GB/s


def compute_ms(flops: Number, peak_gflops: Number, efficiency: Number | float = 1.0) -> Number:
    """``C``: ``flops`` at ``peak_gflops * efficiency``, in ms."""
    return flops / (peak_gflops * 1e6 * efficiency)


def memory_ms(nbytes: Number, bandwidth_gbs: Number, efficiency: Number | float = 1.0,
              gb_bytes: float = GB) -> Number:
    """``R`` or ``W``: ``nbytes`` moved at ``bandwidth_gbs * efficiency``, in ms."""
    return nbytes / (bandwidth_gbs * (gb_bytes / 1e3) * efficiency)


def roofline_ms(flops: Number, nbytes: Number, peak_gflops: Number, bandwidth_gbs: Number,
                efficiency: Number | float = 1.0) -> Number:
    """The roofline bound ``max(C, M)``, both roofs at ``efficiency`` of peak, in ms."""
    return np.maximum(compute_ms(flops, peak_gflops, efficiency), memory_ms(nbytes, bandwidth_gbs, efficiency))


def paleo_ms(flops: Number, nbytes: Number, peak_gflops: Number, bandwidth_gbs: Number,
             ppp_comp: float = 1.0, ppp_memory: float = 1.0, gb_bytes: float = GB) -> Number:
    """PALEO's ``R + C + W``: compute and memory time added, each at its PPP, in ms."""
    return (compute_ms(flops, peak_gflops, ppp_comp)
            + memory_ms(nbytes, bandwidth_gbs, ppp_memory, gb_bytes))
