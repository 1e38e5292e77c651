"""Batch normalization of 2-D feature maps (square inputs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.ops.base import Analytical, Op, alignment, channel_cap, column, feature_maps, lookup, multiple_of
from costnet.ops.params import Params
from costnet.ops.traced import Call, Uncovered

# Batch norm per element (Ioffe & Szegedy 2015, Algorithm 1): normalize and scale-shift,
# (x - mean) * inv_std * gamma + beta, is 4; a training step's forward first computes the
# batch mean (1) and variance (3: subtract, square, accumulate).
BATCHNORM_FLOPS = {"forward": 4, "train": 8}


class BatchNorm2d(Op):
    """``nn.BatchNorm2d`` (affine, running statistics) over [batch, channels_in, size, size].

    Channels are capped below ``channel_budget / size`` as in the convolution spaces,
    so one space spans wide early feature maps and deep late ones, then rounded down to a drawn
    ``channel_multiple`` (:func:`multiple_of`; default 1, no draw).
    """

    name = "batchnorm2d"
    ranges = ("batch", "size", "channels")
    settings = ("channel_budget",)
    optional = {"channel_multiple": {"values": [1]}}
    columns = ("batch", "size", "channels_in")
    modules = (nn.BatchNorm2d,)

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        size = p.int("size", rng)
        cap = channel_cap(p.settings["channel_budget"], size)
        batch, channels = p.int("batch", rng), p.int("channels", rng, high=cap)
        return {"batch": batch, "size": size, "channels_in": multiple_of(channels, p.int("channel_multiple", rng))}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return nn.BatchNorm2d(cfg["channels_in"], device=device, dtype=dtype), (feature_maps(cfg, device, dtype),)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        c = column(rows, "channels_in")
        n = column(rows, "batch", 1) * c * column(rows, "size") ** 2
        zeros = np.zeros(len(rows))
        return Analytical(mm=zeros, ew=n * lookup(rows["mode"], BATCHNORM_FLOPS, 4), inputs=n,
                          params=2 * c, outputs=n, align_in=alignment(c), align_out=alignment(c))  # weight, bias

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        b, c, h, w = call.tensors[0].shape
        if h != w:
            raise Uncovered(f"non-square batch norm input {h}x{w}")
        return {"batch": b, "size": h, "channels_in": c}
