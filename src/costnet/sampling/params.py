"""Parse a space's parameter distributions from config.

A range is a mapping ``{low: 1, high: 64}`` (inclusive integers, uniform; add
``log: true`` for log-uniform) or ``{values: [1, 3, 5], weights: [3, 4, 1]}``
(listed integers, drawn with those weights; without ``weights``, uniformly); a
choice is a list of values drawn uniformly.
The distributions themselves live with the ops (:mod:`costnet.ops.params`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from costnet.errors import CostnetError
from costnet.ops.params import Choice, IntRange, IntSet


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_int_set(where: str, value: Mapping[str, Any]) -> IntSet:
    """Parse ``{values[, weights]}``: distinct integers >= 1, and as many weights, each >= 0
    and not all 0 (missing: equal)."""
    if extra := set(value) - {"values", "weights"}:
        raise CostnetError(f"{where}: unknown keys {sorted(extra)} in {dict(value)!r}")
    values = value["values"]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise CostnetError(f"{where}: values must be a non-empty list of integers, got {values!r}")
    if bad := [v for v in values if not _integer(v) or v < 1]:
        raise CostnetError(f"{where}: values must be integers >= 1, got {bad[0]!r}")
    if len(set(values)) != len(values):
        raise CostnetError(f"{where}: values must be distinct, got {list(values)}")
    weights = value.get("weights", [1] * len(values))
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != len(values):
        raise CostnetError(f"{where}: weights must be a list of {len(values)} numbers (one per value), "
                           f"got {weights!r}")
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 for w in weights) \
            or sum(weights) <= 0:
        raise CostnetError(f"{where}: weights must be numbers >= 0, not all 0, got {list(weights)}")
    pairs = sorted(zip(values, weights))
    return IntSet(tuple(v for v, _ in pairs), tuple(float(w) for _, w in pairs))


def parse_range(where: str, value: Any) -> IntRange | IntSet:
    """Parse ``{low, high[, log]}`` or ``{values[, weights]}``; errors name ``where`` and the
    bad value."""
    if isinstance(value, Mapping) and "values" in value:
        return parse_int_set(where, value)
    if not isinstance(value, Mapping) or not {"low", "high"} <= set(value):
        raise CostnetError(f"{where}: expected a range {{low: L, high: H}} or {{values: [...]}}, got {value!r}")
    extra = set(value) - {"low", "high", "log"}
    if extra:
        raise CostnetError(f"{where}: unknown range keys {sorted(extra)} in {dict(value)!r}")
    low, high = value["low"], value["high"]
    if not all(_integer(v) for v in (low, high)):
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
