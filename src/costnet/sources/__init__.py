"""Where training and evaluation rows come from: published datasets and local collections."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from costnet.data import load_dataset
from costnet.data.store import read_hardware
from costnet.errors import CostnetError
from costnet.features.hardware import from_record
from costnet.sources.justus2018 import load_justus2018

OP_ALIASES = {"conv": "conv2d", "conv2d": "conv2d", "dense": "dense"}


def load_local(path: str | Path, op: str | None = None) -> pd.DataFrame:
    """ok rows of a ``costnet-collect`` dataset, with hardware features."""
    frame = load_dataset(path)
    if op is not None:
        frame = frame[frame["op"] == op].reset_index(drop=True)
    hardware = pd.DataFrame([{"hardware_id": r["hardware_id"], **from_record(r)}
                             for r in read_hardware(Path(path)).to_dict("records")])
    if frame.empty or hardware.empty:
        return frame
    return frame.merge(hardware, on="hardware_id", how="left")


def load_source(cfg: Mapping[str, Any], op: str | None) -> pd.DataFrame:
    """Rows of the dataset described by ``cfg`` (``conf/dataset/*.yaml``).

    ``device`` becomes the device name every protocol groups by: the GPU name for
    justus2018, the ``hardware_id`` for local collections.
    """
    name = cfg.get("name")
    op = OP_ALIASES.get(op, op) if op else None
    if name == "justus2018":
        if op is None:
            raise CostnetError("justus2018 needs op=conv or op=dense")
        return load_justus2018(cfg["path"], op, cfg.get("max_batchsize"))
    if name == "local":
        paths = [cfg["path"]] if isinstance(cfg["path"], (str, Path)) else list(cfg["path"])
        frame = pd.concat([load_local(p, op) for p in paths], ignore_index=True)
        if cfg.get("max_batchsize") is not None:
            frame = frame[frame["batch"] <= cfg["max_batchsize"]].reset_index(drop=True)
        return frame.assign(device=frame["hardware_id"])
    raise CostnetError(f"unknown dataset {name!r}: choose from ['justus2018', 'local']")
