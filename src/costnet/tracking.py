"""Run tracking: a CSV logger always, Weights & Biases when enabled (offline by default).

One W&B run per trained model and fold, grouped by ``tracking.group`` (default
``<protocol>-<op>``; experiments set their own name) with the model as job type, so a
dashboard filters by experiment, compares models side by side and shows, per run, the
training curves (MLPs), the test metrics, the per-device test table and the
predicted-vs-measured plot. Offline runs land in ``<out>/wandb/``; ``wandb sync
<out>/wandb/offline-run-*`` uploads them.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from costnet.errors import CostnetError

if TYPE_CHECKING:  # Lightning is imported when loggers are made: commands that train nothing start faster
    from lightning.pytorch.loggers import Logger

WANDB_MODES = ("offline", "online", "disabled")


def quiet_lightning() -> None:
    """Keep Lightning's console output to warnings, without its advice to add data-loader
    workers (costnet's batches are slices of in-memory tensors, see nets/training.py)."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Lightning's own use of a torch API torch deprecated; nothing a costnet user can act on
    warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\).*")


def make_loggers(tracking: Mapping[str, Any], out: Path, name: str, group: str,
                 config: Mapping[str, Any], job_type: str | None = None) -> list[Logger]:
    """Loggers of one training run: CSV under ``out/logs/<name>``, plus W&B.

    ``WANDB_MODE=disabled`` in the environment turns W&B off whatever the
    config says (tests run that way: no test touches the network).
    """
    mode = str(tracking.get("wandb", "offline"))
    if mode not in WANDB_MODES:
        raise CostnetError(f"tracking.wandb must be one of {list(WANDB_MODES)}, got {mode!r}")
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Logger] = [CSVLogger(out / "logs", name=name, version="")]
    if mode != "disabled" and os.environ.get("WANDB_MODE") != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")  # W&B's own messages go to its debug.log, not the terminal

        wandb = WandbLogger(project=str(tracking.get("project", "costnet")), name=name,
                            group=str(tracking.get("group") or group), job_type=job_type,
                            save_dir=str(out), offline=mode == "offline", config=dict(config))
        # Lightning always passes wandb.init(anonymous=None), which recent wandb warns about on
        # the terminal at every run ("The anonymous setting has no effect"): leave it out
        getattr(wandb, "_wandb_init", {}).pop("anonymous", None)
        loggers.append(wandb)
    return loggers


def finish(loggers: list[Logger], summary: Mapping[str, float], per_device: pd.DataFrame | None = None,
           plot: Path | None = None) -> None:
    """Record the final test metrics in every logger, and in W&B the per-device test
    table and the predicted-vs-measured plot; close the W&B runs."""
    for logger in loggers:
        logger.log_metrics({f"test/{k}": float(v) for k, v in summary.items()})
        if type(logger).__name__ == "WandbLogger":
            if per_device is not None:
                logger.log_table("test/per_device", dataframe=per_device)
            if plot is not None:
                logger.log_image("test/predicted_vs_measured", [str(plot)])
            for key, value in summary.items():
                logger.experiment.summary[f"test/{key}"] = float(value)
        logger.finalize("success")
        if type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()
