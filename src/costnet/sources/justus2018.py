"""Adapter for the six-GPU data of Justus et al. 2018 (``../shared/datasets/justus2018``).

Rows are TensorFlow 1.10 timings of ``conv2d`` and ``dense`` layers; see the
dataset's README. Each row gets costnet's column names and the hardware features
of its GPU from the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from costnet.errors import CostnetError
from costnet.features.hardware import from_catalog
from costnet.hardware.catalog import lookup

FILES = {"conv2d": "conv.parquet", "dense": "dense.parquet"}
RENAME = {"batchsize": "batch", "matsize": "size", "kernelsize": "kernel", "strides": "stride",
          "use_bias": "bias", "dim_input": "in_features", "dim_output": "out_features", "gpu": "device"}


def load_justus2018(path: str | Path, op: str, max_batchsize: int | None = None) -> pd.DataFrame:
    """Rows of ``op`` (``conv2d`` or ``dense``) from the dataset at ``path``.

    The index is the row's position in the original file, so predictions can be
    joined back to the original columns (see :func:`original`).
    """
    if op not in FILES:
        raise CostnetError(f"justus2018 has ops {sorted(FILES)}, not {op!r}")
    file = Path(path).expanduser() / FILES[op]
    if not file.is_file():
        raise CostnetError(f"justus2018: {str(file)!r} not found (set dataset.path to the dataset's directory)")
    try:
        raw = pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise CostnetError(f"justus2018: cannot read {str(file)!r}: {exc}") from exc
    frame = raw.rename(columns=RENAME)
    if max_batchsize is not None:
        frame = frame[frame["batch"] <= max_batchsize]
    frame = frame.assign(
        op=op, space=f"justus2018_{op}", dtype="float32", status="ok",
        mode=frame["optimizer"].map(lambda o: "forward" if o == "none" else "train"),
        input_grad=False,  # the timed layer was the graph's first: no input gradient
        hardware_id=frame["device"],
    )
    if op == "conv2d":
        frame["groups"] = 1
    else:
        frame["bias"] = True
    hardware = {d: from_catalog(lookup(d)) for d in frame["device"].unique()}
    for column in next(iter(hardware.values()), {}):
        frame[column] = frame["device"].map({d: h[column] for d, h in hardware.items()})
    return frame.drop(columns=["precision", "source_file"])


def load(cfg: Mapping[str, Any], op: str | None) -> pd.DataFrame:
    """Rows of ``op`` from the dataset ``cfg`` describes (``path``, optional ``max_batchsize``)."""
    if op is None:
        raise CostnetError("justus2018 needs op=conv or op=dense")
    return load_justus2018(cfg["path"], op, cfg.get("max_batchsize"))


def files(cfg: Mapping[str, Any]) -> list[Path]:
    """Both parquet files of the dataset at ``cfg["path"]``; an error when one is absent."""
    found = [Path(str(cfg["path"])) / f for f in sorted(FILES.values())]
    if missing := [str(f) for f in found if not f.is_file()]:
        raise CostnetError(f"justus2018 data not found: {missing} (dataset.path={cfg['path']})")
    return found


def original(cfg: Mapping[str, Any], op: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The original columns of ``frame``'s rows (its index is their position in ``op``'s file)."""
    return pd.read_parquet(Path(cfg["path"]).expanduser() / FILES[op]).loc[frame.index]
