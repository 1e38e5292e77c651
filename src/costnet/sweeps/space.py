"""Search spaces: YAML files mapping costnet-train override keys to Optuna distributions.

A space file (conf/sweep/space/*.yaml) holds ``overrides``, costnet-train overrides every
trial shares (e.g. ``estimator=gbm``), and ``params``, one entry per searched override key::

    params:
      estimator.depth: {type: int, low: 2, high: 6}
      estimator.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      estimator.loss: {type: categorical, choices: [mse, l1, huber]}

``step`` quantizes int and float ranges; ``as_list: true`` writes the value as a
one-element list, for the grid entries of scikit-learn models (conf/estimator/gbm.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from costnet.config import conf_dir
from costnet.errors import CostnetError

TYPES = ("int", "float", "categorical")
FIELDS = {"type", "low", "high", "log", "step", "choices", "as_list"}


@dataclass
class Space:
    """Fixed overrides, the distribution of each searched key, and which keys are grid lists."""

    overrides: list[str]
    distributions: dict[str, BaseDistribution]
    as_list: set[str] = field(default_factory=set)

    def to_overrides(self, params: Mapping[str, Any]) -> list[str]:
        """Hydra override strings setting each key to its value."""
        return [f"{key}=[{hydra_value(v)}]" if key in self.as_list else f"{key}={hydra_value(v)}"
                for key, v in params.items()]


def hydra_value(value: Any) -> str:
    """``value`` as Hydra's override grammar reads it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def distribution(key: str, entry: Any) -> BaseDistribution:
    """The Optuna distribution of one search-space entry, or an error naming ``key``."""
    if not isinstance(entry, Mapping):
        raise CostnetError(f"search space entry {key!r} must be a mapping with a type, got {entry!r}")
    if unknown := sorted(set(entry) - FIELDS):
        raise CostnetError(f"search space entry {key!r}: unknown field(s) {unknown}: use {sorted(FIELDS)}")
    kind = entry.get("type")
    if kind not in TYPES:
        raise CostnetError(f"search space entry {key!r}: unknown type {kind!r}: choose from {list(TYPES)}")
    try:
        if kind == "categorical":
            choices = entry.get("choices")
            if not isinstance(choices, list) or not choices:
                raise CostnetError(f"search space entry {key!r}: categorical needs a non-empty list of choices")
            return CategoricalDistribution(choices)
        bounds = {b: entry.get(b) for b in ("low", "high")}
        if missing := [b for b, v in bounds.items() if v is None]:
            raise CostnetError(f"search space entry {key!r}: type {kind} needs {missing}")
        if bad := {b: v for b, v in bounds.items() if isinstance(v, bool) or not isinstance(v, (int, float))}:
            raise CostnetError(f"search space entry {key!r}: bounds must be numbers, got {bad} "
                               "(YAML reads 1e-4 as text: write 1.0e-4)")
        if kind == "int":
            return IntDistribution(int(bounds["low"]), int(bounds["high"]), log=bool(entry.get("log", False)),
                                   step=int(entry.get("step", 1)))
        return FloatDistribution(float(bounds["low"]), float(bounds["high"]), log=bool(entry.get("log", False)),
                                 step=entry.get("step"))
    except (ValueError, TypeError) as exc:  # Optuna's own checks: low <= high, log with step, ...
        raise CostnetError(f"search space entry {key!r}: {exc}") from exc


def parse_space(node: Mapping[str, Any], source: str = "search space") -> Space:
    """A :class:`Space` from a loaded space file."""
    if unknown := sorted(set(node) - {"overrides", "params"}):
        raise CostnetError(f"{source}: unknown key(s) {unknown}: use 'overrides' and 'params'")
    params = node.get("params") or {}
    if not isinstance(params, Mapping) or not params:
        raise CostnetError(f"{source}: 'params' must map override keys to distributions")
    return Space(overrides=[str(o) for o in node.get("overrides") or []],
                 distributions={str(k): distribution(str(k), v) for k, v in params.items()},
                 as_list={str(k) for k, v in params.items() if isinstance(v, Mapping) and v.get("as_list")})


def load_space(name: str) -> Space:
    """The space ``name``: conf/sweep/space/<name>.yaml, or a path to a YAML file."""
    path = Path(name)
    if not path.suffix:
        path = conf_dir() / "sweep" / "space" / f"{name}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in (conf_dir() / "sweep" / "space").glob("*.yaml"))
        raise CostnetError(f"search space {name!r} not found: no {path} (shipped: {shipped})")
    node = yaml.safe_load(path.read_text()) or {}
    if not isinstance(node, Mapping):
        raise CostnetError(f"search space {str(path)!r} must be a YAML mapping")
    return parse_space(node, str(path))
