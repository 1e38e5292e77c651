"""Evaluation protocols as folds: which rows train, validate and test each model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from costnet.errors import CostnetError

PROTOCOLS = ("per_device", "joint", "lodo", "fewshot")


@dataclass
class Fold:
    """One model's rows: fitted on ``train``, selected on ``val``, scored on ``test``."""

    name: str
    train_devices: list[str]
    test_devices: list[str]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split(frame: pd.DataFrame, fractions: Sequence[float], seed: int) -> list[pd.DataFrame]:
    """Random disjoint parts of ``frame`` with the given fractions (seeded)."""
    if any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise CostnetError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    order = np.random.default_rng(seed).permutation(len(frame))
    bounds = np.round(np.cumsum([0, *fractions]) * len(frame)).astype(int)
    return [frame.iloc[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]


def make_folds(frame: pd.DataFrame, protocol: Mapping[str, Any], seed: int) -> list[Fold]:
    """The folds of ``protocol`` (conf/protocol/) over ``frame``'s devices; each has training
    and test rows, or the protocol stops naming the fold that has none."""
    folds = _folds(frame, protocol, seed)
    for fold in folds:
        for part in ("train", "test"):
            if getattr(fold, part).empty:
                raise CostnetError(f"{protocol.get('name')} fold {fold.name!r} has no {part} rows (of "
                                   f"{len(fold.train) + len(fold.val) + len(fold.test)}): too few rows for its split")
    return folds


def _folds(frame: pd.DataFrame, protocol: Mapping[str, Any], seed: int) -> list[Fold]:
    name = protocol.get("name")
    devices = sorted(frame["device"].astype(str).unique())
    if name == "per_device":
        folds = []
        for device in devices:
            train, val, test = split(frame[frame["device"] == device], protocol["split"], seed)
            folds.append(Fold(device, [device], [device], train, val, test))
        return folds
    if name == "joint":
        train, val, test = split(frame, protocol["split"], seed)
        return [Fold("joint", devices, devices, train, val, test)]
    if name in ("lodo", "fewshot"):
        if len(devices) < 2:
            raise CostnetError(f"{name} needs at least two devices, the data has {devices}")
        frac = float(protocol["val_fraction"])
        held_out = [str(d) for d in (protocol.get("held_out") or devices)]
        if unknown := sorted(set(held_out) - set(devices)):
            raise CostnetError(f"{name}: held_out devices {unknown} not in the data, which has {devices}")
        folds = []
        for held in held_out:
            others = frame[frame["device"] != held]
            train, val = split(others, [1 - frac, frac], seed)
            folds.append(Fold(f"without-{held}", [d for d in devices if d != held], [held], train, val,
                              frame[frame["device"] == held]))
        return folds
    raise CostnetError(f"unknown protocol {name!r}: choose from {list(PROTOCOLS)}")
