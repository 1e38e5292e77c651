"""PALEO layers from a frame of layers extracted from a torch module (costnet.networks.extract).

The frame has one row per layer in execution order, with the columns ``name``, ``op``,
``parents`` (list of names; empty: reads the network input) and the op's configuration:
``batch``, ``size`` (square spatial size), ``channels_in``, ``channels_out``, ``kernel``,
``stride``, ``padding`` (``'same'``/``'valid'``, TensorFlow's rules), ``groups``,
``in_features``, ``out_features``, ``features`` (elements per sample of elementwise ops),
NaN where an op has no such setting. Optional columns are used when present: ``kind``
(``layer``, ``free`` for views, ``analytical`` with ``flops_fwd`` and ``bytes``), ``pool``
(``max``/``avg``), ``target_size`` (adaptive pooling), ``fn`` (elementwise function),
``rows`` (softmax rows per sample), ``bias``, ``input_grad``, and the transformer ops'
``seq_len``, ``heads``, ``head_dim``, ``m``, ``k``, ``n``, ``vocab``.

A row's ``batch`` counts the rows its op sees (a dense layer over a sequence sees batch
times length); the network's batch is the smallest ``batch`` in the frame, and each
layer's per-sample work is scaled by its row's share of it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pandas as pd

from costnet.errors import CostnetError
from costnet.paleo import layers as L
from costnet.paleo.presets import Costs, load_costs
from costnet.paleo.spec import Net

BINARY_FNS: frozenset[str] = frozenset({"add", "sub", "mul", "div", "truediv", "pow", "maximum", "minimum"})
OPS: tuple[str, ...] = ("conv2d", "depthwise", "dense", "pool2d", "adaptive_pool2d", "batchnorm2d", "elementwise", "dropout",
                        "softmax", "layernorm", "matmul", "attention", "embedding")


class _Row:
    """One frame row, with errors that name it."""

    def __init__(self, row: pd.Series) -> None:
        self.row, self.name, self.op = row, str(row["name"]), str(row.get("op", ""))

    def fail(self, message: str) -> CostnetError:
        return CostnetError(f"layer frame: row {self.name!r} (op {self.op!r}): {message}")

    def has(self, column: str) -> bool:
        value = self.row.get(column)
        return value is not None and not (isinstance(value, float) and math.isnan(value))

    def int(self, column: str, default: int | None = None) -> int:
        if not self.has(column):
            if default is None:
                raise self.fail(f"needs column {column!r}")
            return default
        value = self.row[column]
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.fail(f"{column} must be a positive integer, got {value!r}") from None
        if number != value or number < 1:
            raise self.fail(f"{column} must be a positive integer, got {value!r}")
        return number

    def text(self, column: str, default: str) -> str:
        return str(self.row[column]) if self.has(column) else default


def _parents(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(p) for p in value]


def _scaled(layer: L.Layer, factor: float) -> L.Layer:
    """``layer`` with its per-sample work multiplied by ``factor`` (weights unchanged)."""
    if factor == 1:
        return layer

    def scale(work: L.Work) -> L.Work:
        return replace(work, flops=work.flops * factor, read=work.read * factor, written=work.written * factor)

    return replace(layer, forward=scale(layer.forward), backward_data=scale(layer.backward_data),
                   backward_weights=scale(layer.backward_weights))


def _padding(r: _Row) -> str:
    value = r.text("padding", "valid").upper()
    if value not in ("SAME", "VALID"):
        raise r.fail(f"padding must be 'same' or 'valid', got {r.row['padding']!r}")
    return value


def _pool(r: _Row, parents: list[str], costs: Costs) -> L.Layer:
    kind = r.text("pool", "max")
    shape = (r.int("size"), r.int("size"), r.int("channels_in"))
    if r.op == "pool2d":
        k, s = r.int("kernel"), r.int("stride", r.int("kernel"))
        return L.pool2d(r.name, parents, shape, (k, k), (s, s), _padding(r), costs, kind)
    # adaptive pooling to target x target: windows of about ceil(size / target)
    target = r.int("target_size", 1)
    window = math.ceil(shape[0] / target)
    return L.pooling(r.name, parents, shape, (target, target, shape[2]), window**2, costs, kind)


def _gemm_free(r: _Row, parents: list[str], output: L.Shape, flops: float, read: float, written: float,
               data_grad: bool) -> L.Layer:
    """A product of two activations (matmul, attention): no weights; the backward pass takes
    two products of the forward's size (one per operand)."""
    return L.Layer(r.name, r.op, tuple(parents), output, forward=L.Work(flops, read, written),
                   backward_data=L.Work(2 * flops, read + written, read) if data_grad else L.Work())


def _layer(r: _Row, parents: list[str], data_grad: bool, costs: Costs) -> L.Layer:
    op = r.op
    if op in ("conv2d", "depthwise"):
        shape = (r.int("size"), r.int("size"), r.int("channels_in"))
        k, s = r.int("kernel"), r.int("stride", 1)
        bias = bool(r.row["bias"]) if r.has("bias") else True
        groups = r.int("groups", shape[2] if op == "depthwise" else 1)
        return L.conv2d(r.name, parents, shape, (k, k), r.int("channels_out"), (s, s), _padding(r),
                        groups=groups, bias=bias, data_grad=data_grad)
    if op == "dense":
        bias = bool(r.row["bias"]) if r.has("bias") else True
        return L.inner_product(r.name, parents, (r.int("in_features"),), r.int("out_features"), bias, data_grad)
    if op in ("pool2d", "adaptive_pool2d"):
        return _pool(r, parents, costs)
    if op == "batchnorm2d":
        c = r.int("channels_in")
        shape = (r.int("size"), r.int("size"), c)
        return L.pointwise(r.name, parents, [shape], shape, "batch_norm", costs, params=2 * c, data_grad=data_grad)
    if op in ("elementwise", "dropout"):
        shape = (r.int("features"),)
        if op == "dropout":
            return L.pointwise(r.name, parents, [shape], shape, "dropout", costs, data_grad=data_grad)
        binary = r.text("fn", "relu") in BINARY_FNS
        kind, inputs = ("add", [shape, shape]) if binary else ("activation", [shape])
        return L.pointwise(r.name, parents, inputs, shape, kind, costs, data_grad=data_grad)
    if op == "softmax":
        shape = (r.int("rows", 1) * r.int("features"),)
        return L.pointwise(r.name, parents, [shape], shape, "softmax", costs, data_grad=data_grad)
    if op == "layernorm":
        f = r.int("features")
        shape = (r.int("seq_len", 1) * f,)
        return L.pointwise(r.name, parents, [shape], shape, "layer_norm", costs, params=2 * f, data_grad=data_grad)
    if op == "matmul":
        m, k, n = r.int("m"), r.int("k"), r.int("n")
        return _gemm_free(r, parents, (m, n), 2.0 * m * k * n, m * k + k * n, m * n, data_grad)
    if op == "attention":
        # softmax(Q K^T) V per head: two products of 2 s^2 d FLOPs, plus the softmax over s^2
        h, s, d = r.int("heads"), r.int("seq_len"), r.int("head_dim")
        flops = 4.0 * h * s * s * d + costs.flops("softmax")[0] * h * s * s
        return _gemm_free(r, parents, (h, s, d), flops, 3 * h * s * d, h * s * d, data_grad)
    if op == "embedding":
        s, f, vocab = r.int("seq_len", 1), r.int("features"), r.int("vocab")
        params = vocab * f
        return L.Layer(r.name, op, tuple(parents), (s, f), params, forward=L.Work(0.0, s, s * f),
                       backward_weights=L.Work(0.0, s * f, 0.0, weights_written=params))
    raise r.fail(f"unknown op; known: {', '.join(OPS)} (or kind 'free' / 'analytical')")


def from_layer_frame(frame: pd.DataFrame, name: str = "torch", costs: Costs | None = None) -> Net:
    """A PALEO Net from a frame of extracted layers (see the module docstring)."""
    costs = costs or load_costs()
    missing = [c for c in ("name", "parents") if c not in frame.columns]
    if missing:
        raise CostnetError(f"layer frame needs columns name, parents and op; missing: {', '.join(missing)}")
    if frame.empty:
        raise CostnetError("layer frame is empty")
    batches = pd.to_numeric(frame["batch"], errors="coerce").dropna() if "batch" in frame.columns else pd.Series()
    if batches.empty or (batches < 1).any():
        raise CostnetError("layer frame needs positive 'batch' values")
    net_batch = int(batches.min())
    seen: set[str] = set()
    built: list[L.Layer] = []
    for _, series in frame.iterrows():
        r = _Row(series)
        if r.name in seen:
            raise r.fail("duplicate layer name")
        parents = _parents(series["parents"])
        for parent in parents:
            if parent not in seen:
                raise r.fail(f"parent {parent!r} is not an earlier row of the frame")
        data_grad = bool(series["input_grad"]) if r.has("input_grad") else bool(parents)
        kind = r.text("kind", "layer")
        row_batch = r.int("batch", net_batch)
        if kind == "free":
            layer = L.free_layer(r.name, parents, ())
        elif kind == "analytical":
            if not (r.has("flops_fwd") and r.has("bytes")):
                raise r.fail("an analytical row needs flops_fwd and bytes")
            # totals at the row's batch, moved to per sample; backward assumed to cost the same
            work = L.Work(float(series["flops_fwd"]) / row_batch,
                          float(series["bytes"]) / costs.bytes_per_element / row_batch)
            layer = L.Layer(r.name, r.op or "analytical", tuple(parents), (), forward=work,
                            backward_data=work if data_grad else L.Work())
        elif kind == "layer":
            layer = _layer(r, parents, data_grad, costs)
        else:
            raise r.fail(f"unknown kind {kind!r}; known: layer, free, analytical")
        built.append(_scaled(layer, row_batch / net_batch))
        seen.add(r.name)
    return Net(name, net_batch, tuple(built))
