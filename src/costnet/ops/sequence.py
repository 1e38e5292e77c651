"""Layers over token sequences: layer normalization and LSTMs."""

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
from costnet.ops.params import Params
from costnet.ops.traced import Call, Uncovered

# Layer norm per element, counted as batch norm's training forward (BATCHNORM_FLOPS,
# costnet.ops.norm): each row's mean and variance, then normalize and scale-shift.
LAYERNORM_FLOPS = 8
# An LSTM's elementwise FLOPs per hidden unit, step and layer: the gates' activations and
# the cell and hidden-state updates (costnet's estimate).
LSTM_CELL_FLOPS = 15


class LayerNorm(Op):
    """``nn.LayerNorm`` over the last dimension of [batch, seq_len, features], with affine."""

    name = "layernorm"
    ranges = ("batch", "seq_len", "features")
    columns = ("batch", "seq_len", "features")
    modules = (nn.LayerNorm,)

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        x = tensor((cfg["batch"], cfg["seq_len"], cfg["features"]), device, dtype)
        return nn.LayerNorm(cfg["features"], device=device, dtype=dtype), (x,)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        f = column(rows, "features")
        n = column(rows, "batch", 1) * column(rows, "seq_len") * f
        zeros = np.zeros(len(rows))
        return Analytical(mm=zeros, ew=LAYERNORM_FLOPS * n, inputs=n, params=2 * f, outputs=n,
                          align_in=alignment(f))  # params: weight and bias

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        assert isinstance(module, nn.LayerNorm)
        if len(module.normalized_shape) != 1:
            raise Uncovered(f"layer norm over {tuple(module.normalized_shape)}")
        shape = call.tensors[0].shape
        return {"batch": shape[0], "seq_len": math.prod(shape[1:-1]), "features": shape[-1]}


class _LastOutput(nn.Module):
    """An LSTM returning only its output sequence (not the final states)."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


class Lstm(Op):
    """``nn.LSTM`` (batch first) over [batch, seq_len, in_features]."""

    name = "lstm"
    ranges = ("batch", "seq_len", "in_features", "hidden_size", "layers")
    columns = ("batch", "seq_len", "in_features", "hidden_size", "layers")

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        lstm = nn.LSTM(cfg["in_features"], cfg["hidden_size"], num_layers=cfg["layers"],
                       batch_first=True, device=device, dtype=dtype)
        x = tensor((cfg["batch"], cfg["seq_len"], cfg["in_features"]), device, dtype)
        return _LastOutput(lstm), (x,)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        fin, hid, layers = column(rows, "in_features"), column(rows, "hidden_size"), column(rows, "layers", 1)
        steps = column(rows, "batch", 1) * column(rows, "seq_len")
        # each step multiplies the 4 gates' weights by [input, hidden] (the first layer's input
        # is in_features wide, the others' 2 * hidden), as torch.nn.LSTM's docs define them
        mm = 2 * steps * 4 * hid * ((fin + hid) + (layers - 1) * 2 * hid)
        # 4 gates, each with input and recurrent weights and two biases (torch.nn.LSTM docs)
        params = 4 * hid * (fin + hid + 2) + (layers - 1) * 4 * hid * (2 * hid + 2)
        return Analytical(mm=mm, ew=steps * layers * hid * LSTM_CELL_FLOPS, inputs=steps * fin, params=params,
                          outputs=steps * hid, align_in=alignment(fin), align_out=alignment(hid))

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        e = super().elements(cfg)
        return replace(e, outputs=e.outputs * (1 + 5 * cfg["layers"]))  # output plus saved gate states
