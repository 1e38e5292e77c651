"""A sweep's results: every trial (trials.csv), the best as a costnet-train config
(best.yaml), and the optimization history (history.png). Rewritten after every trial,
atomically, so several workers may write them and a crash loses nothing."""

from __future__ import annotations

import io
import shlex
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from costnet.config import conf_dir  # noqa: E402
from costnet.data.store import atomic_write_bytes  # noqa: E402
from costnet.sweeps.objective import train_config, trial_overrides  # noqa: E402
from costnet.sweeps.space import Space  # noqa: E402


def best_config(cfg: DictConfig, space: Space, best: FrozenTrial) -> str:
    """The best trial's costnet-train config as a primary config file for
    ``costnet-train --config-dir <out> --config-name best``: the composed train config
    (interpolations kept) plus conf/train.yaml's Hydra settings."""
    overrides = trial_overrides(cfg, space, best.params)
    train = OmegaConf.to_container(train_config(overrides), resolve=False)
    base = OmegaConf.to_container(OmegaConf.load(conf_dir() / "train.yaml"), resolve=False)
    hydra_defaults = [d for d in base["defaults"]
                      if isinstance(d, dict) and next(iter(d)).startswith("override hydra/")]
    doc = OmegaConf.create({"defaults": ["_self_", *hydra_defaults], **train, "hydra": base["hydra"]})
    out = Path(str(cfg.out)).resolve()
    header = (f"# Best trial of costnet-sweep study {cfg.study_name!r}: trial {best.number}, "
              f"validation {cfg.metric} = {best.value:.6g}.\n"
              f"# Train it:  costnet-train --config-dir {shlex.quote(str(out))} --config-name best\n"
              f"# the same as: costnet-train {' '.join(shlex.quote(o) for o in overrides)}\n")
    return header + OmegaConf.to_yaml(doc)


def write_results(study: optuna.Study, cfg: DictConfig, space: Space) -> None:
    """Write trials.csv, and once a trial has completed, best.yaml and history.png, under ``cfg.out``."""
    out = Path(str(cfg.out))
    table = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params"))
    atomic_write_bytes(out / "trials.csv", table.to_csv(index=False).encode())
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    atomic_write_bytes(out / "best.yaml", best_config(cfg, space, study.best_trial).encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_optimization_history(study)
    png = io.BytesIO()
    ax.figure.savefig(png, format="png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    atomic_write_bytes(out / "history.png", png.getvalue())
