"""Pruning through Lightning: report a validation metric each epoch, stop when Optuna says so."""

from __future__ import annotations

import lightning.pytorch as pl
import optuna

from costnet.errors import CostnetError


class PruneCallback(pl.Callback):
    """Reports ``monitor`` to ``trial`` after every validation epoch; raises
    :class:`optuna.TrialPruned` when the trial's pruner would stop it.

    Steps are ``offset + epoch``, so the folds of a protocol report in sequence.
    costnet keeps these few lines rather than depending on optuna-integration for its
    ``PyTorchLightningPruningCallback`` (optuna_integration/pytorch_lightning/pytorch_lightning.py),
    whose single-process path is the same report/should_prune check but which adds a package,
    counts steps by epoch only, and reaches into private Optuna storage classes for its DDP path.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, offset: int = 0) -> None:
        self.trial, self.monitor, self.offset = trial, monitor, offset

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            logged = sorted(k for k in trainer.callback_metrics if k.startswith("val"))
            raise CostnetError(f"prune_on {self.monitor!r} is not a validation metric the MLP logs: {logged}")
        step = self.offset + trainer.current_epoch
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned at step {step}: "
                                     f"{self.monitor} {float(value):.4g}")
