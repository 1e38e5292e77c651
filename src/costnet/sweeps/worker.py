"""One ``costnet-sweep`` worker: run trials of a shared study until it has ``n_trials``.

Budget: ``n_trials`` counts every trial of the study, whichever worker ran it, except
trials *abandoned* (failed with the user attribute ``abandoned``): those of workers that
died, stopped on an error or Ctrl-C, or asked for a trial past the budget. A trial whose
score is not a number still counts (Optuna fails it). So a resumed or a second worker
continues the same sweep, and several workers stop at exactly ``n_trials``.

Dead workers: a killed worker leaves its trial RUNNING. Optuna's own heartbeat
(``RDBStorage(heartbeat_interval=...)`` with ``fail_stale_trials``) exists for RDB
storages only: Optuna 5.0's JournalStorage does not implement it. So each worker beats a
``heartbeat`` user attribute (unix seconds) on its trial every ``heartbeat_s``, which
every storage supports, and abandons RUNNING trials whose beat is older than
``stale_after_s`` before asking for a trial (workers' clocks must agree to well within
that). Abandoned trials are not retried with the same parameters (unlike Optuna's
RetryFailedTrialCallback): a trial that killed its worker, say out of memory, would kill
the next one too; the sampler proposes afresh.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from costnet.data.store import ensure_writable
from costnet.errors import CostnetError
from costnet.sweeps.objective import METRICS, objective
from costnet.sweeps.report import write_results
from costnet.sweeps.space import load_space
from costnet.sweeps.storage import open_study

HEARTBEAT, ABANDONED, WORKER = "heartbeat", "abandoned", "worker"


def counted(trials: Iterable[FrozenTrial]) -> int:
    """Trials that use up the budget: all but waiting and abandoned ones."""
    return sum(t.state != TrialState.WAITING and not (t.state == TrialState.FAIL and t.user_attrs.get(ABANDONED))
               for t in trials)


def abandon(study: optuna.Study, storage: BaseStorage, number: int) -> None:
    """Fail trial ``number`` as abandoned (not counted); a no-op if it has finished meanwhile."""
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                               number)
    try:
        storage.set_trial_user_attr(trial_id, ABANDONED, True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:  # its worker finished it, or another worker abandoned it first
        pass


def abandon_stale(study: optuna.Study, storage: BaseStorage, stale_after_s: float) -> list[int]:
    """Abandon RUNNING trials whose heartbeat is older than ``stale_after_s``; their numbers."""
    now, stale = time.time(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.user_attrs.get(HEARTBEAT, t.datetime_start.timestamp() if t.datetime_start else now)
        if now - beat > stale_after_s:
            abandon(study, storage, t.number)
            stale.append(t.number)
    return stale


@contextmanager
def heartbeat(trial: optuna.Trial, interval_s: float) -> Iterator[None]:
    """Beat ``trial``'s ``heartbeat`` attribute now and every ``interval_s`` from a thread."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval_s):
                trial.set_user_attr(HEARTBEAT, time.time())
        except UpdateFinishedTrialError:  # told or abandoned meanwhile: nothing left to keep alive
            pass

    trial.set_user_attr(HEARTBEAT, time.time())
    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def next_trial(study: optuna.Study, storage: BaseStorage, space: dict[str, BaseDistribution],
               n_trials: int, heartbeat_s: float, stale_after_s: float) -> optuna.Trial | None:
    """A new trial with its parameters drawn, or None once the study has ``n_trials`` and none running.

    While the budget is used up but other workers' trials run, waits: one of them may die.
    """
    while True:
        for number in abandon_stale(study, storage, stale_after_s):
            print(f"costnet-sweep: abandoned trial {number}: no heartbeat for {stale_after_s:g} s", flush=True)
        trials = study.get_trials(deepcopy=False)
        if counted(trials) < n_trials:
            trial = study.ask(space)
            earlier = (t for t in study.get_trials(deepcopy=False) if t.number < trial.number)
            if counted(earlier) < n_trials:
                trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
                return trial
            abandon(study, storage, trial.number)  # another worker took the last place meanwhile
        elif not any(t.state == TrialState.RUNNING for t in trials):
            return None
        time.sleep(heartbeat_s)


def run_trial(study: optuna.Study, storage: BaseStorage, trial: optuna.Trial,
              evaluate: Callable[[optuna.Trial], float], heartbeat_s: float) -> FrozenTrial:
    """Evaluate ``trial`` while its heartbeat beats, and tell the study how it ended.

    Pruned trials end PRUNED. A trial whose evaluation stops the worker (an error,
    Ctrl-C) is abandoned, as if the worker had been killed, and the error propagates.
    """
    with heartbeat(trial, heartbeat_s):
        try:
            value = evaluate(trial)
        except optuna.TrialPruned:
            return study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        except BaseException:
            abandon(study, storage, trial.number)
            raise
    return study.tell(trial, value, skip_if_finished=True)


def run_sweep(cfg: DictConfig) -> optuna.Study:
    """Work on the configured study until it has ``cfg.n_trials`` trials; after each trial
    this worker ends, and at the end, write the results to ``cfg.out``."""
    if str(cfg.metric) not in METRICS:
        raise CostnetError(f"unknown metric {cfg.metric!r}: choose from {list(METRICS)}")
    if int(cfg.n_trials) < 1 or float(cfg.heartbeat_s) <= 0 or float(cfg.stale_after_s) <= float(cfg.heartbeat_s):
        raise CostnetError(f"need n_trials >= 1 and stale_after_s > heartbeat_s > 0, got n_trials={cfg.n_trials}, "
                           f"heartbeat_s={cfg.heartbeat_s}, stale_after_s={cfg.stale_after_s}")
    out = Path(str(cfg.out))
    ensure_writable(out)
    space = load_space(str(cfg.search_space))
    study, storage = open_study(cfg)
    beat, stale = float(cfg.heartbeat_s), float(cfg.stale_after_s)
    while (trial := next_trial(study, storage, space.distributions, int(cfg.n_trials), beat, stale)) is not None:
        done = run_trial(study, storage, trial, lambda t: objective(t, cfg, space), beat)
        print(f"costnet-sweep: trial {done.number} {done.state.name.lower()}: {cfg.metric} {done.value}, "
              f"{done.params}", flush=True)
        write_results(study, cfg, space)
    write_results(study, cfg, space)
    return study
