"""The memory guard: estimate a configuration's tensor footprint before allocating it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from costnet.ops import Op
from costnet.ops.step import OPTIMIZER_STATES


def estimate_bytes(op: Op, cfg: Mapping[str, Any], dtype: torch.dtype) -> int:
    """Bytes of the tensors one timed step holds (a lower bound: no workspaces).

    Forward: inputs, weights, outputs. Training adds the target and the output's
    gradient, weight gradients and optimizer state, and the input's gradient.
    """
    e = op.elements(cfg)
    count = e.inputs + e.params + e.outputs
    if cfg["mode"] == "train":
        count += 2 * e.outputs + e.params * (1 + OPTIMIZER_STATES.get(cfg["optimizer"], 2))
        count += e.inputs if cfg["input_grad"] else 0
    return count * torch.empty((), dtype=dtype).element_size()
