"""2-D max and average pooling, fixed-window and adaptive (square inputs and windows)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from costnet.ops.base import (PADDINGS, Elements, Op, Padded, Params, channel_cap, output_size,
                              spatial_padding, tensor)

POOLS = ("max", "avg")


def _planes(p: Params, rng: np.random.Generator) -> dict[str, Any]:
    """Batch, square size and input channels below ``channel_budget / size``, drawn in that
    order (size first, so the cap can depend on it)."""
    size = p.int("size", rng)
    cap = channel_cap(p.settings["channel_budget"], size)
    return {"batch": p.int("batch", rng), "size": size, "channels_in": p.int("channels", rng, high=cap)}


class Pool2d(Op):
    """Max or average pooling with TensorFlow-style 'same'/'valid' padding.

    Max pooling pads asymmetric borders with -inf so padding never wins; average
    pooling excludes symmetric padding from its counts (TensorFlow's rule), while
    an explicit asymmetric zero pad is counted (a small difference in values, none
    in cost).
    """

    name = "pool2d"
    ranges = ("batch", "size", "channels", "kernel", "stride")
    choices = ("padding", "pool")
    allowed = {"padding": PADDINGS, "pool": POOLS}
    settings = ("channel_budget",)
    columns = ("batch", "size", "channels_in", "kernel", "stride", "padding", "pool")
    has_params = False

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg = _planes(p, rng)
        return {
            **cfg,
            "kernel": p.int("kernel", rng, high=cfg["size"]),
            "stride": p.int("stride", rng),
            "padding": p.pick("padding", rng),
            "pool": p.pick("pool", rng),
        }

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        sym, pad = spatial_padding(cfg["size"], cfg["kernel"], cfg["stride"], cfg["padding"])
        if cfg["pool"] == "max":
            layer: nn.Module = nn.MaxPool2d(cfg["kernel"], cfg["stride"], padding=sym)
            fill = -math.inf
        else:
            layer = nn.AvgPool2d(cfg["kernel"], cfg["stride"], padding=sym, count_include_pad=False)
            fill = 0.0
        x = tensor((cfg["batch"], cfg["channels_in"], cfg["size"], cfg["size"]), device, dtype)
        return Padded(layer, pad, nn.Identity(), pad_value=fill), (x,)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        out = output_size(cfg["size"], cfg["kernel"], cfg["stride"], cfg["padding"])
        return Elements(
            inputs=cfg["batch"] * cfg["channels_in"] * cfg["size"] ** 2,
            params=0,
            outputs=cfg["batch"] * cfg["channels_in"] * out**2,
        )


class AdaptivePool2d(Op):
    """``nn.AdaptiveAvgPool2d`` / ``nn.AdaptiveMaxPool2d(target_size)`` on [batch, channels_in, size, size].

    The target size is drawn from its range capped at ``size`` (no upsampling);
    channels below ``channel_budget / size`` as in :class:`Pool2d`.
    """

    name = "adaptive_pool2d"
    ranges = ("batch", "size", "channels", "target_size")
    choices = ("pool",)
    allowed = {"pool": POOLS}
    settings = ("channel_budget",)
    columns = ("batch", "size", "channels_in", "target_size", "pool")
    has_params = False

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg = _planes(p, rng)
        return {
            **cfg,
            "target_size": p.int("target_size", rng, high=cfg["size"]),
            "pool": p.pick("pool", rng),
        }

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        kind = nn.AdaptiveMaxPool2d if cfg["pool"] == "max" else nn.AdaptiveAvgPool2d
        x = tensor((cfg["batch"], cfg["channels_in"], cfg["size"], cfg["size"]), device, dtype)
        return kind(cfg["target_size"]), (x,)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        planes = cfg["batch"] * cfg["channels_in"]
        return Elements(inputs=planes * cfg["size"] ** 2, params=0, outputs=planes * cfg["target_size"] ** 2)
