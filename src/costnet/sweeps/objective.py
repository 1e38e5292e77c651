"""A trial's objective: the validation metric of the configured model under the chosen protocol."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import optuna
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from costnet.config import compose
from costnet.errors import CostnetError
from costnet.features.transform import FeatureSet
from costnet.nets.estimators import Monitor
from costnet.protocols.folds import Fold, make_folds
from costnet.protocols.metrics import metrics
from costnet.protocols.runner import Fitted, fit_folds
from costnet.protocols.train import load_rows
from costnet.sweeps.pruning import PruneCallback
from costnet.sweeps.space import Space
from costnet.tracking import finish, make_loggers

# costnet.protocols.metrics' scores of validation predictions, and the MLP's best validation loss.
METRICS = ("mre", "rmse_ms", "mae_ms", "r2", "within_10pct", "spearman", "val_loss")


def train_config(overrides: list[str]) -> DictConfig:
    """costnet-train's config (conf/train.yaml) with ``overrides``, inside a Hydra app or outside one."""
    try:
        if GlobalHydra.instance().is_initialized():  # costnet-sweep's own app: same config directory
            return hydra.compose("train", overrides)
        return compose("train", overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise CostnetError(f"costnet-train rejects the overrides {overrides}: {exc}") from exc


def trial_overrides(cfg: DictConfig, space: Space, params: Mapping[str, Any]) -> list[str]:
    """costnet-train overrides of a trial: the space's fixed ones, the sweep's ``train``, then ``params``."""
    return [*space.overrides, *(str(o) for o in cfg.train), *space.to_overrides(params)]


def fold_score(fitted: Fitted, metric: str) -> float:
    """``metric`` of a fitted model on its fold's validation rows (``val_loss``: its training's own)."""
    est, val = fitted.estimator, fitted.fold.val
    if metric != "val_loss":
        return metrics(val["time_median_ms"].to_numpy(), est.predict(val))[metric]
    if est.validation_loss is None:
        raise CostnetError(f"metric val_loss is the MLP's validation loss; model kind {est.kind!r} has none: "
                           "use mre or rmse_ms")
    return float(est.validation_loss)


def validation_score(cfg: DictConfig, metric: str, trial: optuna.Trial | None = None,
                     prune_on: str = "val_mae_log", log_dir: Path | None = None) -> float:
    """``metric`` on each fold's validation rows, the model fitted on the fold's training rows;
    the mean over the protocol's folds.

    Test rows are never touched: they stay costnet-train's unbiased score of the chosen
    parameters. Under fewshot this scores the base model before fine-tuning, which draws
    on the held-out device's rows. MLPs report ``prune_on`` to ``trial`` every epoch; with
    W&B tracking on (``tracking.wandb``), they log under ``log_dir``.
    """
    if metric not in METRICS:
        raise CostnetError(f"unknown metric {metric!r}: choose from {list(METRICS)}")
    model_cfg = OmegaConf.to_container(cfg.estimator, resolve=True)
    track = trial is not None and log_dir is not None and str(cfg.tracking.wandb) != "disabled"

    def watch(i: int, fold: Fold, _: str) -> Monitor:
        if trial is None:
            return Monitor()
        # Each fold reports after the previous one's epochs (only the MLP has epochs to report).
        prune = PruneCallback(trial, prune_on, offset=i * int(model_cfg.get("max_epochs", 0)))
        loggers = make_loggers(cfg.tracking, log_dir, f"trial{trial.number}-{fold.name}",
                               group=f"sweep-{trial.study.study_name}",
                               config=OmegaConf.to_container(cfg, resolve=True)) if track else False
        return Monitor(loggers, [prune])

    folds = make_folds(load_rows(cfg), cfg.protocol, int(cfg.seed))
    if unscored := [f.name for f in folds if f.val.empty]:
        raise CostnetError(f"fold {unscored[0]!r} has no validation rows to score trials on")
    scores = []
    for fitted in fit_folds(folds, {"model": model_cfg}, FeatureSet.from_config(cfg.features), int(cfg.seed), watch):
        if fitted.monitor.loggers:
            finish(fitted.monitor.loggers, {})
        scores.append(fold_score(fitted, metric))
    return float(np.mean(scores))


def objective(trial: optuna.Trial, cfg: DictConfig, space: Space) -> float:
    """Score the trial's parameters (already drawn by ``study.ask``) as the sweep ``cfg`` asks."""
    train = train_config([f"tracking.wandb={cfg.wandb}", *trial_overrides(cfg, space, trial.params)])
    return validation_score(train, str(cfg.metric), trial, str(cfg.prune_on), Path(str(cfg.out)))
