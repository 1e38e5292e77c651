"""2-D convolutions: plain, grouped and depthwise (square inputs and kernels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.ops.base import (ACTIVATIONS, PADDINGS, Elements, Op, Padded, Params, activation, channel_cap,
                              output_size, tensor, spatial_padding)


class Conv2d(Op):
    """``nn.Conv2d`` with TensorFlow-style 'same'/'valid' padding and an activation.

    Sampling follows Justus et al. 2018: kernel 1..min(kmax, size), channels
    1..below ``channel_budget / size``; ``groups`` (a list of ints) makes grouped
    convolutions, channels being rounded down to multiples of the group count.
    """

    name = "conv2d"
    ranges = ("batch", "size", "channels", "kernel", "stride")
    choices = ("padding", "bias", "activation", "groups")
    settings = ("channel_budget",)
    allowed = {"padding": PADDINGS, "bias": (True, False), "activation": tuple(ACTIVATIONS)}
    columns = ("batch", "size", "channels_in", "channels_out", "kernel", "stride", "padding",
               "bias", "activation", "groups")

    def _common(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        size = p.int("size", rng)
        cap = channel_cap(p.settings["channel_budget"], size)
        return {
            "batch": p.int("batch", rng),
            "size": size,
            "kernel": p.int("kernel", rng, high=size),
            "stride": p.int("stride", rng),
            "padding": p.pick("padding", rng),
            "bias": bool(p.pick("bias", rng)),
            "activation": p.pick("activation", rng),
            "_cap": cap,
        }

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg = self._common(p, rng)
        cap = cfg.pop("_cap")
        groups = int(p.pick("groups", rng))
        if groups < 1:
            raise CostnetError(f"conv2d: groups must be >= 1, got {groups}")
        cin, cout = p.int("channels", rng, high=cap), p.int("channels", rng, high=cap)
        cfg.update(channels_in=groups * max(1, cin // groups),
                   channels_out=groups * max(1, cout // groups), groups=groups)
        return cfg

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        sym, pad = spatial_padding(cfg["size"], cfg["kernel"], cfg["stride"], cfg["padding"])
        conv = nn.Conv2d(cfg["channels_in"], cfg["channels_out"], cfg["kernel"], cfg["stride"],
                         padding=sym, bias=cfg["bias"], groups=cfg["groups"],
                         device=device, dtype=dtype)
        x = tensor((cfg["batch"], cfg["channels_in"], cfg["size"], cfg["size"]), device, dtype)
        return Padded(conv, pad, activation(cfg["activation"])), (x,)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        out = output_size(cfg["size"], cfg["kernel"], cfg["stride"], cfg["padding"])
        weights = cfg["channels_out"] * (cfg["channels_in"] // cfg["groups"]) * cfg["kernel"] ** 2
        return Elements(
            inputs=cfg["batch"] * cfg["channels_in"] * cfg["size"] ** 2,
            params=weights + (cfg["channels_out"] if cfg["bias"] else 0),
            outputs=cfg["batch"] * cfg["channels_out"] * out**2,
        )


class Depthwise(Conv2d):
    """Depthwise convolution: one group per input channel, ``multiplier`` outputs each."""

    name = "depthwise"
    ranges = ("batch", "size", "channels", "kernel", "stride", "multiplier")
    choices = ("padding", "bias", "activation")

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg = self._common(p, rng)
        cin = p.int("channels", rng, high=cfg.pop("_cap"))
        cfg.update(channels_in=cin, channels_out=cin * p.int("multiplier", rng), groups=cin)
        return cfg
