"""Layers over token sequences: layer normalization and LSTMs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from costnet.ops.base import Elements, Op, Params, tensor


class LayerNorm(Op):
    """``nn.LayerNorm`` over the last dimension of [batch, seq_len, features], with affine."""

    name = "layernorm"
    ranges = ("batch", "seq_len", "features")
    columns = ("batch", "seq_len", "features")

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        x = tensor((cfg["batch"], cfg["seq_len"], cfg["features"]), device, dtype)
        return nn.LayerNorm(cfg["features"], device=device, dtype=dtype), (x,)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        n = cfg["batch"] * cfg["seq_len"] * cfg["features"]
        return Elements(inputs=n, params=2 * cfg["features"], outputs=n)


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

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        h, layers = cfg["hidden_size"], cfg["layers"]
        # 4 gates, each with input and recurrent weights and two biases (torch.nn.LSTM docs).
        params = 4 * h * (cfg["in_features"] + h + 2) + (layers - 1) * 4 * h * (2 * h + 2)
        steps = cfg["batch"] * cfg["seq_len"]
        return Elements(inputs=steps * cfg["in_features"], params=params,
                        outputs=steps * h * (1 + 5 * layers))  # output plus saved gate states
