"""Parameter distributions an op draws its configurations from.

A space's config (parsed by :mod:`costnet.sampling.params`) gives each of an
op's parameters an :class:`IntRange` (inclusive integers, uniform or
log-uniform) or an :class:`IntSet` (listed integers, optionally weighted) where
the op wants an integer, or a :class:`Choice` (values drawn uniformly);
:class:`Params` holds them, with the space's fixed numeric settings, for
:meth:`Op.draw`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class IntRange:
    """Inclusive integer range, sampled uniformly or log-uniformly."""

    low: int
    high: int
    log: bool = False

    def sample(self, rng: np.random.Generator, high: int | None = None) -> int:
        """Draw one value; ``high`` caps the range further (never below ``low``)."""
        top = self.high if high is None else max(self.low, min(self.high, high))
        if not self.log:
            return int(rng.integers(self.low, top + 1))
        # Log-uniform over [low, top + 1) then floored, so every integer is reachable.
        value = math.exp(rng.uniform(math.log(self.low), math.log(top + 1)))
        return min(top, int(value))


@dataclass(frozen=True)
class IntSet:
    """Listed integers (ascending) drawn with the given weights (>= 0, any positive total)."""

    values: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def low(self) -> int:
        return self.values[0]

    @property
    def high(self) -> int:
        return self.values[-1]

    def sample(self, rng: np.random.Generator, high: int | None = None) -> int:
        """Draw one value; ``high`` restricts the draw to values up to it (renormalized), or
        to the smallest drawable value when none is that small, as :class:`IntRange` never goes
        below low."""
        if len(self.values) == 1:  # no draw: a one-value set (a default) leaves the generator as it was
            return self.values[0]
        drawable = [i for i, w in enumerate(self.weights) if w > 0]
        keep = [i for i in drawable if high is None or self.values[i] <= high] or drawable[:1]
        w = np.asarray([self.weights[i] for i in keep], float)
        return self.values[keep[int(rng.choice(len(keep), p=w / w.sum()))]]


@dataclass(frozen=True)
class Choice:
    """A finite set of values, drawn uniformly."""

    values: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class Params:
    """A space's parsed parameter distributions and fixed settings, by name."""

    values: Mapping[str, IntRange | IntSet | Choice]
    settings: Mapping[str, float]

    def int(self, name: str, rng: np.random.Generator, high: int | None = None) -> int:
        dist = self.values[name]
        assert isinstance(dist, (IntRange, IntSet)), name
        return dist.sample(rng, high)

    def pick(self, name: str, rng: np.random.Generator) -> Any:
        dist = self.values[name]
        assert isinstance(dist, Choice), name
        return dist.sample(rng)
