"""Data-parallel scaling tables (PALEO Sec. 3.2-3.3, paleo/simulation.py ``simulate_scaling``).

With ``K`` workers each step computes forward and backward on the worker's batch, then
all-reduces the gradients (|D| = the parameters' bytes) and applies the update. PALEO adds
these times without overlapping communication with the backward pass, and so do we:

    step(K) = forward(b) + backward(b) + update + comm(scheme, |D|, K)

* weak scaling: the per-worker batch ``b`` is fixed, the global batch grows as ``K b``;
* strong scaling: the global batch ``B`` is fixed and split, ``b = ceil(B / K)`` (as PALEO).

Speedup is throughput (samples per second) relative to one worker.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from costnet.errors import CostnetError
from costnet.paleo.comm import SCHEMES, comm_time_ms
from costnet.paleo.model import PassTimes, Platform, pass_times
from costnet.paleo.presets import Link
from costnet.paleo.spec import Net

SCALINGS: tuple[str, ...] = ("weak", "strong")


def _per_worker_batch(scaling: str, batch: int, workers: int) -> int:
    return batch if scaling == "weak" else math.ceil(batch / workers)


def scaling_table(net: Net, platform: Platform, link: Link, workers: Sequence[int], scaling: str = "weak",
                  batch: int | None = None, ppp_comm: float = 1.0) -> pd.DataFrame:
    """One row per worker count: batches, compute times, and per scheme comm, step time, speedup.

    ``batch`` is the per-worker batch (weak) or the global batch (strong); by default the
    net spec's.
    """
    if scaling not in SCALINGS:
        raise CostnetError(f"unknown scaling {scaling!r}; known: {', '.join(SCALINGS)}")
    counts = [int(k) for k in workers]
    if not counts or any(k < 1 or k != w for k, w in zip(counts, workers)):
        raise CostnetError(f"workers must be positive integers, got {list(workers)!r}")
    batch = batch or net.batch
    size_bytes = net.params * platform.constants.bytes_per_element
    if size_bytes <= 0:
        raise CostnetError(f"net {net.name!r} has no parameters to communicate")
    passes: dict[int, PassTimes] = {}

    def times(b: int) -> PassTimes:
        if b not in passes:
            passes[b] = pass_times(net, b, platform)
        return passes[b]

    base = times(_per_worker_batch(scaling, batch, 1))
    base_rate = batch / base.compute_ms  # one worker, no communication
    rows = []
    for k in counts:
        b = _per_worker_batch(scaling, batch, k)
        step = times(b)
        global_batch = k * b if scaling == "weak" else batch
        row = {"workers": k, "per_worker_batch": b, "global_batch": global_batch, "forward_ms": step.forward_ms,
               "backward_ms": step.backward_ms, "update_ms": step.update_ms, "compute_ms": step.compute_ms}
        for scheme in SCHEMES:
            comm = comm_time_ms(scheme, size_bytes, k, link.bandwidth_gbs, ppp_comm)
            row[f"comm_ms_{scheme}"] = comm
            row[f"step_ms_{scheme}"] = step.compute_ms + comm
            row[f"speedup_{scheme}"] = global_batch / (step.compute_ms + comm) / base_rate
        rows.append(row)
    return pd.DataFrame(rows)
