"""Estimators from their configs (conf/estimator/*.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costnet.errors import CostnetError
from costnet.features.transform import FeatureSet
from costnet.nets.estimators import Estimator, LinearFlops, MLPEstimator, Paleo, Roofline, SklearnEstimator
from costnet.nets.mlp import MLPConfig

KINDS = ("mlp", "sklearn", "linear_flops", "paleo", "roofline")


def make_estimator(cfg: Mapping[str, Any], features: FeatureSet, seed: int) -> Estimator:
    """A fresh, unfitted estimator as configured."""
    kind = cfg.get("kind")
    if kind == "mlp":
        fields = {k: v for k, v in cfg.items() if k not in ("kind", "name")}
        unknown = set(fields) - set(MLPConfig.__dataclass_fields__)
        if unknown:
            raise CostnetError(f"model mlp: unknown option(s) {sorted(unknown)}")
        return MLPEstimator(features, MLPConfig(**fields))
    if kind == "sklearn":
        grid = {k: list(v) for k, v in (cfg.get("grid") or {}).items()}
        folds = cfg.get("cv_folds")
        return SklearnEstimator(features, str(cfg.get("model")), grid, seed, int(folds) if folds else None)
    if kind == "linear_flops":
        return LinearFlops()
    if kind == "paleo":
        return Paleo()
    if kind == "roofline":
        return Roofline()
    raise CostnetError(f"unknown model kind {kind!r}: choose from {list(KINDS)}")
