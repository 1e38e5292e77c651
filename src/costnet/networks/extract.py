"""Break a torch module into its layers, in the schema of collected rows.

``extract_layers(module, example)`` traces the module with ``torch.fx`` and runs
the graph on fake tensors (shapes only, no arithmetic), so a VGG-16 at batch 32
is extracted in milliseconds. Modules fx cannot trace (data-dependent control
flow) fall back to forward hooks on leaf modules plus a ``TorchFunctionMode``
that sees the functional calls made between them (adds, concatenations,
activations), so nothing the network computes goes unrecorded.

Each call becomes one row: ``kind`` is ``layer`` (an op the collector can time,
with that op's config columns), ``analytical`` (no cost model covers it: it is
listed with FLOPs and bytes and estimated analytically, never dropped) or
``free`` (a view or shape query that moves no data). ``approx`` says when a
layer was mapped onto a nearby configuration (e.g. PyTorch padding onto
TensorFlow's 'same'/'valid' rule).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import pandas as pd
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.overrides import TorchFunctionMode

from costnet.errors import CostnetError
from costnet.ops import get_op, output_size


@dataclass(frozen=True)
class TensorArg:
    """A tensor argument of a call, by shape (its values never matter here)."""

    shape: tuple[int, ...]
    source: str | None  # name of the call that produced it (None: a network input)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Call:
    """One call in the network: a leaf module, a function or a tensor method."""

    name: str
    target: Any  # nn.Module instance, function, or method name (str)
    args: list[Any]  # TensorArg for tensors, plain values otherwise
    kwargs: dict[str, Any]
    output: tuple[int, ...] | None
    parents: list[str] = field(default_factory=list)

    @property
    def tensors(self) -> list[TensorArg]:
        flat = [*self.args, *self.kwargs.values()]
        flat = [a for item in flat for a in (item if isinstance(item, (list, tuple)) else [item])]
        return [a for a in flat if isinstance(a, TensorArg)]

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Positional argument ``index`` or keyword ``name``."""
        if name in self.kwargs:
            return self.kwargs[name]
        return self.args[index] if index < len(self.args) else default


# ---------------------------------------------------------------- tracing


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        return tuple(int(d) for d in value.shape)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return tuple(int(d) for d in value[0].shape)  # e.g. an LSTM's (output, states)
    return None


class _Recorder(torch.fx.Interpreter):
    """Runs an fx graph and records each call with the shapes of its tensors."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.calls: list[Call] = []
        self.producer: dict[str, str | None] = {}

    def _args(self, n: torch.fx.Node, value: Any) -> Any:
        if isinstance(value, torch.fx.Node):
            result = self.env[value]
            if isinstance(result, torch.Tensor):
                return TensorArg(_shape(result) or (), self.producer.get(value.name))
            return result
        if isinstance(value, (list, tuple)):
            return type(value)(self._args(n, v) for v in value)
        return value

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if n.op in ("call_module", "call_function", "call_method"):
            target = self.module.get_submodule(n.target) if n.op == "call_module" else n.target
            args = [self._args(n, a) for a in n.args]
            kwargs = {k: self._args(n, v) for k, v in n.kwargs.items()}
            call = Call(n.name, target, args, kwargs, _shape(result))
            call.parents = sorted({t.source for t in call.tensors if t.source})
            self.calls.append(call)
            self.producer[n.name] = call.name
        else:
            self.producer[n.name] = self.producer.get(n.args[0].name) if n.op == "output" else None
        return result


def _trace_fx(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[Call]:
    gm = torch.fx.symbolic_trace(module)
    recorder = _Recorder(gm)
    recorder.run(*inputs)
    return recorder.calls


class _FunctionRecorder(TorchFunctionMode):
    """Records torch functions called outside leaf modules (the hook fallback)."""

    def __init__(self, calls: list[Call], producer: dict[int, str], depth: list[int]) -> None:
        super().__init__()
        self.calls, self.producer, self.depth = calls, producer, depth

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        if self.depth[0] == 0 and name not in _IGNORED_FUNCTIONS:
            call = Call(f"{name}_{len(self.calls)}", func, _hook_args(args, self.producer),
                        {k: _hook_args([v], self.producer)[0] for k, v in kwargs.items()}, _shape(result))
            call.parents = sorted({t.source for t in call.tensors if t.source})
            self.calls.append(call)
            if isinstance(result, torch.Tensor):
                self.producer[id(result)] = call.name
        return result


# attribute reads and dunder helpers the function mode sees but that compute nothing
_IGNORED_FUNCTIONS = {"__get__", "__set__", "dim", "size", "shape", "__len__", "__getattribute__", "requires_grad_"}


def _hook_args(args: Sequence[Any], producer: dict[int, str]) -> list[Any]:
    out: list[Any] = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(TensorArg(_shape(a) or (), producer.get(id(a))))
        elif isinstance(a, (list, tuple)):
            out.append(type(a)(_hook_args(a, producer)))
        else:
            out.append(a)
    return out


def _trace_hooks(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[Call]:
    """Leaf-module hooks plus a function mode for the calls between leaves."""
    calls: list[Call] = []
    producer: dict[int, str] = {}
    depth = [0]
    seen: dict[str, int] = {}
    handles = []
    names = {m: n for n, m in module.named_modules()}

    def pre(m: nn.Module, args: tuple) -> None:
        depth[0] += 1
        m._costnet_args = _hook_args(args, producer)  # type: ignore[attr-defined]

    def post(m: nn.Module, args: tuple, result: Any) -> None:
        depth[0] -= 1
        name = names[m] or type(m).__name__
        seen[name] = seen.get(name, -1) + 1
        name += f"_{seen[name]}" if seen[name] else ""  # a module called twice gets two rows
        call = Call(name, m, m._costnet_args, {}, _shape(result))  # type: ignore[attr-defined]
        del m._costnet_args  # type: ignore[attr-defined]
        call.parents = sorted({t.source for t in call.tensors if t.source})
        calls.append(call)
        out = result[0] if isinstance(result, (tuple, list)) else result
        if isinstance(out, torch.Tensor):
            producer[id(out)] = call.name

    for m in module.modules():
        if not list(m.children()):
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with _FunctionRecorder(calls, producer, depth):
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return calls


@contextmanager
def _shapes_only(module: nn.Module) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Fake-tensor execution in eval mode (no arithmetic, no buffer updates)."""
    was_training = module.training
    module.eval()
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    try:
        with mode:
            yield lambda x: mode.from_tensor(x)
    finally:
        module.train(was_training)


def trace_calls(module: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...],
                method: str = "auto") -> tuple[list[Call], str]:
    """The calls ``module`` makes on ``inputs``, and the method that found them.

    ``method``: ``fx``, ``hooks``, or ``auto`` (fx, falling back to hooks when
    the module cannot be traced symbolically).
    """
    if method not in ("auto", "fx", "hooks"):
        raise CostnetError(f"unknown extraction method {method!r}: choose from auto, fx, hooks")
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    if method in ("auto", "fx"):
        try:
            with _shapes_only(module) as fake:
                return _trace_fx(module, tuple(fake(x) for x in inputs)), "fx"
        except Exception as exc:  # fx cannot trace data-dependent Python: fall back below
            if method == "fx":
                raise CostnetError(f"torch.fx cannot trace {type(module).__name__}: {exc}") from exc
    try:
        with _shapes_only(module) as fake:
            return _trace_hooks(module, tuple(fake(x) for x in inputs)), "hooks"
    except Exception:  # Python that reads tensor values (float(x.sum())) needs real tensors
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                return _trace_hooks(module, inputs), "hooks"
        finally:
            module.train(was_training)


# ---------------------------------------------------------------- classification

ELEMENTWISE_MODULES = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.GELU: "gelu", nn.SiLU: "silu",
                       nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Hardswish: "hardswish"}
ELEMENTWISE_FUNCTIONS = {"relu", "relu_", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish"}
BINARY_FUNCTIONS = {"add": "add", "iadd": "add", "__add__": "add", "__iadd__": "add", "add_": "add",
                    "sub": "add", "__sub__": "add", "mul": "mul", "__mul__": "mul", "imul": "mul",
                    "mul_": "mul", "truediv": "mul", "__truediv__": "mul", "div": "mul"}
FREE_FUNCTIONS = {"flatten", "reshape", "view", "permute", "transpose", "size", "getitem", "__getitem__",
                  "getattr", "contiguous", "unflatten", "unsqueeze", "squeeze", "chunk", "split", "expand", "t", "dim"}
FREE_MODULES = (nn.Flatten, nn.Identity, nn.Unflatten)


def _name(target: Any) -> str:
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", type(target).__name__).lstrip("_") if target not in (
        operator.add, operator.iadd) else "add"


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _tf_padding(size: int, kernel: int, stride: int, out: int) -> tuple[str, str]:
    """TensorFlow's padding rule that gives ``out`` ('same' first), and a note if none does."""
    for rule in ("same", "valid"):
        if out == output_size(size, kernel, stride, rule):
            return rule, ""
    nearest = min(("same", "valid"), key=lambda r: abs(output_size(size, kernel, stride, r) - out))
    return nearest, f"output {out} timed as TensorFlow '{nearest}' ({output_size(size, kernel, stride, nearest)})"


def _conv(m: nn.Conv2d, x: TensorArg, out: tuple[int, ...]) -> dict[str, Any]:
    b, cin, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
    oh = out[2]
    notes = []
    if (dh, dw) != (1, 1):
        raise _Uncovered(f"dilation {(dh, dw)}")
    if h != w or sh != sw:
        raise _Uncovered(f"non-square input {h}x{w} or stride {sh}x{sw}")
    cin_eff, kernel = cin, kh
    if kh != kw:
        # a kh x kw convolution is the GEMM of a 1x1 convolution over kh*kw times the channels (im2col)
        cin_eff, kernel = cin * kh * kw, 1
        notes.append(f"{kh}x{kw} kernel timed as 1x1 over {kh * kw}x the input channels (same GEMM)")
        size = oh * sh
    else:
        size = h
    padding, note = _tf_padding(size, kernel, sh, oh)
    notes += [note] if note else []
    return {"op": "conv2d", "batch": b, "size": size, "channels_in": cin_eff, "channels_out": m.out_channels,
            "kernel": kernel, "stride": sh, "padding": padding, "bias": m.bias is not None,
            "activation": "none", "groups": m.groups, "approx": "; ".join(notes)}


def _pool(x: TensorArg, out: tuple[int, ...], kernel: Any, stride: Any, kind: str) -> dict[str, Any]:
    b, c, h, w = x.shape
    k, s = _pair(kernel)[0], _pair(stride if stride else kernel)[0]
    if h != w or _pair(kernel)[0] != _pair(kernel)[1]:
        raise _Uncovered(f"non-square pooling {h}x{w}, kernel {kernel}")
    padding, note = _tf_padding(h, k, s, out[2])
    return {"op": "pool2d", "batch": b, "size": h, "channels_in": c, "kernel": k, "stride": s,
            "padding": padding, "pool": kind, "approx": note}


def _adaptive(x: TensorArg, out: tuple[int, ...], kind: str) -> dict[str, Any]:
    b, c, h, w = x.shape
    if h != w or out[2] != out[3]:
        raise _Uncovered(f"non-square adaptive pooling {h}x{w} -> {out[2]}x{out[3]}")
    return {"op": "adaptive_pool2d", "batch": b, "size": h, "channels_in": c, "target_size": out[2], "pool": kind}


def _rows(shape: tuple[int, ...]) -> tuple[int, int]:
    """(batch, features per sample) of a tensor for elementwise layers."""
    return shape[0], math.prod(shape[1:]) if len(shape) > 1 else 1


def _elementwise(fn: str, x: TensorArg, approx: str = "") -> dict[str, Any]:
    b, f = _rows(x.shape)
    return {"op": "elementwise", "batch": b, "features": f, "fn": fn, "approx": approx}


class _Uncovered(Exception):
    """A call no timed op covers (the message says why)."""


def _classify_module(m: nn.Module, call: Call) -> dict[str, Any]:
    x, out = call.tensors[0], call.output or ()
    if isinstance(m, FREE_MODULES):
        return {"kind": "free"}
    if isinstance(m, nn.Conv2d):
        return _conv(m, x, out)
    if isinstance(m, nn.Linear):
        return {"op": "dense", "batch": x.numel // m.in_features, "in_features": m.in_features,
                "out_features": m.out_features, "bias": m.bias is not None, "activation": "none"}
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool(x, out, m.kernel_size, m.stride, "max" if isinstance(m, nn.MaxPool2d) else "avg")
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return _adaptive(x, out, "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max")
    if isinstance(m, nn.BatchNorm2d):
        b, c, h, w = x.shape
        if h != w:
            raise _Uncovered(f"non-square batch norm input {h}x{w}")
        return {"op": "batchnorm2d", "batch": b, "size": h, "channels_in": c}
    if type(m) in ELEMENTWISE_MODULES:
        return _elementwise(ELEMENTWISE_MODULES[type(m)], x)
    if isinstance(m, nn.Dropout):
        b, f = _rows(x.shape)
        return {"op": "dropout", "batch": b, "features": f, "p": float(m.p)}
    if isinstance(m, nn.LayerNorm):
        if len(m.normalized_shape) != 1:
            raise _Uncovered(f"layer norm over {tuple(m.normalized_shape)}")
        return {"op": "layernorm", "batch": x.shape[0], "seq_len": math.prod(x.shape[1:-1]),
                "features": x.shape[-1]}
    if isinstance(m, nn.Softmax):
        return _softmax(x, m.dim)
    if isinstance(m, nn.Embedding):
        b, length = (x.shape[0], math.prod(x.shape[1:])) if len(x.shape) > 1 else (1, x.shape[0])
        return {"op": "embedding", "batch": b, "seq_len": length, "vocab": m.num_embeddings,
                "features": m.embedding_dim}
    raise _Uncovered(f"no cost model for module {type(m).__name__}")


def _softmax(x: TensorArg, dim: Any) -> dict[str, Any]:
    if dim not in (-1, len(x.shape) - 1):
        raise _Uncovered(f"softmax over dim {dim} (only the last dimension is timed)")
    return {"op": "softmax", "batch": x.shape[0], "rows": math.prod(x.shape[1:-1]), "features": x.shape[-1]}


def _classify_function(name: str, call: Call) -> dict[str, Any]:
    tensors = call.tensors
    if name in FREE_FUNCTIONS:
        return {"kind": "free"}
    if name in BINARY_FUNCTIONS:
        if len(tensors) >= 2:
            big = max(tensors, key=lambda t: t.numel)
            note = "" if tensors[0].shape == tensors[1].shape else "broadcast operand timed at full size"
            return _elementwise(BINARY_FUNCTIONS[name], big, note)
        return _elementwise("relu", tensors[0], f"{name} with a scalar timed as a unary elementwise op")
    if name.rstrip("_") in ELEMENTWISE_FUNCTIONS:
        return _elementwise(name.rstrip("_"), tensors[0])
    if name == "dropout":
        b, f = _rows(tensors[0].shape)
        return {"op": "dropout", "batch": b, "features": f, "p": float(call.arg(1, "p", 0.5))}
    if name == "softmax":
        return _softmax(tensors[0], call.arg(1, "dim", -1))
    if name in ("max_pool2d", "avg_pool2d"):
        return _pool(tensors[0], call.output or (), call.arg(1, "kernel_size"), call.arg(2, "stride"),
                     name.split("_")[0])
    if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        return _adaptive(tensors[0], call.output or (), name.split("_")[1])
    if name == "scaled_dot_product_attention":
        q, k = tensors[0], tensors[1]
        if len(q.shape) != 4 or q.shape[2] != k.shape[2]:
            raise _Uncovered(f"attention over shapes {q.shape}, {k.shape}")
        return {"op": "attention", "batch": q.shape[0], "heads": q.shape[1], "seq_len": q.shape[2],
                "head_dim": q.shape[3], "causal": bool(call.arg(5, "is_causal", False))}
    if name in ("matmul", "bmm") and len(tensors) == 2 and len(tensors[0].shape) >= 2:
        a, b = tensors
        return {"op": "matmul", "batch": math.prod(a.shape[:-2]) or 1, "m": a.shape[-2], "k": a.shape[-1],
                "n": b.shape[-1]}
    raise _Uncovered(f"no cost model for {name}")


def _analytical(call: Call, width: int = 4) -> dict[str, Any]:
    """FLOPs and bytes of a call no op covers: one operation per output element, every
    input read once and the output written once (a memory-bound estimate)."""
    out = math.prod(call.output) if call.output else 0
    read = sum(t.numel for t in call.tensors)
    return {"flops_fwd": float(out), "bytes": float(width * (read + out))}


def classify(call: Call) -> dict[str, Any]:
    """The row of one call (see the module docstring for ``kind``)."""
    target = call.target
    name = _name(target)
    row: dict[str, Any] = {"name": call.name, "module": type(target).__name__ if isinstance(target, nn.Module)
                           else name, "parents": list(call.parents),
                           "in_shape": str(list(call.tensors[0].shape)) if call.tensors else "",
                           "out_shape": str(list(call.output)) if call.output else ""}
    try:
        found = _classify_module(target, call) if isinstance(target, nn.Module) else _classify_function(name, call)
        row.update(kind=found.pop("kind", "layer"), **found)
    except _Uncovered as why:
        row.update(kind="analytical", op=name, reason=str(why), **_analytical(call))
    return row


def extract_layers(module: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...],
                   method: str = "auto") -> pd.DataFrame:
    """One row per call of ``module`` on ``inputs`` (see the module docstring).

    Covered layers carry their op's config columns, so a cost model for that op
    predicts them; ``input_grad`` is False for layers reading only the
    network's inputs (a training step does not differentiate those).
    """
    calls, used = trace_calls(module, inputs, method)
    rows = [classify(c) for c in calls]
    frame = pd.DataFrame(rows)
    for col in ("approx", "reason"):
        frame[col] = frame.get(col, pd.Series("", index=frame.index)).fillna("")
    frame["input_grad"] = frame["parents"].map(bool)
    frame.attrs["method"] = used
    for op in frame.loc[frame["kind"] == "layer", "op"].unique():
        get_op(str(op))  # every covered op must be a known collector op
    return frame
