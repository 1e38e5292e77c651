"""Layer types costnet can sample, build, time and cost, by name; and the ops traced calls map onto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from costnet.errors import CostnetError
from costnet.ops.base import Analytical, Elements, Op, output_size, qualified_name
from costnet.ops.conv import Conv2d, Depthwise
from costnet.ops.dense import Dense
from costnet.ops.elementwise import Dropout, Elementwise, Softmax
from costnet.ops.embedding import Embedding
from costnet.ops.matmul import Attention, Matmul
from costnet.ops.norm import BatchNorm2d
from costnet.ops.params import Params
from costnet.ops.pool import AdaptivePool2d, Pool2d
from costnet.ops.sequence import LayerNorm, Lstm

OPS: dict[str, Op] = {op.name: op for op in
                      (Conv2d(), Depthwise(), Dense(), Pool2d(), Matmul(), Attention(), LayerNorm(), Lstm(),
                       BatchNorm2d(), Elementwise(), Dropout(), Softmax(), AdaptivePool2d(), Embedding())}


def _owners(claims: Callable[[Op], tuple[Any, ...]]) -> dict[Any, Op]:
    """The op that maps each claimed module class or function name (two claimants are an error)."""
    owners: dict[Any, Op] = {}
    for op in OPS.values():
        for key in claims(op):
            if key in owners:
                raise CostnetError(f"ops {owners[key].name!r} and {op.name!r} both map {key!r}")
            owners[key] = op
    return owners


MODULE_OPS: dict[type[nn.Module], Op] = _owners(lambda op: op.modules)
MODULE_PATH_OPS: dict[str, Op] = _owners(lambda op: op.module_paths)
FUNCTION_OPS: dict[str, Op] = _owners(lambda op: op.functions)


def get_op(name: str) -> Op:
    """The op called ``name``; the error lists the known ones."""
    if name not in OPS:
        raise CostnetError(f"unknown op {name!r}: choose from {sorted(OPS)}")
    return OPS[name]


def module_op(module: nn.Module) -> Op | None:
    """The op that maps calls to ``module`` (by its class or the nearest base class, or their
    qualified names), if any."""
    for c in type(module).__mro__:
        if found := MODULE_OPS.get(c) or MODULE_PATH_OPS.get(qualified_name(c)):
            return found
    return None


def function_op(name: str) -> Op | None:
    """The op that maps calls of the torch function or tensor method ``name``, if any."""
    return FUNCTION_OPS.get(name)


__all__ = ["FUNCTION_OPS", "MODULE_OPS", "MODULE_PATH_OPS", "OPS", "Analytical", "Elements", "Op", "Params", "function_op",
           "get_op", "module_op", "output_size", "qualified_name"]
