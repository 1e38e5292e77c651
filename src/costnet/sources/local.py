"""Adapter for ``costnet-collect`` directories: one or several, merged, each row with the
hardware features of the machine it ran on."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from costnet.data import load_dataset
from costnet.data.info import flagged
from costnet.data.store import shards
from costnet.errors import CostnetError, warn
from costnet.features.hardware import dataset_hardware


def _roots(cfg: Mapping[str, Any]) -> list[Path]:
    """``dataset.path``: one directory or a list of them."""
    paths = [cfg["path"]] if isinstance(cfg["path"], (str, Path)) else list(cfg["path"])
    return [Path(str(p)) for p in paths]


def load_local(path: str | Path, op: str | None = None) -> pd.DataFrame:
    """ok rows of a ``costnet-collect`` dataset, with hardware features."""
    frame = load_dataset(path)
    if op is not None:
        frame = frame[frame["op"] == op].reset_index(drop=True)
    hardware = dataset_hardware(Path(path))
    if frame.empty or hardware.empty:
        return frame
    return frame.merge(hardware, on="hardware_id", how="left")


def load(cfg: Mapping[str, Any], op: str | None) -> pd.DataFrame:
    """Rows of ``op`` (all ops when None) from every directory of ``cfg``; ``device`` is the
    ``hardware_id``."""
    frame = pd.concat([load_local(p, op) for p in _roots(cfg)], ignore_index=True)
    frame = _disturbed(frame, str(cfg.get("disturbed", "drop")))
    if cfg.get("max_batchsize") is not None:
        frame = frame[frame["batch"] <= cfg["max_batchsize"]].reset_index(drop=True)
    return frame.assign(device=frame["hardware_id"])


def _disturbed(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Rows whose timing other work disturbed (``disturbed``): dropped (``drop``) or kept (``keep``)."""
    if rule not in ("drop", "keep"):
        raise CostnetError(f"dataset.disturbed must be 'drop' or 'keep', got {rule!r}")
    if rule == "keep":
        return frame
    bad = flagged(frame)
    if bad.all() and len(frame):
        raise CostnetError(f"all {len(frame)} rows were disturbed by other work while timing; collect again on an "
                           f"idle machine, or train on them anyway with dataset.disturbed=keep")
    if bad.any():
        warn(f"dataset: dropped {int(bad.sum())} of {len(frame)} rows disturbed while timing "
             f"(dataset.disturbed=keep keeps them)")
    return frame[~bad].reset_index(drop=True)


def files(cfg: Mapping[str, Any]) -> list[Path]:
    """The shards of every directory of ``cfg``; an error when there are none."""
    roots = _roots(cfg)
    found = [f for root in roots if root.is_dir() for f in shards(root)]
    if not found:
        raise CostnetError(f"no collected shards in {[str(r) for r in roots]}")
    return found


def original(cfg: Mapping[str, Any], op: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as collected: ``frame`` without the joined hardware features."""
    return frame.drop(columns=[c for c in frame if c.startswith("hw_")])
