"""Embedding lookups: token indices to feature vectors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from costnet.ops.base import Elements, Op, Params


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

    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.int(name, rng) for name in self.ranges}

    def build(self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
              ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        table = Lookup(cfg["vocab"], cfg["features"], device=device, dtype=dtype)
        return table, (torch.empty((cfg["batch"], cfg["seq_len"]), device=device, dtype=torch.int64),)

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        tokens = cfg["batch"] * cfg["seq_len"]
        return Elements(inputs=tokens, params=cfg["vocab"] * cfg["features"], outputs=tokens * cfg["features"])
