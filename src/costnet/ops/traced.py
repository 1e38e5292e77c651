"""A call in a traced network as an op reads it: its tensors' shapes and its arguments.

:mod:`costnet.networks.extract` records these calls; each op maps the calls it
covers onto its config columns (:meth:`costnet.ops.base.Op.from_module` and
:meth:`~costnet.ops.base.Op.from_function`) or raises :class:`Uncovered`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TensorArg:
    """A tensor argument of a call, by shape (its values never matter here)."""

    shape: tuple[int, ...]
    source: str | None  # name of the call that produced it (None: a network input)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Call:
    """One call in the network: a leaf module, a function or a tensor method."""

    name: str
    target: Any  # nn.Module instance, function, or method name (str)
    args: list[Any]  # TensorArg for tensors, plain values otherwise
    kwargs: dict[str, Any]
    output: tuple[int, ...] | None
    parents: list[str] = field(default_factory=list)

    @property
    def tensors(self) -> list[TensorArg]:
        flat = [*self.args, *self.kwargs.values()]
        flat = [a for item in flat for a in (item if isinstance(item, (list, tuple)) else [item])]
        return [a for a in flat if isinstance(a, TensorArg)]

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Positional argument ``index`` or keyword ``name``."""
        if name in self.kwargs:
            return self.kwargs[name]
        return self.args[index] if index < len(self.args) else default


class Uncovered(Exception):
    """A call no timed op covers (the message says why)."""


def pair(v: Any) -> tuple[int, int]:
    """A torch size argument (an int or a pair) as a pair."""
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))
