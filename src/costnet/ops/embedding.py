"""Embedding lookups: token indices to feature vectors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.ops.base import Analytical, Op, alignment, column
from costnet.ops.params import Params
from costnet.ops.traced import Call

INDEX_BYTES = 8  # int64 embedding indices


class Lookup(nn.Embedding):
    """``nn.Embedding`` that states the bound of its indices, so that
    :func:`costnet.timing.workload.materialize` fills them with valid ones."""

    @property
    def index_high(self) -> int:
        return self.num_embeddings


class Embedding(Op):
    """``nn.Embedding(vocab, features)`` looked up with int64 indices [batch, seq_len] in [0, vocab).

    The indices never take a gradient: a training step differentiates the weights only.
    """

    name = "embedding"
    ranges = ("batch", "seq_len", "vocab", "features")
    columns = ("batch", "seq_len", "vocab", "features")
    modules = (nn.Embedding,)

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        table = Lookup(cfg["vocab"], cfg["features"], device=device, dtype=dtype)
        return table, (torch.empty((cfg["batch"], cfg["seq_len"]), device=device, dtype=torch.int64),)

    def analytical(self, rows: pd.DataFrame) -> Analytical:
        f = column(rows, "features")
        tokens = column(rows, "batch", 1) * column(rows, "seq_len")
        zeros = np.zeros(len(rows))
        # forward gathers rows (no arithmetic); backward adds each output gradient into its
        # row of the weight gradient; the indices take no gradient and are int64
        return Analytical(mm=zeros, ew=zeros, ew_bwd=tokens * f, inputs=tokens, input_width=float(INDEX_BYTES),
                          differentiable=0.0, params=column(rows, "vocab") * f, outputs=tokens * f,
                          align_out=alignment(f))

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        assert isinstance(module, nn.Embedding)
        shape = call.tensors[0].shape
        b, length = (shape[0], math.prod(shape[1:])) if len(shape) > 1 else (1, shape[0])
        return {"batch": b, "seq_len": length, "vocab": module.num_embeddings, "features": module.embedding_dim}
