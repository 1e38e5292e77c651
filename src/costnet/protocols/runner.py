"""The one fold loop: every configured model fitted on every fold of a protocol.

costnet-train scores the fitted models on the folds' test rows, costnet-sweep on their
validation rows, and the regressor comparison (costnet.reproduce.aigauge) on test rows
again; each of them walks the folds through :func:`fit_folds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from costnet.features.transform import FeatureSet
from costnet.nets.estimators import Estimator, Monitor
from costnet.nets.factory import make_estimator
from costnet.protocols.folds import Fold

# Given (fold number, fold, model name), what watches that model's training.
Watch = Callable[[int, Fold, str], Monitor]


@dataclass
class Fitted:
    """One model fitted on one fold's training rows (selected on its validation rows)."""

    fold: Fold
    name: str
    estimator: Estimator
    train_s: float  # seconds to fit, model selection included
    monitor: Monitor  # what watched the fit (its loggers are the caller's to finish)


def fit_folds(folds: Sequence[Fold], models: Mapping[str, Mapping[str, Any]], features: FeatureSet, seed: int,
              watch: Watch | None = None, progress: str | None = None) -> Iterator[Fitted]:
    """For each fold (costnet.protocols.folds.make_folds) and each of ``models`` (name:
    conf/estimator config), a fresh estimator fitted on the fold; yielded one at a time, so a
    caller can score, save or log each before the next is fitted.

    ``watch`` gives each fit its loggers and Lightning callbacks; ``progress`` names a
    progress bar over the folds (none when None).
    """
    for i, fold in enumerate(tqdm(folds, desc=progress, unit="fold", disable=progress is None)):
        for name, cfg in models.items():
            est = make_estimator(cfg, features, seed)
            monitor = watch(i, fold, name) if watch else Monitor()
            est.watch(monitor)
            start = time.perf_counter()
            est.fit(fold.train, fold.val)
            yield Fitted(fold, name, est, time.perf_counter() - start, monitor)
