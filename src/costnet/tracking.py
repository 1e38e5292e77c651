"""Run tracking: a CSV logger always, Weights & Biases when enabled (offline by default)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger

from costnet.errors import CostnetError

WANDB_MODES = ("offline", "online", "disabled")


def make_loggers(tracking: Mapping[str, Any], out: Path, name: str, group: str,
                 config: Mapping[str, Any]) -> list[Logger]:
    """Loggers of one training run: CSV under ``out/logs/<name>``, plus W&B.

    ``WANDB_MODE=disabled`` in the environment turns W&B off whatever the
    config says (tests run that way: no test touches the network).
    """
    mode = str(tracking.get("wandb", "offline"))
    if mode not in WANDB_MODES:
        raise CostnetError(f"tracking.wandb must be one of {list(WANDB_MODES)}, got {mode!r}")
    loggers: list[Logger] = [CSVLogger(out / "logs", name=name, version="")]
    if mode != "disabled" and os.environ.get("WANDB_MODE") != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=str(tracking.get("project", "costnet")), name=name, group=group,
                                   save_dir=str(out), offline=mode == "offline", config=dict(config)))
    return loggers


def finish(loggers: list[Logger], summary: Mapping[str, float]) -> None:
    """Record final test metrics in every logger and close W&B runs."""
    for logger in loggers:
        logger.log_metrics({f"test/{k}": float(v) for k, v in summary.items()})
        logger.finalize("success")
        if type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()
