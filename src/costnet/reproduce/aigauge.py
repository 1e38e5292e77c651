"""The regressor comparison of issue 5 (AI Gauge's choice of model): decision tree, random
forest, gradient boosting, a 3-layer MLP and linear regression on the same rows.

Hyperparameters of the scikit-learn models are chosen by k-fold cross-validation
(GridSearchCV, KFold shuffled with the seed) on the training rows only, on MRE; the MLP has
fixed parameters (costnet's MLP, early stopping on the fold's validation rows, which are
training rows too). Every model is scored once, on the held-out test rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, KFold

from costnet.config import compose
from costnet.errors import CostnetError
from costnet.features.transform import FeatureSet, FeatureTransform
from costnet.nets.estimators import make_regressor, target
from costnet.nets.factory import make_estimator
from costnet.protocols.folds import Fold, make_folds
from costnet.protocols.metrics import metrics, metrics_by
from costnet.protocols.train import load_rows
from costnet.reproduce import plots
from costnet.reproduce.provenance import dataset_files
from costnet.reproduce.result import Result


def log_mre(log_y: np.ndarray, log_pred: np.ndarray) -> float:
    """Mean relative error of times given as logs."""
    return float(np.mean(np.abs(np.expm1(np.asarray(log_pred) - np.asarray(log_y)))))


def cross_validated(model: str, grid: Mapping[str, list[Any]], x: np.ndarray, log_y: np.ndarray, folds: int,
                    seed: int) -> tuple[Any, dict[str, Any], float]:
    """The grid point with the lowest mean cross-validated MRE, refitted on all of ``x``;
    returns (regressor, its parameters, its cross-validated MRE)."""
    search = GridSearchCV(make_regressor(model, {}, seed), {k: list(v) for k, v in grid.items()},
                          scoring=make_scorer(log_mre, greater_is_better=False),
                          cv=KFold(folds, shuffle=True, random_state=seed))
    search.fit(x, log_y)
    return search.best_estimator_, dict(search.best_params_), -float(search.best_score_)


def fit_one(spec: Mapping[str, Any], fold: Fold, features: FeatureSet, mlp: Mapping[str, Any], folds: int,
            seed: int) -> tuple[np.ndarray, str, float]:
    """Fit one configured model on the fold's training rows; returns (test predictions,
    parameters used, cross-validated MRE or NaN)."""
    if spec["kind"] == "mlp":
        est = make_estimator(mlp, features, seed).fit(fold.train, fold.val)
        fixed = ", ".join(f"{k}={mlp[k]}" for k in ("depth", "width", "lr", "max_epochs"))
        return est.predict(fold.test), f"fixed: {fixed}", float("nan")
    if spec["kind"] != "sklearn":
        raise CostnetError(f"aigauge: model kind {spec['kind']!r} is neither 'sklearn' nor 'mlp'")
    rows = pd.concat([fold.train, fold.val])  # every training row; CV makes its own validation splits
    transform = FeatureTransform(features).fit(rows)
    reg, params, cv_mre = cross_validated(str(spec["model"]), spec.get("grid") or {}, transform.transform(rows),
                                          np.log(target(rows)), folds, seed)
    chosen = ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "none to choose"
    return np.exp(reg.predict(transform.transform(fold.test))), chosen, cv_mre


def run(cfg: DictConfig) -> Result:
    seed, out = int(cfg.seed), Path(str(cfg.out))
    train_cfg = compose("train", [*cfg.train, *cfg.subset, f"seed={seed}", f"out={out / 'run'}"])
    inputs = dataset_files(train_cfg.dataset)
    frame = load_rows(train_cfg)
    features = FeatureSet.from_config(train_cfg.features)
    mlp = OmegaConf.to_container(train_cfg.model, resolve=True)
    rows = []
    for fold in make_folds(frame, train_cfg.protocol, seed):
        for name, spec in OmegaConf.to_container(cfg.models, resolve=True).items():
            pred, params, cv_mre = fit_one(spec, fold, features, mlp, int(cfg.cv_folds), seed)
            pooled = metrics(fold.test["time_median_ms"].to_numpy(), pred)
            per_gpu = metrics_by(fold.test, pred, ["device"]).set_index("device")["mre"]
            rows.append({"fold": fold.name, "model": name, "parameters": params, "cv mre": cv_mre,
                         "test rows": pooled["n"], "rmse_ms": pooled["rmse_ms"], "mre": pooled["mre"],
                         "within_10pct": pooled["within_10pct"], "r2": pooled["r2"],
                         **{f"mre {d}": v for d, v in per_gpu.items()}})
    table = pd.DataFrame(rows)
    fig, (left, right) = plots.panels(2)
    overall = table.set_index(table["model"] if table["fold"].nunique() == 1 else table["fold"] + " " + table["model"])
    plots.bars(left, overall[["mre", "cv mre"]], "MRE", "test MRE and cross-validated MRE")
    plots.bars(right, overall[[c for c in table.columns if c.startswith("mre ")]], "test MRE", "test MRE per GPU")
    figure = plots.save(fig, out / "regressors.png")
    notes = [f"Cross-validation: {cfg.cv_folds} folds, KFold shuffled with seed {seed}; `cv mre` is the chosen "
             "grid point's mean MRE over the folds (none for the MLP, whose parameters are fixed)."]
    return Result.described(cfg, table, figures=[figure], notes=notes, inputs=inputs,
                            runs={"train": OmegaConf.to_container(train_cfg, resolve=True)})
