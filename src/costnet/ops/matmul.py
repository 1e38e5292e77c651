"""Batched matrix products and scaled dot-product attention."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from costnet.ops.base import Elements, Op, Params, tensor


class _Bmm(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(a, b)


class Matmul(Op):
    """``torch.bmm`` of [batch, m, k] by [batch, k, n]."""

    name = "matmul"
    ranges = ("batch", "m", "k", "n")
    columns = ("batch", "m", "k", "n")
    has_params = False

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        b, m, k, n = (cfg[c] for c in self.columns)
        return _Bmm(), (tensor((b, m, k), device, dtype), tensor((b, k, n), device, dtype))

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        b, m, k, n = (cfg[c] for c in self.columns)
        return Elements(inputs=b * k * (m + n), params=0, outputs=b * m * n)


class _Sdpa(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


class Attention(Op):
    """``F.scaled_dot_product_attention`` over [batch, heads, seq_len, head_dim] (self-attention)."""

    name = "attention"
    ranges = ("batch", "heads", "seq_len", "head_dim")
    choices = ("causal",)
    allowed = {"causal": (True, False)}
    columns = ("batch", "heads", "seq_len", "head_dim", "causal")
    has_params = False

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg: dict[str, Any] = {name: p.int(name, rng) for name in self.ranges}
        cfg["causal"] = bool(p.pick("causal", rng))
        return cfg

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        shape = (cfg["batch"], cfg["heads"], cfg["seq_len"], cfg["head_dim"])
        return _Sdpa(cfg["causal"]), tuple(tensor(shape, device, dtype) for _ in range(3))

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        one = cfg["batch"] * cfg["heads"] * cfg["seq_len"] * cfg["head_dim"]
        scores = cfg["batch"] * cfg["heads"] * cfg["seq_len"] ** 2  # the math kernel's score matrix
        return Elements(inputs=3 * one, params=0, outputs=one + scores)
