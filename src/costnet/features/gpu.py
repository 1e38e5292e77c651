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
- ``bound_ratio``: the wave-quantized bound (:func:`wave_bound_ms`) over the roofline time.

:func:`wave_bound_ms` is the time no GEMM can beat on the device: the work of whole CTA tiles,
in waves over the SMs, at each SM's share of the peak, for the best of the tile shapes and
split-K factors cuBLAS's SGEMM kernels use; never below the roofline. The physics-bounded MLP
(costnet.nets.mlp.Bounded, ``bound: wave``) predicts a utilization of it.

Rows whose device has no SM count or L2 size (a CPU, a catalog GPU without them) get NaN
where those enter; the fitted transform reads NaN as 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GPU_FEATURES = ("ridge_ratio", "waves_128", "fill_128", "waves_64", "fill_64", "pad_128", "l2_ratio",
                "flops_per_sm", "bytes_per_sm", "compute_share", "bound_ratio")
TILES = (128, 64)
# CTA tiles (rows x columns of the output) of cuBLAS's SGEMM kernels, as named in neusight2025's
# kernel_name (ampere_sgemm_128x64_tn, maxwell_sgemm_32x128_tn, volta_sgemm_64x32_sliced1x4_tn...);
# split-K factors: the reduction cut into s slices run as separate CTAs ("sliced" kernels, and the
# splitKreduce kernel that sums the slices; NVIDIA CUTLASS documentation, "Efficient GEMM in CUDA").
BOUND_TILES = ((128, 128), (128, 64), (64, 128), (128, 32), (32, 128), (64, 64), (64, 32), (32, 64), (32, 32))
SPLIT_K = (1, 2, 4, 8, 16, 32)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(float) if name in frame else np.full(len(frame), np.nan)


def gpu_features(frame: pd.DataFrame, analytical: pd.DataFrame, roofline: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``GPU_FEATURES`` for every row (hardware columns from ``frame``; the
    roofline times, with ``t_bound_ms`` from :func:`wave_bound_ms`, in ``roofline``)."""
    peak, bandwidth = _column(frame, "hw_peak_gflops"), _column(frame, "hw_bandwidth_gbs")
    sms, l2_mb = _column(frame, "hw_sm_count"), _column(frame, "hw_l2_mb")
    m, n, count = (analytical[c].to_numpy(float) for c in ("gemm_m", "gemm_n", "gemm_count"))
    nbytes, flops = analytical["bytes"].to_numpy(float), analytical["flops"].to_numpy(float)
    out = {"ridge_ratio": analytical["intensity"].to_numpy(float) / (peak / bandwidth)}
    gemm = (m > 0) & (n > 0)
    for t in TILES:
        tiles = count * np.ceil(m / t) * np.ceil(n / t)
        waves = np.ceil(tiles / sms)
        out[f"waves_{t}"] = np.where(gemm, waves, 0.0)
        out[f"fill_{t}"] = np.where(gemm, tiles / np.maximum(waves * sms, 1), 0.0)
    tiles = count * np.ceil(m / 128) * np.ceil(n / 128)
    out["pad_128"] = np.where(gemm, 1 - count * m * n / np.maximum(tiles * 128**2, 1), 0.0)
    out["l2_ratio"] = nbytes / (l2_mb * 2**20)
    out["flops_per_sm"], out["bytes_per_sm"] = flops / sms, nbytes / sms
    roof = roofline["t_roofline_ms"].to_numpy(float)
    roof = np.where(roof > 0, roof, np.nan)
    out["compute_share"] = roofline["t_compute_ms"].to_numpy(float) / roof
    out["bound_ratio"] = roofline["t_bound_ms"].to_numpy(float) / roof
    return pd.DataFrame(out, index=frame.index)


def wave_bound_ms(frame: pd.DataFrame, analytical: pd.DataFrame, roofline: pd.DataFrame) -> pd.Series:
    """Each row's wave-quantized roofline bound (ms): for a GEMM, the least over tile shapes
    ``BOUND_TILES`` and split-K factors ``SPLIT_K`` of ``ceil(units / SMs)`` waves of one unit's
    FLOPs (2 * tile rows * tile columns * ceil(K / s)) at one SM's share of the peak, where
    ``units = GEMMs * tiles * s``: the busiest SM does at least that much work. Never below the
    roofline time (FLOPs beyond the GEMM, bytes over bandwidth); the roofline time itself for
    rows that are no GEMM or whose device has no SM count."""
    roof = roofline["t_roofline_ms"].to_numpy(float)
    peak, sms = _column(frame, "hw_peak_gflops"), _column(frame, "hw_sm_count")
    m, n, k, count = (analytical[c].to_numpy(float) for c in ("gemm_m", "gemm_n", "gemm_k", "gemm_count"))
    best = np.full(len(frame), np.inf)
    for rows, cols in BOUND_TILES:
        tiles = count * np.ceil(m / rows) * np.ceil(n / cols)
        for s in SPLIT_K:
            waves = np.ceil(tiles * s / sms)
            best = np.minimum(best, waves * 2.0 * rows * cols * np.ceil(k / s) / (peak / sms) * 1e-6)  # GFLOP/s -> ms
    quantized = (m > 0) & (n > 0) & (k > 0) & np.isfinite(best)
    return pd.Series(np.where(quantized, np.maximum(np.nan_to_num(best, nan=0.0), roof), roof), index=frame.index,
                     name="t_bound_ms")
