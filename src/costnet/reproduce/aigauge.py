"""The regressor comparison of issue 5 (AI Gauge's choice of model): decision tree, random
forest, gradient boosting, a 3-layer MLP and linear regression on the same rows.

Every model is fitted by costnet's fold loop (costnet.protocols.runner). Hyperparameters of
the scikit-learn models are chosen by k-fold cross-validation (costnet.nets.selection:
GridSearchCV, KFold shuffled with the seed) on the training rows only, on MRE; the MLP has
fixed parameters (costnet's MLP, early stopping on the fold's validation rows, which are
training rows too). Every model is scored once, on the held-out test rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from costnet.config import compose
from costnet.features.transform import FeatureSet
from costnet.nets.estimators import Estimator
from costnet.protocols.folds import make_folds
from costnet.protocols.metrics import metrics, metrics_by
from costnet.protocols.runner import fit_folds
from costnet.protocols.train import load_rows
from costnet.reproduce import plots
from costnet.reproduce.provenance import dataset_files
from costnet.reproduce.result import Result


# What the table shows of a model whose parameters are fixed rather than selected (the MLP).
FIXED = ("depth", "width", "lr", "max_epochs")


def model_configs(cfg: DictConfig, mlp: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The experiment's models as conf/estimator configs: ``kind: mlp`` stands for costnet-train's
    MLP (``mlp``); the others choose their grid point by ``cv_folds``-fold cross-validation."""
    return {name: dict(mlp) if spec["kind"] == "mlp" else {**spec, "cv_folds": int(cfg.cv_folds)}
            for name, spec in OmegaConf.to_container(cfg.models, resolve=True).items()}


def parameters(est: Estimator, cfg: Mapping[str, Any]) -> str:
    """The parameters a model was selected with, or its fixed ones where nothing was selected."""
    if est.chosen is None:
        return "fixed: " + ", ".join(f"{k}={cfg[k]}" for k in FIXED if k in cfg)
    return ", ".join(f"{k}={v}" for k, v in sorted(est.chosen.items())) or "none to choose"


def run(cfg: DictConfig) -> Result:
    seed, out = int(cfg.seed), Path(str(cfg.out))
    train_cfg = compose("train", [*cfg.train, *cfg.subset, f"seed={seed}", f"out={out / 'run'}"])
    inputs = dataset_files(train_cfg.dataset)
    frame = load_rows(train_cfg)
    features = FeatureSet.from_config(train_cfg.features)
    models = model_configs(cfg, OmegaConf.to_container(train_cfg.estimator, resolve=True))
    rows = []
    for fitted in fit_folds(make_folds(frame, train_cfg.protocol, seed), models, features, seed):
        fold, est = fitted.fold, fitted.estimator
        pred = est.predict(fold.test)
        pooled = metrics(fold.test["time_median_ms"].to_numpy(), pred)
        per_gpu = metrics_by(fold.test, pred, ["device"]).set_index("device")["mre"]
        cv_mre = float("nan") if est.selection_score is None else est.selection_score
        rows.append({"fold": fold.name, "model": fitted.name, "parameters": parameters(est, models[fitted.name]),
                     "cv mre": cv_mre, "test rows": pooled["n"], "rmse_ms": pooled["rmse_ms"], "mre": pooled["mre"],
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
