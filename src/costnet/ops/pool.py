"""2-D max and average pooling, fixed-window and adaptive (square inputs and windows)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.ops.base import (PADDINGS, Analytical, Op, Padded, alignment, channel_cap, column, feature_maps,
                              multiple_of, output_size, padding_amounts, spatial_padding, tf_padding)
from costnet.ops.params import Params
from costnet.ops.traced import Call, Uncovered, pair

POOLS = ("max", "avg")


def _planes(p: Params, rng: np.random.Generator, window: str) -> dict[str, Any]:
    """Batch, square size, input channels below ``channel_budget / size`` and the
    ``window`` parameter capped at the size, drawn in that order (size first, so
    the caps can depend on it); then the channels rounded down to a drawn ``channel_multiple``
    (:func:`multiple_of`; default 1, no draw)."""
    size = p.int("size", rng)
    cap = channel_cap(p.settings["channel_budget"], size)
    cfg = {"batch": p.int("batch", rng), "size": size, "channels_in": p.int("channels", rng, high=cap)}
    cfg[window] = p.int(window, rng, high=size)
    cfg["channels_in"] = multiple_of(cfg["channels_in"], p.int("channel_multiple", rng))
    return cfg


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
    optional = {"channel_multiple": {"values": [1]}}
    columns = ("batch", "size", "channels_in", "kernel", "stride", "padding", "pool")
    has_params = False
    modules = (nn.MaxPool2d, nn.AvgPool2d)
    functions = ("max_pool2d", "avg_pool2d")

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg = _planes(p, rng, "kernel")
        cfg.update(stride=p.int("stride", rng), padding=p.pick("padding", rng), pool=p.pick("pool", rng))
        return cfg

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        sym, pad = spatial_padding(cfg["size"], cfg["kernel"], cfg["stride"], cfg["padding"])
        if cfg["pool"] == "max":
            layer: nn.Module = nn.MaxPool2d(cfg["kernel"], cfg["stride"], padding=sym)
            fill = -math.inf
        else:
            layer = nn.AvgPool2d(cfg["kernel"], cfg["stride"], padding=sym, count_include_pad=False)
            fill = 0.0
        return Padded(layer, pad, nn.Identity(), pad_value=fill), (feature_maps(cfg, device, dtype),)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        b, size, k, s = column(rows, "batch", 1), column(rows, "size"), column(rows, "kernel"), column(rows, "stride", 1)
        c = column(rows, "channels_in")
        o = output_size(size, k, s, rows["padding"])
        outputs = b * c * o * o
        pad, odd = padding_amounts(size, k, s, rows["padding"])
        zeros = np.zeros(len(rows))
        return Analytical(mm=zeros, ew=outputs * k * k, inputs=b * c * size * size, params=zeros, outputs=outputs,
                          out_size=o, pad_total=pad, pad_odd=odd, align_in=alignment(c), align_out=alignment(c))

    @staticmethod
    def _columns(call: Call, kernel: Any, stride: Any, kind: str) -> dict[str, Any]:
        b, c, h, w = call.tensors[0].shape
        k, s = pair(kernel)[0], pair(stride if stride else kernel)[0]
        if h != w or pair(kernel)[0] != pair(kernel)[1]:
            raise Uncovered(f"non-square pooling {h}x{w}, kernel {kernel}")
        padding, note = tf_padding(h, k, s, (call.output or ())[2])
        return {"batch": b, "size": h, "channels_in": c, "kernel": k, "stride": s, "padding": padding,
                "pool": kind, "approx": note}

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        assert isinstance(module, (nn.MaxPool2d, nn.AvgPool2d))
        kind = "max" if isinstance(module, nn.MaxPool2d) else "avg"
        return self._columns(call, module.kernel_size, module.stride, kind)

    def from_function(self, name: str, call: Call) -> dict[str, Any]:  # max_pool2d, avg_pool2d
        return self._columns(call, call.arg(1, "kernel_size"), call.arg(2, "stride"), name.split("_")[0])


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
    optional = {"channel_multiple": {"values": [1]}}
    columns = ("batch", "size", "channels_in", "target_size", "pool")
    has_params = False
    modules = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    functions = ("adaptive_avg_pool2d", "adaptive_max_pool2d")

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {**_planes(p, rng, "target_size"), "pool": p.pick("pool", rng)}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        kind = nn.AdaptiveMaxPool2d if cfg["pool"] == "max" else nn.AdaptiveAvgPool2d
        return kind(cfg["target_size"]), (feature_maps(cfg, device, dtype),)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        b, size, t, c = column(rows, "batch", 1), column(rows, "size"), column(rows, "target_size"), column(rows, "channels_in")
        # Output i pools rows floor(i*S/T) to ceil((i+1)*S/T) (torch's adaptive pooling); the
        # windows' lengths sum to S + T - gcd(S, T) (each of the T - gcd(S, T) outputs whose
        # window edge falls inside a row shares that row with its neighbour).
        span = size + t - np.gcd(size.astype(np.int64), t.astype(np.int64))
        zeros = np.zeros(len(rows))
        return Analytical(mm=zeros, ew=b * c * span**2, inputs=b * c * size**2, params=zeros, outputs=b * c * t**2,
                          out_size=t, align_in=alignment(c), align_out=alignment(c))

    @staticmethod
    def _columns(call: Call, kind: str) -> dict[str, Any]:
        (b, c, h, w), out = call.tensors[0].shape, call.output or ()
        if h != w or out[2] != out[3]:
            raise Uncovered(f"non-square adaptive pooling {h}x{w} -> {out[2]}x{out[3]}")
        return {"batch": b, "size": h, "channels_in": c, "target_size": out[2], "pool": kind}

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        return self._columns(call, "avg" if isinstance(module, nn.AdaptiveAvgPool2d) else "max")

    def from_function(self, name: str, call: Call) -> dict[str, Any]:  # adaptive_avg_pool2d, adaptive_max_pool2d
        return self._columns(call, name.split("_")[1])
