"""costnet-sweep: search spaces, pruning, the objective's rows, workers sharing a study, resuming."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from optuna.trial import TrialState

from costnet.cli import train as train_cli
from costnet.collect.runner import collect
from costnet.config import compose
from costnet.errors import CostnetError
from costnet.features.transform import FeatureSet
from costnet.nets.factory import make_estimator
from costnet.protocols import runner as runner_module
from costnet.sweeps import objective as objective_module
from costnet.sweeps.objective import train_config, validation_score
from costnet.sweeps.pruning import PruneCallback
from costnet.sweeps.space import load_space, parse_space
from costnet.sweeps.storage import open_storage
from costnet.sweeps.worker import ABANDONED, HEARTBEAT, counted, next_trial, run_sweep
from tests.conftest import FAST, TINY_DENSE

TINY_MLP = ["estimator.max_epochs=3", "estimator.width=16", "estimator.batch_size=64", "estimator.patience=3"]
SPACE = {"overrides": ["estimator=mlp"],
         "params": {"estimator.depth": {"type": "int", "low": 1, "high": 2},
                    "estimator.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
                    "estimator.loss": {"type": "categorical", "choices": ["mse", "l1"]}}}
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny local dense collection (60 rows, one device)."""
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COSTNET_CACHE_DIR", str(root / "cache"))
        collect(compose("collect", [*TINY_DENSE, *FAST, f"out={root / 'data'}", "n=60"]))
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return root


def train_list(data: Path, *extra: str) -> list[str]:
    return ["dataset=local", f"dataset.path={data / 'data'}", "op=dense", *extra]


def sweep_args(data: Path, tmp: Path, storage: str, n_trials: int, *train_extra: str) -> list[str]:
    """costnet-sweep overrides of a tiny sweep (Hydra list elements holding '=' are quoted)."""
    train = ",".join(f'"{o}"' for o in train_list(data, *TINY_MLP, *train_extra))
    return [f"search_space={data / 'space.yaml'}", f"train=[{train}]", f"n_trials={n_trials}",
            f"storage={storage}", "study_name=test", f"out={tmp / 'sweep'}", "heartbeat_s=0.5", "stale_after_s=2"]


def worker(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "costnet.cli.sweep", *args], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="test", storage=open_storage(storage)).get_trials()


def running(storage: str) -> bool:
    try:
        return any(t.state == TrialState.RUNNING for t in trials(storage))
    except (KeyError, CostnetError):  # the worker has not created the study (or its tables) yet
        return False


# Search spaces

def test_shipped_spaces_parse_and_compose_for_mlp_and_gbm() -> None:
    for name in ("mlp", "gbm"):
        space = load_space(name)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        params = study.ask(space.distributions).params
        cfg = train_config([*space.overrides, *space.to_overrides(params)])
        est = make_estimator(OmegaConf.to_container(cfg.estimator, resolve=True), FeatureSet.from_config(cfg.features), 0)
        assert type(est).__name__ == ("MLPEstimator" if name == "mlp" else "SklearnEstimator")
    gbm = load_space("gbm")
    assert gbm.to_overrides({"estimator.grid.max_leaf_nodes": 31}) == ["estimator.grid.max_leaf_nodes=[31]"]


@pytest.mark.parametrize("entry, message", [
    ({"type": "normal", "low": 0, "high": 1}, "'estimator.lr': unknown type 'normal'"),
    ({"type": "float", "low": 0.1}, "'estimator.lr': type float needs ['high']"),
    ({"type": "float", "low": "1e-4", "high": 1.0}, "'estimator.lr': bounds must be numbers"),
    ({"type": "float", "low": 1.0, "high": 0.1}, "'estimator.lr'"),
    ({"type": "categorical", "choices": []}, "'estimator.lr': categorical needs a non-empty list"),
    ({"type": "int", "low": 1, "high": 4, "sigma": 2}, "'estimator.lr': unknown field(s) ['sigma']"),
])
def test_bad_space_entries_name_the_key(entry: dict, message: str) -> None:
    with pytest.raises(CostnetError) as err:
        parse_space({"params": {"estimator.lr": entry}})
    assert message in str(err.value)


def test_unknown_space_is_one_clear_error() -> None:
    with pytest.raises(CostnetError, match="search space 'mlpx' not found"):
        load_space("mlpx")


# Pruning and the objective

class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_prune_callback_raises_when_the_pruner_says_so() -> None:
    import torch

    trial = optuna.create_study(pruner=AlwaysPrune()).ask()
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=2, callback_metrics={"val_loss": torch.tensor(0.5)})
    with pytest.raises(optuna.TrialPruned, match="step 12"):
        PruneCallback(trial, "val_loss", offset=10).on_validation_end(trainer, None)  # type: ignore[arg-type]
    assert trial.study.trials[0].intermediate_values == {12: 0.5}
    with pytest.raises(CostnetError, match="prune_on 'val_acc'"):
        PruneCallback(trial, "val_acc").on_validation_end(trainer, None)  # type: ignore[arg-type]


def test_objective_prunes_through_lightning(data: Path) -> None:
    cfg = train_config(["estimator=mlp", *train_list(data, *TINY_MLP)])
    trial = optuna.create_study(pruner=AlwaysPrune()).ask()
    with pytest.raises(optuna.TrialPruned, match="step 0"):
        validation_score(cfg, "mre", trial)


@pytest.mark.parametrize("model", ["mlp", "gbm"])
def test_objective_never_touches_test_rows(data: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    folds, seen = [], []
    real_folds, real_estimator = objective_module.make_folds, runner_module.make_estimator

    def recording_folds(*args, **kwargs):
        folds.extend(real_folds(*args, **kwargs))
        return folds

    def recording_estimator(*args, **kwargs):
        est = real_estimator(*args, **kwargs)
        fit, predict = est.fit, est.predict
        est.fit = lambda train, val: (seen.extend([train, val]), fit(train, val))[1]
        est.predict = lambda frame: (seen.append(frame), predict(frame))[1]
        return est

    monkeypatch.setattr(objective_module, "make_folds", recording_folds)
    monkeypatch.setattr(runner_module, "make_estimator", recording_estimator)
    tiny = TINY_MLP if model == "mlp" else ["estimator.grid.max_leaf_nodes=[15]", "estimator.grid.l2_regularization=[0]"]
    score = validation_score(train_config([f"estimator={model}", *train_list(data, *tiny)]), "mre")
    assert np.isfinite(score) and len(folds) == 1 and seen
    fold = folds[0]
    assert len(fold.test) and fold.test.index.intersection(fold.train.index.append(fold.val.index)).empty
    assert all(frame.index.intersection(fold.test.index).empty for frame in seen)


def test_val_loss_of_a_model_without_one_is_a_clear_error(data: Path) -> None:
    cfg = train_config(["estimator=gbm", "estimator.grid.max_leaf_nodes=[15]", "estimator.grid.l2_regularization=[0]",
                        *train_list(data)])
    with pytest.raises(CostnetError, match="model kind 'sklearn' has none: use mre or rmse_ms"):
        validation_score(cfg, "val_loss")


# Workers sharing a study, and resuming after a killed worker

def test_next_trial_abandons_stale_and_surplus_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="test")
    space = load_space("mlp").distributions
    real_ask, raced = study.ask, []

    def racing_ask(*args):  # another worker asks between this worker's count and its own ask
        if not raced:
            raced.append(real_ask(*args))
            raced[0].set_user_attr(HEARTBEAT, time.time())
        return real_ask(*args)

    monkeypatch.setattr(study, "ask", racing_ask)
    trial = next_trial(study, storage, space, n_trials=1, heartbeat_s=0.01, stale_after_s=0.2)
    first, surplus, _ = study.get_trials()
    assert trial.number == 2 and surplus.user_attrs[ABANDONED]  # past the budget while trial 0 ran
    assert first.state == TrialState.FAIL and first.user_attrs[ABANDONED]  # its heartbeat went stale
    study.tell(trial, 0.5)
    assert next_trial(study, storage, space, 1, 0.01, 0.2) is None and counted(study.get_trials()) == 1


# A PostgreSQL database for the many-machines case (README), e.g.
# COSTNET_TEST_POSTGRES=postgresql://postgres@localhost:5433/optuna; its study "test" is replaced.
POSTGRES = os.environ.get("COSTNET_TEST_POSTGRES")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES, reason="set COSTNET_TEST_POSTGRES to a PostgreSQL URL"))])
def test_two_workers_share_a_three_trial_study(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               backend: str) -> None:
    storage = str(tmp_path / "study.log")  # a journal file
    if backend == "postgresql":
        storage = str(POSTGRES)
        if "test" in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
            optuna.delete_study(study_name="test", storage=storage)
    args = sweep_args(data, tmp_path, storage, 3)
    workers = [worker(args), worker(args)]
    logs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), "\n".join(log[-3000:] for log in logs)
    done = trials(storage)
    assert sum(t.state == TrialState.COMPLETE for t in done) == 3 and counted(done) == 3
    ran = [re.findall(r"costnet-sweep: trial (\d+) complete", log) for log in logs]
    complete = [t.number for t in done if t.state == TrialState.COMPLETE]
    assert sorted(int(n) for numbers in ran for n in numbers) == complete  # each trial ran once, in either worker
    out = tmp_path / "sweep"
    assert len(pd.read_csv(out / "trials.csv")) == len(done) and (out / "history.png").stat().st_size > 0

    # costnet-train accepts best.yaml as it stands
    best = min((t for t in done if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["costnet-train", "--config-dir", str(out), "--config-name", "best",
                                      f"out={run}", "baselines=[]", "plots=false", "tracking.wandb=disabled"])
    GlobalHydra.instance().clear()
    try:
        train_cli.main()
    finally:
        GlobalHydra.instance().clear()
    trained = yaml.safe_load((run / "config.yaml").read_text())
    assert {k: trained["estimator"][k.split(".")[1]] for k in best.params} == best.params
    assert (run / "metrics.csv").is_file()


@pytest.mark.slow
def test_resume_after_a_killed_worker(data: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    slow = worker(sweep_args(data, tmp_path, storage, 2, "estimator.max_epochs=100000", "estimator.patience=100000"))
    deadline = time.monotonic() + 120
    while not ((tmp_path / "study.db").exists() and running(storage)):
        assert slow.poll() is None and time.monotonic() < deadline, slow.communicate()[0][-3000:]
        time.sleep(0.5)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    [killed] = trials(storage)
    assert killed.state == TrialState.RUNNING and killed.user_attrs["worker"].endswith(f":{slow.pid}")

    # run again (in this process): the dead worker's trial is abandoned and replaced
    cfg = compose("sweep", sweep_args(data, tmp_path, storage, 2))
    run_sweep(cfg)
    done = trials(storage)
    assert done[0].state == TrialState.FAIL and done[0].user_attrs[ABANDONED]
    assert sum(t.state == TrialState.COMPLETE for t in done) == 2 and counted(done) == 2
    assert (tmp_path / "sweep" / "best.yaml").is_file()


@pytest.mark.parametrize("override, message", [
    ("search_space=nope", "search space 'nope' not found"),
    ("metric=accuracy", "unknown metric 'accuracy'"),
    ("pruner=asha", "unknown pruner 'asha'"),
    ("+pruners.median.warmup=3", "pruner 'median': "),
    ("direction=up", "direction must be minimize or maximize, got 'up'"),
])
def test_bad_sweep_config_is_one_clear_error(tmp_path: Path, override: str, message: str) -> None:
    cfg = compose("sweep", [f"out={tmp_path}", override])
    with pytest.raises(CostnetError) as err:
        run_sweep(cfg)
    assert message in str(err.value)


def test_a_journal_whose_last_record_a_crash_cut_short_is_repaired(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    journal = str(tmp_path / "study.log")
    study = optuna.create_study(study_name="test", storage=open_storage(journal))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=3)
    text = Path(journal).read_bytes()
    record = text.rstrip(b"\n").rsplit(b"\n", 1)[1]
    Path(journal).write_bytes(text[:len(text) - len(record) - 1 + len(record) // 2])  # a crash mid-record
    study = optuna.load_study(study_name="test", storage=open_storage(journal))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=1)  # appends after the cut
    assert len(trials(journal)) == 4  # the journal reads again
    assert (f"costnet: warning: study journal {journal!r}: dropped its last record, {len(record) // 2} bytes a "
            "crash cut short") in capsys.readouterr().err
    open_storage(journal)
    assert "warning" not in capsys.readouterr().err  # a whole journal is left as it is
