"""Features that carry over to GPUs a model never saw: the layer's work measured against
the device's own units (its ridge point, SMs and L2) rather than raw spec numbers.

- ``ridge_ratio``: arithmetic intensity (FLOP per byte) over the device's ridge point
  (peak FLOP/s over bandwidth); below 1 the roofline says memory-bound (Williams et al.
  2009, "Roofline: an insightful visual performance model", CACM 52(4)).
- ``waves_<t>`` and ``fill_<t>`` for CTA tiles t x t of the op's GEMM view: output tiles
  (``ceil(M/t) * ceil(N/t)``) run in waves of one tile per SM, ``waves = ceil(tiles / SMs)``,
  and the last wave's fill ``tiles / (waves * SMs)`` says how much of the GPU it leaves idle
  (NVIDIA, "Matrix Multiplication Background User's Guide", sections on tile and wave
  quantization). 128 and 64 are the square tiles cuBLAS's SGEMM kernels use (kernel names
  such as ``ampere_sgemm_128x128`` and ``sgemm_64x64`` in neusight2025's ``kernel_name``).
- ``pad_128``: the share of the 128-tiles' area outside the output (work spent on padding).
- ``l2_ratio``: bytes the op touches over the L2 cache; ``flops_per_sm``, ``bytes_per_sm``:
  work per streaming multiprocessor (a bigger GPU needs more work to fill).
- ``compute_share``: compute time over the roofline time (1: compute-bound).

Rows whose device has no SM count or L2 size (a CPU, a catalog GPU without them) get NaN
where those enter; the fitted transform reads NaN as 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GPU_FEATURES = ("ridge_ratio", "waves_128", "fill_128", "waves_64", "fill_64", "pad_128", "l2_ratio",
                "flops_per_sm", "bytes_per_sm", "compute_share")
TILES = (128, 64)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(float) if name in frame else np.full(len(frame), np.nan)


def gpu_features(frame: pd.DataFrame, analytical: pd.DataFrame, roofline: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``GPU_FEATURES`` for every row (hardware columns from ``frame``)."""
    peak, bandwidth = _column(frame, "hw_peak_gflops"), _column(frame, "hw_bandwidth_gbs")
    sms, l2_mb = _column(frame, "hw_sm_count"), _column(frame, "hw_l2_mb")
    m, n = analytical["gemm_m"].to_numpy(float), analytical["gemm_n"].to_numpy(float)
    nbytes, flops = analytical["bytes"].to_numpy(float), analytical["flops"].to_numpy(float)
    out = {"ridge_ratio": analytical["intensity"].to_numpy(float) / (peak / bandwidth)}
    gemm = (m > 0) & (n > 0)
    for t in TILES:
        tiles = np.ceil(m / t) * np.ceil(n / t)
        waves = np.ceil(tiles / sms)
        out[f"waves_{t}"] = np.where(gemm, waves, 0.0)
        out[f"fill_{t}"] = np.where(gemm, tiles / np.maximum(waves * sms, 1), 0.0)
    tiles = np.ceil(m / 128) * np.ceil(n / 128)
    out["pad_128"] = np.where(gemm, 1 - m * n / np.maximum(tiles * 128**2, 1), 0.0)
    out["l2_ratio"] = nbytes / (l2_mb * 2**20)
    out["flops_per_sm"], out["bytes_per_sm"] = flops / sms, nbytes / sms
    roof = roofline["t_roofline_ms"].to_numpy(float)
    out["compute_share"] = roofline["t_compute_ms"].to_numpy(float) / np.where(roof > 0, roof, np.nan)
    return pd.DataFrame(out, index=frame.index)
