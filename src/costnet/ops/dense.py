"""Fully connected layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from costnet.ops.base import ACTIVATIONS, Elements, Op, Params, activation, tensor


class Dense(Op):
    """``nn.Linear`` followed by an activation (Justus et al. 2018: features 1-4095)."""

    name = "dense"
    ranges = ("batch", "in_features", "out_features")
    choices = ("bias", "activation")
    allowed = {"bias": (True, False), "activation": tuple(ACTIVATIONS)}
    columns = ("batch", "in_features", "out_features", "bias", "activation")

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "batch": p.int("batch", rng),
            "in_features": p.int("in_features", rng),
            "out_features": p.int("out_features", rng),
            "bias": bool(p.pick("bias", rng)),
            "activation": p.pick("activation", rng),
        }

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        linear = nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"],
                           device=device, dtype=dtype)
        x = tensor((cfg["batch"], cfg["in_features"]), device, dtype)
        return nn.Sequential(linear, activation(cfg["activation"])), (x,)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        weights = cfg["in_features"] * cfg["out_features"]
        return Elements(
            inputs=cfg["batch"] * cfg["in_features"],
            params=weights + (cfg["out_features"] if cfg["bias"] else 0),
            outputs=cfg["batch"] * cfg["out_features"],
        )
