"""2-D convolutions: plain, grouped and depthwise (square inputs and kernels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.ops.base import (ACTIVATIONS, PADDINGS, Analytical, Op, Padded, activation, activation_flops,
                              alignment, channel_cap, column, feature_maps, multiple_of, output_size,
                              padding_amounts, spatial_padding, tf_padding)
from costnet.ops.params import Params
from costnet.ops.traced import Call, Uncovered, pair


class Conv2d(Op):
    """``nn.Conv2d`` with TensorFlow-style 'same'/'valid' padding and an activation.

    Sampling follows Justus et al. 2018: kernel 1..min(kmax, size), channels
    1..below ``channel_budget / size``; ``groups`` (a list of ints) makes grouped
    convolutions, channels being rounded down to multiples of the group count.
    The optional ``channel_multiple`` (default 1; one draw per configuration) rounds both
    channel counts of at least that many down to a multiple of it (:func:`multiple_of`).
    Every traced ``nn.Conv2d`` (grouped and depthwise ones too) maps onto this op.
    """

    name = "conv2d"
    ranges = ("batch", "size", "channels", "kernel", "stride")
    choices = ("padding", "bias", "activation", "groups")
    settings = ("channel_budget",)
    optional = {"channel_multiple": {"values": [1]}}
    allowed = {"padding": PADDINGS, "bias": (True, False), "activation": tuple(ACTIVATIONS)}
    columns = ("batch", "size", "channels_in", "channels_out", "kernel", "stride", "padding",
               "bias", "activation", "groups")
    modules = (nn.Conv2d,)

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
        multiple = p.int("channel_multiple", rng)  # one for both, as a network's layers align both
        cin, cout = multiple_of(cin, multiple), multiple_of(cout, multiple)
        cfg.update(channels_in=groups * max(1, cin // groups),
                   channels_out=groups * max(1, cout // groups), groups=groups)
        return cfg

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        sym, pad = spatial_padding(cfg["size"], cfg["kernel"], cfg["stride"], cfg["padding"])
        conv = nn.Conv2d(cfg["channels_in"], cfg["channels_out"], cfg["kernel"], cfg["stride"],
                         padding=sym, bias=cfg["bias"], groups=cfg["groups"],
                         device=device, dtype=dtype)
        return Padded(conv, pad, activation(cfg["activation"])), (feature_maps(cfg, device, dtype),)

    def fast_algorithm_factor(self, rows: pd.DataFrame) -> np.ndarray:
        """4 for dense 3 x 3 stride-1 convolutions, 1 otherwise: Winograd's F(4x4, 3x3) computes a
        4 x 4 output tile with 36 multiplications instead of 144 (Lavin and Gray 2016, "Fast
        Algorithms for Convolutional Neural Networks"); oneDNN's 3 x 3 convolutions ran at 2.3x
        this CPU's matmul peak (README, "Measured on this CPU")."""
        winograd = (column(rows, "kernel") == 3) & (column(rows, "stride", 1) == 1) & (column(rows, "groups", 1) == 1)
        return np.where(winograd, 4.0, 1.0)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        b, size, k, s = column(rows, "batch", 1), column(rows, "size"), column(rows, "kernel"), column(rows, "stride", 1)
        cin, cout, g = column(rows, "channels_in"), column(rows, "channels_out"), column(rows, "groups", 1)
        o = output_size(size, k, s, rows["padding"])
        bias = column(rows, "bias")
        outputs = b * cout * o * o
        pad, odd = padding_amounts(size, k, s, rows["padding"])
        return Analytical(mm=2 * outputs * (cin / g) * k * k, ew=outputs * (bias + activation_flops(rows)),
                          inputs=b * cin * size * size, params=cout * (cin / g) * k * k + bias * cout,
                          outputs=outputs, out_size=o, pad_total=pad, pad_odd=odd, align_in=alignment(cin),
                          align_out=alignment(cout),
                          gemm=(b * o * o, cout / g, (cin / g) * k * k), gemms=g)  # implicit GEMM per group

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        assert isinstance(module, nn.Conv2d)
        b, cin, h, w = call.tensors[0].shape
        (kh, kw), (sh, sw), (dh, dw) = pair(module.kernel_size), pair(module.stride), pair(module.dilation)
        oh = (call.output or ())[2]
        notes = []
        if (dh, dw) != (1, 1):
            raise Uncovered(f"dilation {(dh, dw)}")
        if h != w or sh != sw:
            raise Uncovered(f"non-square input {h}x{w} or stride {sh}x{sw}")
        cin_eff, kernel = cin, kh
        if kh != kw:
            # a kh x kw convolution is the GEMM of a 1x1 convolution over kh*kw times the channels (im2col)
            cin_eff, kernel = cin * kh * kw, 1
            notes.append(f"{kh}x{kw} kernel timed as 1x1 over {kh * kw}x the input channels (same GEMM)")
            size = oh * sh
        else:
            size = h
        padding, note = tf_padding(size, kernel, sh, oh)
        notes += [note] if note else []
        return {"batch": b, "size": size, "channels_in": cin_eff, "channels_out": module.out_channels,
                "kernel": kernel, "stride": sh, "padding": padding, "bias": module.bias is not None,
                "activation": "none", "groups": module.groups, "approx": "; ".join(notes)}


class Depthwise(Conv2d):
    """Depthwise convolution: one group per input channel, ``multiplier`` outputs each.

    Traced depthwise convolutions map onto :class:`Conv2d` (``groups`` = channels)."""

    name = "depthwise"
    ranges = ("batch", "size", "channels", "kernel", "stride", "multiplier")
    choices = ("padding", "bias", "activation")
    modules = ()

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg = self._common(p, rng)
        cin = multiple_of(p.int("channels", rng, high=cfg.pop("_cap")), p.int("channel_multiple", rng))
        cfg.update(channels_in=cin, channels_out=cin * p.int("multiplier", rng), groups=cin)
        return cfg
