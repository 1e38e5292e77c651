"""costnet datasets: the schema, sharded storage and loading as one pandas frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from costnet.data.schema import COMMON, CONFIG, SCHEMA_VERSION
from costnet.data.store import read_hardware, read_table


def load_dataset(path: str | Path, *, include_failed: bool = False,
                 with_hardware: bool = False) -> pd.DataFrame:
    """Load a dataset directory written by ``costnet-collect`` as one frame.

    Rows whose status is not ``ok`` (errors, memory-guard skips) are dropped
    unless ``include_failed``; ``with_hardware`` joins each row's hardware
    record as ``hw_*`` columns.
    """
    frame = read_table(Path(path))
    if not include_failed:
        frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    if with_hardware and len(frame):
        hardware = read_hardware(Path(path)).add_prefix("hw_")
        frame = frame.merge(hardware, left_on="hardware_id", right_on="hw_hardware_id", how="left")
        frame = frame.drop(columns="hw_hardware_id")
    return frame


__all__ = ["COMMON", "CONFIG", "SCHEMA_VERSION", "load_dataset", "read_hardware"]
