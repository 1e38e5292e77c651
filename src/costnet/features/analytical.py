"""Analytical cost quantities of each configuration, vectorized over a frame.

Each op gives its forward FLOPs, element counts and shape facts
(:meth:`costnet.ops.base.Op.analytical`); this module adds what is the same
for every op. FLOPs count a multiply-add as 2 (the convention of
torch.utils.flop_counter and of PALEO, Qi et al. 2017). Backward FLOPs follow
the usual GEMM accounting: the weight gradient costs one forward's matrix work,
the input gradient another (only when the input needs a gradient). Bytes assume
each tensor is touched once per pass; training adds gradients and optimizer
state (read and written).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from costnet.ops import get_op
from costnet.ops.base import lookup
from costnet.ops.step import DTYPE_BYTES, OPTIMIZER_STATES, UPDATE_FLOPS, check_dtypes, update_bytes
from costnet.roofline import compute_ms, memory_ms, paleo_ms, roofline_ms

ANALYTICAL_FEATURES = ("out_size", "pad_total", "pad_odd", "align_in", "align_out", "params", "flops_fwd", "flops_bwd", "flops_update", "flops",
                       "bytes_in", "bytes_weights", "bytes_out", "bytes", "intensity",
                       "gemm_m", "gemm_n", "gemm_k", "gemm_count", "gemm_tiles", "tile_fill")
# glibc's malloc serves a request of at least its mmap threshold with a fresh mapping, unmapped
# again on free, whose pages the kernel faults in and zeroes on first touch; the threshold adapts
# upwards to at most DEFAULT_MMAP_THRESHOLD_MAX = 4 * 1024 * 1024 * sizeof(long), 32 MiB on 64-bit
# (glibc, malloc/malloc.c). torch's CPU allocator passes requests to malloc uncached, so a call that
# allocates a tensor this large pays those faults every time: on the project's CPU (README, "Measured
# on this CPU") elementwise ops moved 55-170 GB/s on tensors below 32 MiB and 4-7 GB/s above.
FRESH_BYTES = 32 * 2**20
# Columns beside ANALYTICAL_FEATURES, for the CPU library paths: ``bytes_fresh``, the bytes of the
# tensors a call allocates at FRESH_BYTES or more (the output, unless the call writes into its
# input, ``inplace``; in train mode also the input gradient, when asked, and the weight
# gradient); ``matrix_vector``, 1 where the GEMM has one output row, which BLAS runs as a
# matrix-vector product (GEMV): on the project's CPU a dense layer at batch 1 read its weights at
# 25-30 GB/s, at batch 2-16 at 9-15 GB/s (README, "Measured on this CPU").
CPU_PATH_FEATURES = ("bytes_fresh", "matrix_vector")
# GEMM kernels (cuBLAS, and cuDNN's implicit-GEMM convolutions) compute the output in
# tiles; a partly filled last row or column of tiles costs a whole one ("tile
# quantization", NVIDIA's Matrix Multiplication Background User's Guide). 128 x 128 is
# the common large tile of those libraries.
GEMM_TILE = 128


def gemm_shape(m: np.ndarray, n: np.ndarray, k: np.ndarray, count: np.ndarray) -> dict[str, np.ndarray]:
    """An op's GEMM view (``count`` independent GEMMs of output rows M, columns N, reduction K),
    its number of ``GEMM_TILE``-square output tiles and the share of those tiles' area it fills."""
    count = np.where((m > 0) & (n > 0), count, 0.0)
    tiles = count * np.ceil(m / GEMM_TILE) * np.ceil(n / GEMM_TILE)
    return {"gemm_m": m, "gemm_n": n, "gemm_k": k, "gemm_count": count, "gemm_tiles": tiles,
            "tile_fill": np.where(tiles > 0, count * m * n / np.maximum(tiles, 1) / GEMM_TILE**2, 0.0)}


def _per_row(value: np.ndarray | float, n: int) -> np.ndarray:
    """An op's quantity as floats, one per row (a single value is every row's)."""
    return np.broadcast_to(np.asarray(value, dtype=float), (n,))


def _fresh(nbytes: np.ndarray | float) -> np.ndarray:
    """``nbytes`` where one tensor of that size comes from fresh pages (FRESH_BYTES or more), else 0."""
    nbytes = np.asarray(nbytes, dtype=float)
    return np.where(nbytes >= FRESH_BYTES, nbytes, 0.0)


def _bytes_per_element(rows: pd.DataFrame) -> np.ndarray | float:
    """Each row's dtype width; rows without a dtype are float32's (4 bytes), an unknown dtype is an error."""
    if "dtype" not in rows:
        return DTYPE_BYTES["float32"]
    check_dtypes(rows["dtype"].dropna().unique())
    return lookup(rows["dtype"], DTYPE_BYTES, DTYPE_BYTES["float32"])


def analytical_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``ANALYTICAL_FEATURES`` for every row of ``frame``."""
    parts = [pd.DataFrame(columns=[*ANALYTICAL_FEATURES, *CPU_PATH_FEATURES], dtype=float)]
    for op, rows in frame.groupby("op", sort=False):
        q = get_op(str(op)).analytical(rows)
        n = len(rows)
        mm, ew, params = _per_row(q.mm, n), _per_row(q.ew, n), _per_row(q.params, n)
        train = (rows["mode"] == "train").to_numpy()
        input_grad = rows["input_grad"].astype(float).to_numpy() if "input_grad" in rows else np.zeros(n)
        input_grad = input_grad * q.differentiable
        # collected rows are out of place; a network's layer may write into its input (ReLU(inplace=True))
        inplace = rows["inplace"].astype(bool).to_numpy() if "inplace" in rows else np.zeros(n, bool)
        optimizer = rows["optimizer"].fillna("none")
        width = _bytes_per_element(rows)
        has_params = (params > 0).astype(float)
        # backward: weight gradient (if weights) + input gradients (if asked; two products for
        # matmul and attention, whose inputs are both operands) + elementwise gradients
        bwd = mm * (has_params + input_grad * q.input_grad_mm) + (2 * ew if q.ew_bwd is None else q.ew_bwd)
        update = params * lookup(optimizer, UPDATE_FLOPS, 10)
        states = lookup(optimizer, OPTIMIZER_STATES, 2)
        fwd = mm + ew
        bytes_in = (width if q.input_width is None else q.input_width) * _per_row(q.inputs, n)
        bytes_w, bytes_out = width * params, width * _per_row(q.outputs, n)
        fwd_bytes = bytes_in + bytes_w + bytes_out
        # backward reads output grad, inputs and weights, writes weight (and input) grads;
        # the update reads and writes weights, grads and optimizer state.
        bwd_bytes = bytes_out + bytes_in + 2 * bytes_w + input_grad * bytes_in
        upd_bytes = update_bytes(bytes_w, states)
        values = {
            "out_size": q.out_size, "pad_total": q.pad_total, "pad_odd": q.pad_odd,
            "align_in": q.align_in, "align_out": q.align_out,
            "params": params, "flops_fwd": fwd,
            "flops_bwd": np.where(train, bwd, 0), "flops_update": np.where(train, update, 0),
            "bytes_in": bytes_in, "bytes_weights": bytes_w, "bytes_out": bytes_out,
            "flops": fwd + np.where(train, bwd + update, 0),
            "bytes": fwd_bytes + np.where(train, bwd_bytes + upd_bytes, 0),
            "bytes_fresh": np.where(inplace, 0.0, _fresh(bytes_out))
            + np.where(train, input_grad * _fresh(bytes_in) + _fresh(bytes_w), 0),
            **gemm_shape(*(_per_row(v, n) for v in (*q.gemm, q.gemms))),
        }
        parts.append(pd.DataFrame({name: _per_row(value, n) for name, value in values.items()}, index=rows.index))
    # one frame per op, put together once (a .loc assignment per column and op cost 7 ms a call)
    out = pd.concat(parts).reindex(index=frame.index, columns=[*ANALYTICAL_FEATURES, *CPU_PATH_FEATURES]).astype(float)
    out["intensity"] = out["flops"] / out["bytes"].clip(lower=1)
    out["matrix_vector"] = (out["gemm_m"] == 1).astype(float)
    return out


def roofline_features(frame: pd.DataFrame, analytical: pd.DataFrame) -> pd.DataFrame:
    """Time estimates from hardware peaks (ms): compute, memory, their max and sum.

    compute = FLOPs / peak, memory = bytes / bandwidth (the roofline model,
    Williams et al. 2009); their sum is PALEO's R + C + W at 100 % of peak (costnet.roofline).
    """
    flops, nbytes = analytical["flops"], analytical["bytes"]
    peak, bandwidth = frame["hw_peak_gflops"].astype(float), frame["hw_bandwidth_gbs"].astype(float)
    return pd.DataFrame({"t_compute_ms": compute_ms(flops, peak), "t_memory_ms": memory_ms(nbytes, bandwidth),
                         "t_roofline_ms": roofline_ms(flops, nbytes, peak, bandwidth),
                         "t_paleo_ms": paleo_ms(flops, nbytes, peak, bandwidth)},
                        index=frame.index)
