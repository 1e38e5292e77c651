"""What any op's timed step adds beyond the layer itself: element widths and the optimizer.

Shared by the analytical features (bytes, update FLOPs) and the collector's
memory guard (optimizer state), so both count the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from costnet.errors import CostnetError

# Bytes per element of each dtype costnet times (torch.dtype.itemsize).
DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}

# Approximate elementwise FLOPs per parameter of one update step, read off the
# update rules in the torch.optim documentation (e.g. Adam: two moment updates,
# bias corrections, square root, division and the step: about 12).
UPDATE_FLOPS = {"none": 0, "sgd": 2, "momentum": 4, "adagrad": 5, "adadelta": 10, "adam": 12, "rmsprop": 7}

# Per-parameter state tensors each optimizer keeps (torch.optim documentation:
# momentum buffer; Adagrad's sum; Adadelta's square_avg and acc_delta; Adam's
# exp_avg and exp_avg_sq; RMSprop's square_avg). Unknown optimizers count as 2.
OPTIMIZER_STATES = {"none": 0, "sgd": 0, "momentum": 1, "adagrad": 1, "adadelta": 2,
                    "adam": 2, "rmsprop": 1}


def update_bytes(weight_bytes: Any, states: Any) -> Any:
    """Bytes one optimizer step moves: it reads and writes the weights, reads the gradients,
    and reads and writes each of its ``states`` per-parameter state tensors."""
    return weight_bytes * (3 + 2 * states)


def check_dtypes(names: Iterable[str]) -> None:
    """Stop at a dtype costnet does not time: its width in bytes is unknown."""
    if unknown := [str(n) for n in names if n not in DTYPE_BYTES]:
        raise CostnetError(f"unknown dtype {unknown[0]!r}: choose from {list(DTYPE_BYTES)}")
