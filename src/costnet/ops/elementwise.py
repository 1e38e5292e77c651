"""Parameter-free layers over every element: activations, binary arithmetic, dropout, softmax."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.ops.base import Elements, Op, Params, tensor


class _Add(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class _Mul(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * y


UNARY: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU, "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "hardswish": nn.Hardswish,
}
BINARY: dict[str, type[nn.Module]] = {"add": _Add, "mul": _Mul}
FUNCTIONS = (*UNARY, *BINARY)


def _rows(cfg: Mapping[str, Any]) -> int:
    return cfg["batch"] * cfg["features"]


class Elementwise(Op):
    """One elementwise function of [batch, features]; ``add`` and ``mul`` take two such inputs.

    Out of place (a network's ``ReLU(inplace=True)`` saves the output allocation).
    """

    name = "elementwise"
    ranges = ("batch", "features")
    choices = ("fn",)
    allowed = {"fn": FUNCTIONS}
    columns = ("batch", "features", "fn")
    has_params = False

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {"batch": p.int("batch", rng), "features": p.int("features", rng), "fn": p.pick("fn", rng)}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        shape = (cfg["batch"], cfg["features"])
        fn = cfg["fn"]
        if fn in BINARY:
            return BINARY[fn](), (tensor(shape, device, dtype), tensor(shape, device, dtype))
        if fn in UNARY:
            return UNARY[fn](), (tensor(shape, device, dtype),)
        raise CostnetError(f"unknown elementwise fn {fn!r}: choose from {list(FUNCTIONS)}")

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        n = _rows(cfg)
        return Elements(inputs=n * (2 if cfg["fn"] in BINARY else 1), params=0, outputs=n)


class Dropout(Op):
    """``nn.Dropout(p)`` on [batch, features]: an identity in forward mode (eval), as in inference."""

    name = "dropout"
    ranges = ("batch", "features")
    choices = ("p",)
    columns = ("batch", "features", "p")
    has_params = False

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        prob = float(p.pick("p", rng))
        if not 0 <= prob <= 1:
            raise CostnetError(f"dropout: p must be in [0, 1], got {prob}")
        return {"batch": p.int("batch", rng), "features": p.int("features", rng), "p": prob}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return nn.Dropout(cfg["p"]), (tensor((cfg["batch"], cfg["features"]), device, dtype),)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        return Elements(inputs=_rows(cfg), params=0, outputs=_rows(cfg))


class Softmax(Op):
    """Softmax over the last dimension of [batch, rows, features]."""

    name = "softmax"
    ranges = ("batch", "rows", "features")
    columns = ("batch", "rows", "features")
    has_params = False

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return nn.Softmax(dim=-1), (tensor((cfg["batch"], cfg["rows"], cfg["features"]), device, dtype),)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        n = cfg["batch"] * cfg["rows"] * cfg["features"]
        return Elements(inputs=n, params=0, outputs=n)
