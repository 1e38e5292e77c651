"""Hyperparameter selection, the one place a grid point is chosen: the scikit-learn
regressors costnet knows, and the point of a grid (conf/estimator/*.yaml) with the lowest mean
relative error, on the validation rows or by k-fold cross-validation.

Sweeps over any model (the MLP included) are Optuna's business (costnet.sweeps); this
module chooses among the few points of a baseline's grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid
from sklearn.tree import DecisionTreeRegressor

from costnet.errors import CostnetError

REGRESSORS = {"tree": DecisionTreeRegressor, "forest": RandomForestRegressor, "gbm": HistGradientBoostingRegressor,
              "linear": LinearRegression}


def make_regressor(model: str, params: Mapping[str, Any], seed: int) -> Any:
    """An unfitted scikit-learn regressor of ``model`` (a key of REGRESSORS), seeded."""
    if model not in REGRESSORS:
        raise CostnetError(f"unknown sklearn model {model!r}: choose from {sorted(REGRESSORS)}")
    cls = REGRESSORS[model]
    if "random_state" in cls().get_params():
        params = {"random_state": seed, **params}
    if cls is HistGradientBoostingRegressor:  # boost until the validation rows stop improving
        params = {"max_iter": 3000, "early_stopping": True, "n_iter_no_change": 50, **params}
    return cls(**params)


def log_mre(log_y: np.ndarray, log_pred: np.ndarray) -> float:
    """Mean relative error |pred - y| / y of times given as logs."""
    return float(np.mean(np.abs(np.expm1(np.asarray(log_pred) - np.asarray(log_y)))))


@dataclass
class Choice:
    """The chosen grid point: its regressor (fitted), parameters and mean relative error
    (on the validation rows, or the mean over the cross-validation folds; None without
    validation rows)."""

    regressor: Any
    params: dict[str, Any]
    score: float | None


def choose(model: str, grid: Mapping[str, Sequence[Any]], seed: int, x: np.ndarray, log_y: np.ndarray,
           x_val: np.ndarray, log_y_val: np.ndarray, cv_folds: int | None = None) -> Choice:
    """The grid point of ``model`` with the lowest MRE, ties to the first in ParameterGrid's order.

    ``cv_folds`` None: each point is fitted on (x, log_y) and scored on the validation rows
    (which also stop gradient boosting early); the winner is kept as fitted. ``cv_folds`` k:
    training and validation rows together are split k ways (KFold shuffled with the seed,
    scikit-learn's GridSearchCV) and the winner is refitted on all of them.
    """
    grid = {k: list(v) for k, v in grid.items()}
    if cv_folds:
        search = GridSearchCV(make_regressor(model, {}, seed), grid, error_score="raise",
                              scoring=make_scorer(log_mre, greater_is_better=False),
                              cv=KFold(int(cv_folds), shuffle=True, random_state=seed))
        search.fit(np.vstack([x, x_val]), np.concatenate([log_y, log_y_val]))
        return Choice(search.best_estimator_, dict(search.best_params_), -float(search.best_score_))
    best, best_score = None, np.inf
    for params in ParameterGrid(grid):
        reg = make_regressor(model, params, seed)
        if isinstance(reg, HistGradientBoostingRegressor) and len(x_val):
            reg.fit(x, log_y, X_val=x_val, y_val=log_y_val)
        else:
            reg.fit(x, log_y)
        if not len(x_val):  # nothing to choose on: the first point
            return Choice(reg, params, None)
        score = log_mre(log_y_val, reg.predict(x_val))
        if score < best_score:
            best, best_score = Choice(reg, params, score), score
    assert best is not None  # ParameterGrid yields at least one point ({} for an empty grid)
    return best
