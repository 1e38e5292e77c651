"""Accuracy metrics of predicted against measured times."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from costnet.errors import CostnetError
from costnet.features.transform import Moments
from costnet.nets.estimators import measured_times

METRICS = ("n", "rmse_ms", "mae_ms", "mre", "r2", "within_10pct", "spearman")


class RunningScores:
    """The sums behind :func:`metrics` but Spearman's rho, accumulated batch by batch (and
    merged across workers), for rows that never sit in memory together (costnet.protocols.stream)."""

    def __init__(self) -> None:
        self.n, self.se, self.ae, self.re, self.within = 0, 0.0, 0.0, 0.0, 0
        self.y = Moments(1)

    def add(self, y: np.ndarray, pred: np.ndarray) -> RunningScores:
        err = pred - y
        rel = np.abs(err) / y
        self.n += len(y)
        self.se += float(err @ err)
        self.ae += float(np.abs(err).sum())
        self.re += float(rel.sum())
        self.within += int((rel <= 0.10).sum())
        self.y.add(y)
        return self

    def merge(self, other: RunningScores) -> RunningScores:
        self.n, self.se, self.ae, self.re = self.n + other.n, self.se + other.se, self.ae + other.ae, self.re + other.re
        self.within += other.within
        self.y.merge(other.y)
        return self

    def result(self, spearman: float = float("nan")) -> dict[str, float]:
        """The scores of :data:`METRICS`; ``spearman`` needs every row at once, so the caller gives it."""
        total = float(self.y.m2[0]) if self.n else 0.0
        return {"n": self.n, "rmse_ms": float(np.sqrt(self.se / self.n)), "mae_ms": self.ae / self.n,
                "mre": self.re / self.n, "r2": 1 - self.se / total if total > 0 else float("nan"),
                "within_10pct": self.within / self.n, "spearman": spearman}


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE and MAE (ms), mean relative error |y - p| / y, R^2, share within +-10 %, Spearman rho.

    Every measured time must be positive and finite (:func:`measured_times`). R^2 of rows
    that share one time and Spearman's rho of one row are undefined: NaN (null in JSON).
    Predictions that are not finite (a diverged model) give NaN scores; a sweep counts
    such a trial failed, :func:`metrics_by` refuses them.
    """
    y, pred = measured_times(y), np.asarray(pred, float)
    # undefined (NaN, written as null) where either side is constant, e.g. a model that
    # predicts one time for every row
    rho = float(spearmanr(y, pred).statistic) if len(y) > 1 and np.ptp(y) > 0 and np.ptp(pred) > 0 else float("nan")
    return RunningScores().add(y, pred).result(rho)


def metrics_by(frame: pd.DataFrame, pred: np.ndarray, by: list[str]) -> pd.DataFrame:
    """:func:`metrics` per group of ``by`` columns (rows keep ``time_median_ms``); every
    prediction must be finite."""
    pred = np.asarray(pred, float)
    if not (ok := np.isfinite(pred)).all():
        raise CostnetError(f"the model predicts no finite time for {int((~ok).sum())} of {len(pred)} rows "
                           f"(e.g. {float(pred[~ok][0])!r} ms)")
    scored = frame.assign(_pred=pred)
    rows = [{**dict(zip(by, key if isinstance(key, tuple) else (key,))),
             **metrics(g["time_median_ms"].to_numpy(), g["_pred"].to_numpy())}
            for key, g in scored.groupby(by, sort=True)]
    return pd.DataFrame(rows)


def scores_json(scores: dict[str, Any]) -> bytes:
    """Nested dicts of scores as JSON, undefined (NaN) scores as null: never NaN or Infinity."""
    def defined(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: defined(v) for k, v in value.items()}
        return None if isinstance(value, float) and math.isnan(value) else value
    return json.dumps(defined(scores), indent=2, allow_nan=False).encode()
