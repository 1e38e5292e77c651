"""Fully connected layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.ops.base import (ACTIVATIONS, Analytical, Op, activation, activation_flops, alignment, column,
                              multiple_of, tensor)
from costnet.ops.params import Params
from costnet.ops.traced import Call


class Dense(Op):
    """``nn.Linear`` followed by an activation (Justus et al. 2018: features 1-4095).

    The optional ``feature_multiple`` (default 1; one draw per configuration) rounds both
    feature counts of at least that many down to a multiple of it (:func:`multiple_of`), as
    networks' 4096 or 9216 are.
    """

    name = "dense"
    ranges = ("batch", "in_features", "out_features")
    choices = ("bias", "activation")
    optional = {"feature_multiple": {"values": [1]}}
    allowed = {"bias": (True, False), "activation": tuple(ACTIVATIONS)}
    columns = ("batch", "in_features", "out_features", "bias", "activation")
    modules = (nn.Linear,)
    module_paths = ("transformers.pytorch_utils.Conv1D",)  # GPT-2's linear layer, weight stored (in, out)

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        cfg = {
            "batch": p.int("batch", rng),
            "in_features": p.int("in_features", rng),
            "out_features": p.int("out_features", rng),
            "bias": bool(p.pick("bias", rng)),
            "activation": p.pick("activation", rng),
        }
        multiple = p.int("feature_multiple", rng)  # one for both, as a network's layers align both
        cfg.update(in_features=multiple_of(cfg["in_features"], multiple),
                   out_features=multiple_of(cfg["out_features"], multiple))
        return cfg

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        linear = nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"],
                           device=device, dtype=dtype)
        x = tensor((cfg["batch"], cfg["in_features"]), device, dtype)
        return nn.Sequential(linear, activation(cfg["activation"])), (x,)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        b, fin, fout = column(rows, "batch", 1), column(rows, "in_features"), column(rows, "out_features")
        bias = column(rows, "bias", 1)  # justus2018's dense layers always have one
        return Analytical(mm=2 * b * fin * fout, ew=b * fout * (bias + activation_flops(rows)), inputs=b * fin,
                          params=fin * fout + bias * fout, outputs=b * fout, align_in=alignment(fin),
                          align_out=alignment(fout), gemm=(b, fout, fin))

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        if isinstance(module, nn.Linear):
            fin, fout = module.in_features, module.out_features
        else:  # transformers' Conv1D: y = x W + b with W of shape (in, out)
            fin, fout = (int(d) for d in module.weight.shape)
        return {"batch": call.tensors[0].numel // fin, "in_features": fin, "out_features": fout,
                "bias": getattr(module, "bias", None) is not None, "activation": "none"}
