"""Parameter-free layers over every element: activations, binary arithmetic, dropout, softmax."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.ops.base import Analytical, Op, PerRow, alignment, column, lookup, qualified_name, tensor
from costnet.ops.params import Params
from costnet.ops.traced import Call, TensorArg, Uncovered


class _Binary(nn.Module):
    """``fn`` of two tensors."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(x, y)


class _WithScalar(nn.Module):
    """``fn`` of a tensor and the Python scalar ``SCALAR_OPERAND``."""

    def __init__(self, fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, SCALAR_OPERAND)


UNARY: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU, "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "hardswish": nn.Hardswish,
}
BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add, "mul": torch.mul, "div": torch.div, "pow": torch.pow}
# The same with a Python scalar as second operand: one tensor read (NeuSight's addu, mulu,
# divu, powu; ../shared/datasets/neusight2025/README.md, "What each op computes").
WITH_SCALAR = {f"{fn}u": BINARY[fn] for fn in ("add", "mul", "div", "pow")}
# 1.5 is no exponent torch.pow specializes (0.5, -0.5, -1, 2, 3, -2 in PowKernel.cu), so powu
# runs the general kernel, as NeuSight's rows did (their kernel_name: pow_tensor_scalar_kernel_impl's
# fourth lambda, its general branch).
SCALAR_OPERAND = 1.5
FUNCTIONS = (*UNARY, *BINARY, *WITH_SCALAR)
# Activation modules of transformers (transformers/activations.py) and the function each is
# timed as: the GELU approximations (tanh or sigmoid forms) as gelu.
LIBRARY_UNARY = {f"transformers.activations.{name}": "gelu" for name in (
    "NewGELUActivation", "GELUActivation", "FastGELUActivation", "QuickGELUActivation", "GELUTanh",
    "PytorchGELUTanh", "AccurateGELUActivation", "GELUPytorchTanh")}
# Forward FLOPs per output element of the elementwise op's functions, counting each
# operation of the defining formula (torch.nn docs) as 1 and exp/erf/log like a tanh
# (as ACTIVATION_FLOPS does): relu6 = min(max(x, 0), 6); silu = x * sigmoid(x);
# gelu = x/2 * (1 + erf(x / sqrt 2)); hardswish = x * relu6(x + 3) / 6; pow(x, y) = exp(y * log x).
ELEMENTWISE_FLOPS = {"relu": 1, "relu6": 2, "sigmoid": 4, "tanh": 5, "silu": 5, "gelu": 9, "hardswish": 5,
                     "add": 1, "mul": 1, "div": 1, "pow": 11}
ELEMENTWISE_FLOPS.update({fn: ELEMENTWISE_FLOPS[fn[:-1]] for fn in WITH_SCALAR})
# Dropout in training draws a uniform number, compares it with p and scales the kept
# values (about 3 per element); in forward mode (eval) it returns its input untouched.
DROPOUT_FLOPS = {"forward": 0, "train": 3}
# Softmax per element: max, subtract, exp, sum, divide.
SOFTMAX_FLOPS = 5

# Traced torch functions and tensor methods (in place ones too) timed as each function;
# subtraction and division are timed as their cost twins add and mul.
UNARY_FUNCTIONS = {**{fn: fn for fn in UNARY}, **{f"{fn}_": fn for fn in UNARY}}
BINARY_FUNCTIONS = {"add": "add", "iadd": "add", "__add__": "add", "__iadd__": "add", "add_": "add",
                    "sub": "add", "__sub__": "add", "mul": "mul", "__mul__": "mul", "imul": "mul",
                    "mul_": "mul", "truediv": "mul", "__truediv__": "mul", "div": "mul"}


def _flat(shape: tuple[int, ...]) -> tuple[int, int]:
    """(batch, features per sample) of a traced tensor, as these layers see it."""
    return shape[0], math.prod(shape[1:]) if len(shape) > 1 else 1


def _per_element(rows: pd.DataFrame, batch: np.ndarray, per: PerRow, operands: PerRow = 1.0) -> Analytical:
    """``batch`` x ``features`` elements costing ``per`` FLOPs each, read from ``operands`` inputs."""
    f = column(rows, "features")
    n = batch * f
    zeros = np.zeros(len(rows))
    return Analytical(mm=zeros, ew=n * per, inputs=n * operands, params=zeros, outputs=n,
                      align_in=alignment(f), align_out=alignment(f))


class Elementwise(Op):
    """One elementwise function of [batch, features]; the ``BINARY`` ones take two such inputs,
    the ``WITH_SCALAR`` ones one and a Python scalar.

    Out of place (a network's ``ReLU(inplace=True)`` saves the output allocation).
    """

    name = "elementwise"
    ranges = ("batch", "features")
    choices = ("fn",)
    allowed = {"fn": FUNCTIONS}
    columns = ("batch", "features", "fn")
    has_params = False
    modules = tuple(UNARY.values())
    module_paths = tuple(LIBRARY_UNARY)
    functions = (*BINARY_FUNCTIONS, *UNARY_FUNCTIONS)

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {"batch": p.int("batch", rng), "features": p.int("features", rng), "fn": p.pick("fn", rng)}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        shape = (cfg["batch"], cfg["features"])
        fn = cfg["fn"]
        if fn in BINARY:
            return _Binary(BINARY[fn]), (tensor(shape, device, dtype), tensor(shape, device, dtype))
        if fn in WITH_SCALAR:
            return _WithScalar(WITH_SCALAR[fn]), (tensor(shape, device, dtype),)
        if fn in UNARY:
            return UNARY[fn](), (tensor(shape, device, dtype),)
        raise CostnetError(f"unknown elementwise fn {fn!r}: choose from {list(FUNCTIONS)}")

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        per = lookup(rows["fn"], ELEMENTWISE_FLOPS, 1)
        operands = np.where(rows["fn"].isin(tuple(BINARY)).to_numpy(), 2.0, 1.0)
        return _per_element(rows, column(rows, "batch", 1), per, operands)

    @staticmethod
    def _columns(fn: str, x: TensorArg, approx: str = "") -> dict[str, Any]:
        b, f = _flat(x.shape)
        return {"batch": b, "features": f, "fn": fn, "approx": approx}

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        fn = next((fn for fn, kind in UNARY.items() if isinstance(module, kind)), None)
        if fn is None:  # a library's activation, by qualified class name
            path = next(p for p in map(qualified_name, type(module).__mro__) if p in LIBRARY_UNARY)
            return self._columns(LIBRARY_UNARY[path], call.tensors[0], f"{type(module).__name__} timed as gelu")
        return self._columns(fn, call.tensors[0])

    def from_function(self, name: str, call: Call) -> dict[str, Any]:
        tensors = call.tensors
        if name in UNARY_FUNCTIONS:
            return self._columns(UNARY_FUNCTIONS[name], tensors[0])
        if len(tensors) >= 2:
            big = max(tensors, key=lambda t: t.numel)
            note = "" if tensors[0].shape == tensors[1].shape else "broadcast operand timed at full size"
            return self._columns(BINARY_FUNCTIONS[name], big, note)
        return self._columns("relu", tensors[0], f"{name} with a scalar timed as a unary elementwise op")


class Dropout(Op):
    """``nn.Dropout(p)`` on [batch, features]: an identity in forward mode (eval), as in inference."""

    name = "dropout"
    ranges = ("batch", "features")
    choices = ("p",)
    columns = ("batch", "features", "p")
    has_params = False
    modules = (nn.Dropout,)
    functions = ("dropout",)

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        prob = float(p.pick("p", rng))
        if not 0 <= prob <= 1:
            raise CostnetError(f"dropout: p must be in [0, 1], got {prob}")
        return {"batch": p.int("batch", rng), "features": p.int("features", rng), "p": prob}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return nn.Dropout(cfg["p"]), (tensor((cfg["batch"], cfg["features"]), device, dtype),)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        return _per_element(rows, column(rows, "batch", 1), lookup(rows["mode"], DROPOUT_FLOPS, 0))

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        assert isinstance(module, nn.Dropout)
        b, f = _flat(call.tensors[0].shape)
        return {"batch": b, "features": f, "p": float(module.p)}

    def from_function(self, name: str, call: Call) -> dict[str, Any]:
        b, f = _flat(call.tensors[0].shape)
        return {"batch": b, "features": f, "p": float(call.arg(1, "p", 0.5))}


class Softmax(Op):
    """Softmax over the last dimension of [batch, rows, features]."""

    name = "softmax"
    ranges = ("batch", "rows", "features")
    columns = ("batch", "rows", "features")
    has_params = False
    row_dims = ("batch", "rows")
    modules = (nn.Softmax,)
    functions = ("softmax",)

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return nn.Softmax(dim=-1), (tensor((cfg["batch"], cfg["rows"], cfg["features"]), device, dtype),)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        return _per_element(rows, column(rows, "batch", 1) * column(rows, "rows"), SOFTMAX_FLOPS)

    @staticmethod
    def _columns(x: TensorArg, dim: Any) -> dict[str, Any]:
        if dim not in (-1, len(x.shape) - 1):
            raise Uncovered(f"softmax over dim {dim} (only the last dimension is timed)")
        return {"batch": x.shape[0], "rows": math.prod(x.shape[1:-1]), "features": x.shape[-1]}

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        assert isinstance(module, nn.Softmax)
        return self._columns(call.tensors[0], module.dim)

    def from_function(self, name: str, call: Call) -> dict[str, Any]:
        return self._columns(call.tensors[0], call.arg(1, "dim", -1))
