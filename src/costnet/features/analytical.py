"""Analytical cost quantities of each configuration, vectorized over a frame.

FLOPs count a multiply-add as 2 (the convention of torch.utils.flop_counter and
of PALEO, Qi et al. 2017). Backward FLOPs follow the usual GEMM accounting: the
weight gradient costs one forward's matrix work, the input gradient another
(only when the input needs a gradient). Bytes assume each tensor is touched once
per pass; training adds gradients and optimizer state (read and written).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from costnet.collect.memory import OPTIMIZER_STATES
from costnet.errors import CostnetError
from costnet.roofline import compute_ms, memory_ms, paleo_ms, roofline_ms

ANALYTICAL_FEATURES = ("out_size", "pad_total", "pad_odd", "align_in", "align_out", "params", "flops_fwd", "flops_bwd", "flops_update", "flops",
                       "bytes_in", "bytes_weights", "bytes_out", "bytes", "intensity",
                       "gemm_m", "gemm_n", "gemm_k", "gemm_tiles", "tile_fill")
# GEMM kernels (cuBLAS, and cuDNN's implicit-GEMM convolutions) compute the output in
# tiles; a partly filled last row or column of tiles costs a whole one ("tile
# quantization", NVIDIA's Matrix Multiplication Background User's Guide). 128 x 128 is
# the common large tile of those libraries.
GEMM_TILE = 128

# Approximate elementwise FLOPs per parameter of one update step, read off the
# update rules in the torch.optim documentation (e.g. Adam: two moment updates,
# bias corrections, square root, division and the step: about 12).
UPDATE_FLOPS = {"none": 0, "sgd": 2, "momentum": 4, "adagrad": 5, "adadelta": 10, "adam": 12, "rmsprop": 7}
# Elementwise FLOPs per output element of each activation (forward).
ACTIVATION_FLOPS = {"none": 0, "relu": 1, "tanh": 5, "sigmoid": 4}
DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
# Forward FLOPs per output element of the elementwise op's functions, counting each
# operation of the defining formula (torch.nn docs) as 1 and exp/erf like a tanh
# (as ACTIVATION_FLOPS does): relu6 = min(max(x, 0), 6); silu = x * sigmoid(x);
# gelu = x/2 * (1 + erf(x / sqrt 2)); hardswish = x * relu6(x + 3) / 6.
ELEMENTWISE_FLOPS = {"relu": 1, "relu6": 2, "sigmoid": 4, "tanh": 5, "silu": 5, "gelu": 9, "hardswish": 5,
                     "add": 1, "mul": 1}
# Batch norm per element (Ioffe & Szegedy 2015, Algorithm 1): normalize and scale-shift,
# (x - mean) * inv_std * gamma + beta, is 4; a training step's forward first computes the
# batch mean (1) and variance (3: subtract, square, accumulate).
BATCHNORM_FLOPS = {"forward": 4, "train": 8}
# Dropout in training draws a uniform number, compares it with p and scales the kept
# values (about 3 per element); in forward mode (eval) it returns its input untouched.
DROPOUT_FLOPS = {"forward": 0, "train": 3}
# Softmax per element: max, subtract, exp, sum, divide (as the attention branch counts).
SOFTMAX_FLOPS = 5
INDEX_BYTES = 8  # int64 embedding indices


def _col(frame: pd.DataFrame, name: str, default: float = 0.0) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), default, dtype=float)
    return frame[name].astype(float).fillna(default).to_numpy()


def output_sizes(size: np.ndarray, kernel: np.ndarray, stride: np.ndarray, padding: pd.Series) -> np.ndarray:
    """Vectorized TensorFlow padding rule (see costnet.ops.base.output_size)."""
    same = np.ceil(size / stride)
    valid = np.ceil((size - kernel + 1) / stride)
    return np.where(padding.to_numpy() == "same", same, valid)


def alignment(x: np.ndarray, cap: int = 64) -> np.ndarray:
    """Largest power of two dividing ``x`` (at most ``cap``): GPU and SIMD kernels tile
    channels and features by 8, 16, 32..., so aligned sizes run differently."""
    n = np.maximum(x, 1).astype(np.int64)
    return np.minimum(n & -n, cap).astype(float)


def padding_amounts(size: np.ndarray, kernel: np.ndarray, stride: np.ndarray, out: np.ndarray,
                    padding: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Total padding of one dimension and whether it is odd (asymmetric, so TensorFlow
    and costnet pad explicitly before the layer: an extra copy of the input)."""
    total = np.where(padding.to_numpy() == "same", np.maximum((out - 1) * stride + kernel - size, 0), 0)
    return total, (total % 2).astype(float)


def _per_op(frame: pd.DataFrame, op: str) -> dict[str, np.ndarray]:
    """Matrix and elementwise forward FLOPs, element counts of inputs, params and
    outputs, and shape facts (output size, padding, alignment) of one op's rows.

    Optional keys: ``input_grad_mm`` (input-gradient products per forward product),
    ``ew_bwd`` (backward elementwise FLOPs, default twice the forward's),
    ``input_width`` (bytes per input element, default the dtype's),
    ``differentiable`` (0 where the inputs never take a gradient) and ``gemm`` (M, N, K
    of the forward product, for ops that are one GEMM)."""
    b = _col(frame, "batch", 1)
    act = frame["activation"].map(ACTIVATION_FLOPS).fillna(0).to_numpy() if "activation" in frame else 0
    mode = frame["mode"]
    zeros = np.zeros(len(frame))
    if op in ("conv2d", "depthwise"):
        size, k, s = _col(frame, "size"), _col(frame, "kernel"), _col(frame, "stride", 1)
        cin, cout, g = _col(frame, "channels_in"), _col(frame, "channels_out"), _col(frame, "groups", 1)
        o = output_sizes(size, k, s, frame["padding"])
        bias = _col(frame, "bias")
        outputs = b * cout * o * o
        pad, odd = padding_amounts(size, k, s, o, frame["padding"])
        return dict(mm=2 * outputs * (cin / g) * k * k, ew=outputs * (bias + act), inputs=b * cin * size * size,
                    params=cout * (cin / g) * k * k + bias * cout, outputs=outputs, out_size=o,
                    pad_total=pad, pad_odd=odd, align_in=alignment(cin), align_out=alignment(cout),
                    gemm=(b * o * o, cout / g, (cin / g) * k * k))  # implicit GEMM (per group)
    if op == "dense":
        fin, fout, bias = _col(frame, "in_features"), _col(frame, "out_features"), _col(frame, "bias", 1)
        return dict(mm=2 * b * fin * fout, ew=b * fout * (bias + act), inputs=b * fin,
                    params=fin * fout + bias * fout, outputs=b * fout, out_size=np.zeros(len(frame)),
                    align_in=alignment(fin), align_out=alignment(fout), gemm=(b, fout, fin))
    if op == "pool2d":
        size, k, s, c = _col(frame, "size"), _col(frame, "kernel"), _col(frame, "stride", 1), _col(frame, "channels_in")
        o = output_sizes(size, k, s, frame["padding"])
        outputs = b * c * o * o
        pad, odd = padding_amounts(size, k, s, o, frame["padding"])
        return dict(mm=np.zeros(len(frame)), ew=outputs * k * k, inputs=b * c * size * size,
                    params=np.zeros(len(frame)), outputs=outputs, out_size=o, pad_total=pad, pad_odd=odd,
                    align_in=alignment(c), align_out=alignment(c))
    if op == "matmul":
        m, kk, n = _col(frame, "m"), _col(frame, "k"), _col(frame, "n")
        return dict(mm=2 * b * m * kk * n, ew=np.zeros(len(frame)), inputs=b * kk * (m + n), input_grad_mm=2.0,
                    params=np.zeros(len(frame)), outputs=b * m * n, out_size=np.zeros(len(frame)),
                    align_in=alignment(kk), align_out=alignment(n), gemm=(b * m, n, kk))
    if op == "attention":
        h, L, d = _col(frame, "heads"), _col(frame, "seq_len"), _col(frame, "head_dim")
        causal = np.where(_col(frame, "causal") > 0, 0.5, 1.0)  # a causal mask skips about half the scores
        one = b * h * L * d
        # backward: dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q: twice the forward's two products
        return dict(mm=2 * 2 * b * h * L * L * d * causal, ew=5 * b * h * L * L * causal, inputs=3 * one,
                    input_grad_mm=2.0,
                    params=np.zeros(len(frame)), outputs=one, out_size=np.zeros(len(frame)),
                    align_in=alignment(d), align_out=alignment(L))
    if op == "layernorm":
        n = b * _col(frame, "seq_len") * _col(frame, "features")
        return dict(mm=np.zeros(len(frame)), ew=8 * n, inputs=n, params=2 * _col(frame, "features"),
                    outputs=n, out_size=np.zeros(len(frame)), align_in=alignment(_col(frame, "features")))
    if op == "lstm":
        L, fin, hid, layers = _col(frame, "seq_len"), _col(frame, "in_features"), _col(frame, "hidden_size"), _col(frame, "layers", 1)
        steps = b * L
        mm = 2 * steps * 4 * hid * ((fin + hid) + (layers - 1) * 2 * hid)
        params = 4 * hid * (fin + hid + 2) + (layers - 1) * 4 * hid * (2 * hid + 2)
        return dict(mm=mm, ew=steps * layers * hid * 15, inputs=steps * fin, params=params,
                    outputs=steps * hid, out_size=np.zeros(len(frame)), align_in=alignment(fin),
                    align_out=alignment(hid))
    if op == "batchnorm2d":
        c = _col(frame, "channels_in")
        n = b * c * _col(frame, "size") ** 2
        return dict(mm=zeros, ew=n * mode.map(BATCHNORM_FLOPS).fillna(4).to_numpy(), inputs=n, params=2 * c,
                    outputs=n, out_size=zeros, align_in=alignment(c), align_out=alignment(c))
    if op in ("elementwise", "dropout"):
        f = _col(frame, "features")
        n = b * f
        if op == "elementwise":
            per = frame["fn"].map(ELEMENTWISE_FLOPS).fillna(1).to_numpy()
            operands = np.where(frame["fn"].isin(("add", "mul")).to_numpy(), 2.0, 1.0)
        else:
            per, operands = mode.map(DROPOUT_FLOPS).fillna(0).to_numpy(), 1.0
        return dict(mm=zeros, ew=n * per, inputs=n * operands, params=zeros, outputs=n, out_size=zeros,
                    align_in=alignment(f), align_out=alignment(f))
    if op == "softmax":
        f = _col(frame, "features")
        n = b * _col(frame, "rows") * f
        return dict(mm=zeros, ew=SOFTMAX_FLOPS * n, inputs=n, params=zeros, outputs=n, out_size=zeros,
                    align_in=alignment(f), align_out=alignment(f))
    if op == "adaptive_pool2d":
        size, t, c = _col(frame, "size"), _col(frame, "target_size"), _col(frame, "channels_in")
        # Output i pools rows floor(i*S/T) to ceil((i+1)*S/T) (torch's adaptive pooling); the
        # windows' lengths sum to S + T - gcd(S, T) (each of the T - gcd(S, T) outputs whose
        # window edge falls inside a row shares that row with its neighbour).
        span = size + t - np.gcd(size.astype(np.int64), t.astype(np.int64))
        return dict(mm=zeros, ew=b * c * span**2, inputs=b * c * size**2, params=zeros, outputs=b * c * t**2,
                    out_size=t, align_in=alignment(c), align_out=alignment(c))
    if op == "embedding":
        f = _col(frame, "features")
        tokens = b * _col(frame, "seq_len")
        # forward gathers rows (no arithmetic); backward adds each output gradient into its
        # row of the weight gradient; the indices take no gradient and are int64
        return dict(mm=zeros, ew=zeros, ew_bwd=tokens * f, inputs=tokens, input_width=float(INDEX_BYTES),
                    differentiable=0.0, params=_col(frame, "vocab") * f, outputs=tokens * f, out_size=zeros,
                    align_out=alignment(f))
    raise CostnetError(f"no analytical model for op {op!r}")


def gemm_shape(m: np.ndarray, n: np.ndarray, k: np.ndarray) -> dict[str, np.ndarray]:
    """An op's GEMM view (output rows M, columns N, reduction K), its number of
    ``GEMM_TILE``-square output tiles and the share of those tiles' area it fills."""
    tiles = np.ceil(m / GEMM_TILE) * np.ceil(n / GEMM_TILE)
    return {"gemm_m": m, "gemm_n": n, "gemm_k": k, "gemm_tiles": tiles,
            "tile_fill": np.where(tiles > 0, m * n / np.maximum(tiles, 1) / GEMM_TILE**2, 0.0)}


def analytical_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``ANALYTICAL_FEATURES`` for every row of ``frame``."""
    out = pd.DataFrame(index=frame.index, columns=list(ANALYTICAL_FEATURES), dtype=float)
    for op, rows in frame.groupby("op", sort=False):
        q = _per_op(rows, str(op))
        train = (rows["mode"] == "train").to_numpy()
        input_grad = rows["input_grad"].astype(float).to_numpy() if "input_grad" in rows else np.zeros(len(rows))
        input_grad = input_grad * q.get("differentiable", 1.0)
        optimizer = rows["optimizer"].fillna("none")
        width = rows["dtype"].map(DTYPE_BYTES).fillna(4).to_numpy() if "dtype" in rows else 4
        has_params = (q["params"] > 0).astype(float)
        # backward: weight gradient (if weights) + input gradients (if asked; two products for
        # matmul and attention, whose inputs are both operands) + elementwise gradients
        bwd = q["mm"] * (has_params + input_grad * q.get("input_grad_mm", 1.0)) + q.get("ew_bwd", 2 * q["ew"])
        update = q["params"] * optimizer.map(UPDATE_FLOPS).fillna(10).to_numpy()
        states = optimizer.map(OPTIMIZER_STATES).fillna(2).to_numpy()
        fwd = q["mm"] + q["ew"]
        bytes_in = q.get("input_width", width) * q["inputs"]
        bytes_w, bytes_out = width * q["params"], width * q["outputs"]
        fwd_bytes = bytes_in + bytes_w + bytes_out
        # backward reads output grad, inputs and weights, writes weight (and input) grads;
        # the update reads and writes weights, grads and optimizer state.
        bwd_bytes = bytes_out + bytes_in + 2 * bytes_w + input_grad * bytes_in
        upd_bytes = bytes_w * (3 + 2 * states)
        zeros = np.zeros(len(rows))
        values = {
            "out_size": q["out_size"], "pad_total": q.get("pad_total", zeros), "pad_odd": q.get("pad_odd", zeros),
            "align_in": q.get("align_in", zeros), "align_out": q.get("align_out", zeros),
            "params": q["params"], "flops_fwd": fwd,
            "flops_bwd": np.where(train, bwd, 0), "flops_update": np.where(train, update, 0),
            "bytes_in": bytes_in, "bytes_weights": bytes_w, "bytes_out": bytes_out,
            "flops": fwd + np.where(train, bwd + update, 0),
            "bytes": fwd_bytes + np.where(train, bwd_bytes + upd_bytes, 0),
            **gemm_shape(*q.get("gemm", (zeros, zeros, zeros))),
        }
        for name, value in values.items():
            out.loc[rows.index, name] = value
    out["intensity"] = out["flops"] / out["bytes"].clip(lower=1)
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
