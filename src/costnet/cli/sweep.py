"""``costnet-sweep``: an Optuna hyperparameter sweep over costnet-train (Hydra config conf/sweep.yaml).

Several processes given the same ``storage`` and ``study_name`` work on one study.
"""

from __future__ import annotations

from omegaconf import DictConfig
from optuna.trial import TrialState

from costnet.cli.common import run_hydra
from costnet.sweeps.worker import run_sweep
from costnet.tracking import quiet_lightning


def _task(cfg: DictConfig) -> None:
    quiet_lightning()
    study = run_sweep(cfg)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    print(f"study {study.study_name!r}: {len(study.trials)} trials, {len(done)} complete")
    if done:
        best = study.best_trial
        print(f"best: trial {best.number}, validation {cfg.metric} = {best.value:.6g}, {best.params}")
        print(f"train it: costnet-train --config-dir {cfg.out} --config-name best")
    print(f"wrote {cfg.out}/trials.csv" + (", best.yaml, history.png" if done else ""))


def main() -> None:
    run_hydra("sweep", _task)


if __name__ == "__main__":
    main()
