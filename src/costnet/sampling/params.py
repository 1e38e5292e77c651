"""Parse a space's parameter distributions from config.

A range is a mapping ``{low: 1, high: 64}`` (inclusive integers, uniform; add
``log: true`` for log-uniform); a choice is a list of values drawn uniformly.
The distributions themselves live with the ops (:mod:`costnet.ops.params`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from costnet.errors import CostnetError
from costnet.ops.params import Choice, IntRange


def parse_range(where: str, value: Any) -> IntRange:
    """Parse ``{low, high[, log]}``; errors name ``where`` and the bad value."""
    if not isinstance(value, Mapping) or not {"low", "high"} <= set(value):
        raise CostnetError(f"{where}: expected a range {{low: L, high: H}}, got {value!r}")
    extra = set(value) - {"low", "high", "log"}
    if extra:
        raise CostnetError(f"{where}: unknown range keys {sorted(extra)} in {dict(value)!r}")
    low, high = value["low"], value["high"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        raise CostnetError(f"{where}: range bounds must be integers, got low={low!r}, high={high!r}")
    if low < 1 or high < low:
        raise CostnetError(f"{where}: range [{low}, {high}] must satisfy 1 <= low <= high")
    return IntRange(low, high, bool(value.get("log", False)))


def parse_choice(where: str, value: Any, allowed: Sequence[Any] | None = None) -> Choice:
    """Parse a non-empty list of values, optionally restricted to ``allowed``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise CostnetError(f"{where}: expected a non-empty list of choices, got {value!r}")
    values = tuple(value)
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise CostnetError(f"{where}: {bad[0]!r} is not one of {list(allowed)}")
    return Choice(values)
