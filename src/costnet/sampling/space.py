"""Layer spaces and the seeded plan that draws configurations from them.

Configuration ``i`` of a plan is drawn from its own generator seeded with
``(seed, i)``: the same seed and config give the same configurations in the
same order, and any configuration can be redrawn alone (which is how an
interrupted collection resumes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from costnet.errors import CostnetError
from costnet.ops import Op, get_op
from costnet.ops.params import Choice, Params
from costnet.ops.step import check_dtypes
from costnet.sampling.params import parse_choice, parse_range

MODES = ("forward", "train")


@dataclass(frozen=True)
class Space:
    """A named space: an op and the distributions of its parameters."""

    name: str
    op: Op
    params: Params
    input_grad: Choice

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """One configuration's op columns and whether its input needs a gradient."""
        cfg = self.op.draw(self.params, rng)
        cfg["input_grad"] = bool(self.input_grad.sample(rng))
        return cfg


def load_space(cfg: Mapping[str, Any]) -> Space:
    """Build a :class:`Space` from its config node, validating every value."""
    name = str(cfg.get("name", "?"))
    where = f"space {name!r}"
    op = get_op(str(cfg.get("op")))
    given = dict(cfg.get("params") or {})
    expected = set(op.ranges) | set(op.choices) | set(op.settings)
    if unknown := sorted(set(given) - expected - set(op.optional)):
        raise CostnetError(f"{where}: unknown parameter(s) {unknown} for op {op.name!r}; "
                           f"expected {sorted(expected | set(op.optional))}")
    if missing := sorted(expected - set(given)):
        raise CostnetError(f"{where}: missing parameter(s) {missing} for op {op.name!r}")
    values: dict[str, Any] = {}
    for key in op.ranges:
        values[key] = parse_range(f"{where}, {key}", given[key])
    for key, default in op.optional.items():
        values[key] = parse_range(f"{where}, {key}", given.get(key, default))
    for key in op.choices:
        values[key] = parse_choice(f"{where}, {key}", given[key], op.allowed.get(key))
    settings = {}
    for key in op.settings:
        value = given[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise CostnetError(f"{where}, {key}: expected a positive number, got {value!r}")
        settings[key] = value
    input_grad = parse_choice(f"{where}, input_grad", cfg.get("input_grad", [False]), (True, False))
    if not op.has_params and False in input_grad.values:
        raise CostnetError(f"{where}: op {op.name!r} has no weights, so its training step "
                           "needs input_grad: [true]")
    return Space(name, op, Params(values, settings), input_grad)


@dataclass(frozen=True)
class Plan:
    """What one collection draws: a space, the mode mix, optimizers and dtypes."""

    space: Space
    seed: int
    modes: Mapping[str, float]
    optimizers: tuple[str, ...]
    dtypes: tuple[str, ...]

    def __post_init__(self) -> None:
        if bad := [m for m in self.modes if m not in MODES]:
            raise CostnetError(f"unknown mode {bad[0]!r}: choose from {list(MODES)}")
        weights = list(self.modes.values())
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise CostnetError(f"mode weights must be >= 0 and not all 0, got {dict(self.modes)}")
        if self.modes.get("train", 0) > 0 and not self.optimizers:
            raise CostnetError("training steps need at least one optimizer")
        check_dtypes(self.dtypes)
        if not self.dtypes:
            raise CostnetError("dtypes must not be empty")

    def config(self, index: int) -> dict[str, Any]:
        """Configuration ``index``: space, op, its parameters, mode, optimizer, dtype."""
        rng = np.random.default_rng([self.seed, index])
        cfg: dict[str, Any] = {"index": index, "space": self.space.name, "op": self.space.op.name}
        cfg.update(self.space.draw(rng))
        modes = list(self.modes)
        weights = np.asarray([self.modes[m] for m in modes], dtype=float)
        cfg["mode"] = modes[int(rng.choice(len(modes), p=weights / weights.sum()))]
        train = cfg["mode"] == "train"
        cfg["optimizer"] = self.optimizers[int(rng.integers(len(self.optimizers)))] if train else "none"
        cfg["dtype"] = self.dtypes[int(rng.integers(len(self.dtypes)))]
        return cfg
