"""Accuracy metrics of predicted against measured times."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

METRICS = ("n", "rmse_ms", "mae_ms", "mre", "r2", "within_10pct", "spearman")


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE and MAE (ms), mean relative error |y - p| / y, R^2, share within +-10 %, Spearman rho."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    err = pred - y
    rel = np.abs(err) / y
    total = np.sum((y - y.mean()) ** 2)
    return {
        "n": int(len(y)),
        "rmse_ms": float(np.sqrt(np.mean(err**2))),
        "mae_ms": float(np.mean(np.abs(err))),
        "mre": float(rel.mean()),
        "r2": float(1 - np.sum(err**2) / total) if total > 0 else float("nan"),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "spearman": float(spearmanr(y, pred).statistic) if len(y) > 1 else float("nan"),
    }


def metrics_by(frame: pd.DataFrame, pred: np.ndarray, by: list[str]) -> pd.DataFrame:
    """:func:`metrics` per group of ``by`` columns (rows keep ``time_median_ms``)."""
    scored = frame.assign(_pred=pred)
    rows = [{**dict(zip(by, key if isinstance(key, tuple) else (key,))),
             **metrics(g["time_median_ms"].to_numpy(), g["_pred"].to_numpy())}
            for key, g in scored.groupby(by, sort=True)]
    return pd.DataFrame(rows)
