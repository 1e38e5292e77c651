"""Batched matrix products and scaled dot-product attention."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.ops.base import Analytical, Elements, Op, alignment, column, tensor
from costnet.ops.elementwise import SOFTMAX_FLOPS
from costnet.ops.params import Params
from costnet.ops.traced import Call, Uncovered


class _Bmm(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(a, b)


class Matmul(Op):
    """``torch.bmm`` of [batch, m, k] by [batch, k, n]; traced ``matmul``/``bmm`` calls of
    two operands of two or more dimensions (leading dimensions fold into the batch)."""

    name = "matmul"
    ranges = ("batch", "m", "k", "n")
    columns = ("batch", "m", "k", "n")
    has_params = False
    functions = ("matmul", "bmm")

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        b, m, k, n = (cfg[c] for c in self.columns)
        return _Bmm(), (tensor((b, m, k), device, dtype), tensor((b, k, n), device, dtype))

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        b, m, kk, n = column(rows, "batch", 1), column(rows, "m"), column(rows, "k"), column(rows, "n")
        zeros = np.zeros(len(rows))
        return Analytical(mm=2 * b * m * kk * n, ew=zeros, inputs=b * kk * (m + n), params=zeros,
                          outputs=b * m * n, align_in=alignment(kk), align_out=alignment(n),
                          gemm=(m, n, kk), gemms=b, input_grad_mm=2.0)  # both operands take a gradient

    def from_function(self, name: str, call: Call) -> dict[str, Any]:
        tensors = call.tensors
        if len(tensors) != 2 or len(tensors[0].shape) < 2:
            raise Uncovered(f"no cost model for {name}")
        a, b = tensors
        return {"batch": math.prod(a.shape[:-2]) or 1, "m": a.shape[-2], "k": a.shape[-1], "n": b.shape[-1]}


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
    functions = ("scaled_dot_product_attention",)

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg: dict[str, Any] = {name: p.int(name, rng) for name in self.ranges}
        cfg["causal"] = bool(p.pick("causal", rng))
        return cfg

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        shape = (cfg["batch"], cfg["heads"], cfg["seq_len"], cfg["head_dim"])
        return _Sdpa(cfg["causal"]), tuple(tensor(shape, device, dtype) for _ in range(3))

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        b, h, L, d = column(rows, "batch", 1), column(rows, "heads"), column(rows, "seq_len"), column(rows, "head_dim")
        causal = np.where(column(rows, "causal") > 0, 0.5, 1.0)  # a causal mask skips about half the scores
        one = b * h * L * d
        # forward: S = Q K^T and O = P V, and a softmax over the scores S;
        # backward: dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q: twice the forward's two products
        return Analytical(mm=2 * 2 * b * h * L * L * d * causal, ew=SOFTMAX_FLOPS * b * h * L * L * causal,
                          inputs=3 * one, params=np.zeros(len(rows)), outputs=one, align_in=alignment(d),
                          align_out=alignment(L), input_grad_mm=2.0)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        e = super().elements(cfg)
        scores = cfg["batch"] * cfg["heads"] * cfg["seq_len"] ** 2  # the math kernel's score matrix
        return replace(e, outputs=e.outputs + scores)

    def from_function(self, name: str, call: Call) -> dict[str, Any]:
        q, k = call.tensors[0], call.tensors[1]
        if len(q.shape) != 4 or q.shape[2] != k.shape[2]:
            raise Uncovered(f"attention over shapes {q.shape}, {k.shape}")
        return {"batch": q.shape[0], "heads": q.shape[1], "seq_len": q.shape[2], "head_dim": q.shape[3],
                "causal": bool(call.arg(5, "is_causal", False))}
