"""Batch normalization of 2-D feature maps (square inputs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from costnet.ops.base import Elements, Op, Params, channel_cap, tensor


class BatchNorm2d(Op):
    """``nn.BatchNorm2d`` (affine, running statistics) over [batch, channels_in, size, size].

    Channels are capped below ``channel_budget / size`` as in the convolution spaces,
    so one space spans wide early feature maps and deep late ones.
    """

    name = "batchnorm2d"
    ranges = ("batch", "size", "channels")
    settings = ("channel_budget",)
    columns = ("batch", "size", "channels_in")

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        size = p.int("size", rng)
        cap = channel_cap(p.settings["channel_budget"], size)
        return {"batch": p.int("batch", rng), "size": size, "channels_in": p.int("channels", rng, high=cap)}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        x = tensor((cfg["batch"], cfg["channels_in"], cfg["size"], cfg["size"]), device, dtype)
        return nn.BatchNorm2d(cfg["channels_in"], device=device, dtype=dtype), (x,)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        n = cfg["batch"] * cfg["channels_in"] * cfg["size"] ** 2
        return Elements(inputs=n, params=2 * cfg["channels_in"], outputs=n)  # weight and bias
