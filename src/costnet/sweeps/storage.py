"""Studies that survive a crash and that several worker processes share.

``storage`` is either a URL, for Optuna's RDBStorage (``sqlite:///runs/sweep/study.db``
on one machine, ``postgresql://user@host/db`` or ``mysql://...`` for many), or a file path,
for a JournalStorage over an append-only journal file (Optuna's recommendation for
several processes on one machine or a shared file system: no database locking).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from costnet.errors import CostnetError, warn

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
PRUNERS = {"median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
           "hyperband": optuna.pruners.HyperbandPruner, "none": optuna.pruners.NopPruner}


def repair_journal(path: Path) -> int:
    """Cut off the journal's last record if a crash left it incomplete (no newline, or not
    JSON): Optuna would append the next record to it, and never read the journal again after.
    Returns the bytes dropped. Call it holding the journal's lock."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        start, tail = size, b""
        while start > 0 and b"\n" not in tail[:-1]:  # read back to the newline before the last record
            start = max(0, start - 65536)
            f.seek(start)
            tail = f.read(size - start)
        keep = start + tail.rfind(b"\n", 0, len(tail) - 1) + 1
        last = tail[keep - start:]
        try:
            complete = last.endswith(b"\n") and isinstance(json.loads(last), dict)
        except ValueError:  # json.JSONDecodeError, UnicodeDecodeError
            complete = False
        if not last or complete:
            return 0
        f.truncate(keep)
        return size - keep


def open_storage(spec: str) -> BaseStorage:
    """The storage ``spec`` names: an RDB URL (``scheme://...``), else a journal file path
    (whose last record, if a crash cut it short, is dropped with a warning)."""
    try:
        if "://" in spec:
            if spec.startswith("sqlite:///"):
                Path(spec[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            return RDBStorage(spec)
        Path(spec).parent.mkdir(parents=True, exist_ok=True)
        lock = JournalFileSymlinkLock(spec)  # the backend's default lock, taken by every append
        backend = JournalFileBackend(spec, lock)
        lock.acquire()
        try:
            dropped = repair_journal(Path(spec))
        finally:
            lock.release()
        if dropped:
            warn(f"study journal {spec!r}: dropped its last record, {dropped} bytes a crash cut short")
        return JournalStorage(backend)
    except Exception as exc:  # SQLAlchemy's and the file system's errors, whichever the URL or path hits
        raise CostnetError(f"cannot open study storage {spec!r}: {exc}") from exc


def build(kind: str, table: Mapping[str, Any], name: str, options: Mapping[str, Any] | None) -> Any:
    """``table[name](**options)``: the configured sampler or pruner."""
    if name not in table:
        raise CostnetError(f"unknown {kind} {name!r}: choose from {sorted(table)}")
    try:
        return table[name](**dict(options or {}))
    except TypeError as exc:
        raise CostnetError(f"{kind} {name!r}: {exc}") from exc


def open_study(cfg: DictConfig) -> tuple[optuna.Study, BaseStorage]:
    """Create the sweep's study, or load it when it exists (another worker, an earlier run)."""
    direction = str(cfg.direction)
    if direction not in ("minimize", "maximize"):
        raise CostnetError(f"direction must be minimize or maximize, got {direction!r}")
    storage = open_storage(str(cfg.storage))
    study = optuna.create_study(storage=storage, study_name=str(cfg.study_name), direction=direction,
                                sampler=build("sampler", SAMPLERS, str(cfg.sampler), cfg.samplers.get(cfg.sampler)),
                                pruner=build("pruner", PRUNERS, str(cfg.pruner), cfg.pruners.get(cfg.pruner)),
                                load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise CostnetError(f"study {cfg.study_name!r} in {cfg.storage} was created to "
                           f"{study.direction.name.lower()}, not {direction}")
    return study, storage
