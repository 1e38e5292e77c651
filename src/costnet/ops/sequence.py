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


# RMS norms (scale only, no mean: Zhang and Sennrich 2019) of transformers' models, by
# qualified class name: one read and one write of the tensor like a layer norm, which times
# them (marked approx).
RMS_NORMS = ("transformers.models.t5.modeling_t5.T5LayerNorm",
             "transformers.models.switch_transformers.modeling_switch_transformers.SwitchTransformersLayerNorm",
             "transformers.models.llama.modeling_llama.LlamaRMSNorm",
             "transformers.models.mistral.modeling_mistral.MistralRMSNorm",
             "transformers.models.mixtral.modeling_mixtral.MixtralRMSNorm",
             "transformers.models.qwen2.modeling_qwen2.Qwen2RMSNorm", "torch.nn.modules.normalization.RMSNorm")


class LayerNorm(Op):
    """``nn.LayerNorm`` over the last dimension of [batch, seq_len, features], with affine;
    RMS norms (``RMS_NORMS``) are timed as one."""

    name = "layernorm"
    ranges = ("batch", "seq_len", "features")
    columns = ("batch", "seq_len", "features")
    row_dims = ("batch", "seq_len")
    modules = (nn.LayerNorm,)
    module_paths = RMS_NORMS

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
        shape = call.tensors[0].shape
        if not isinstance(module, nn.LayerNorm):  # an RMS norm over the last dimension
            weight = getattr(module, "weight", None)
            if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (shape[-1],):
                raise Uncovered(f"{type(module).__name__} whose weight is not one per feature")
            return {"batch": shape[0], "seq_len": math.prod(shape[1:-1]), "features": shape[-1],
                    "approx": f"{type(module).__name__} (RMS norm) timed as layer norm"}
        if len(module.normalized_shape) != 1:
            raise Uncovered(f"layer norm over {tuple(module.normalized_shape)}")
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
