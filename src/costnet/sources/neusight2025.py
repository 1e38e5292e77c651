"""Adapter for NeuSight's operator latencies on five GPUs (Lee et al., ASPLOS 2025;
``../shared/datasets/neusight2025``), or any directory of the same layout.

A directory holds ``<op>.parquet`` per op (any subset of ``OPS``), the GPUs' spec sheets as
``devices.json`` or ``devices.parquet`` and optionally ``manifest.json``; see the dataset's
README. Rows are forward calls of PyTorch 2.1 operators, mapped onto costnet's ops and columns;
each gets its GPU's short name as ``device`` and the spec sheet's hardware features
(:func:`costnet.features.hardware.sheet_hardware`, values as published).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from costnet.errors import CostnetError
from costnet.features.hardware import sheet_hardware
from costnet.hardware.spec_sheets import read_spec_sheets
from costnet.ops.base import output_size

ELEMENTWISE = ("add", "addu", "mul", "mulu", "div", "divu", "pow", "powu", "relu", "gelu", "tanh")
# The dataset's ops and the costnet op each maps onto (README, "What each op computes").
OPS = {"linear": "dense", "bmm": "matmul", "conv": "conv2d", "ln": "layernorm", "softmax": "softmax",
       **{name: "elementwise" for name in ELEMENTWISE}}
SHAPES = {"linear": ("b", "m", "n", "k"), "bmm": ("b", "m", "n", "k"),
          "conv": ("b", "in_channels", "out_channels", "kernel_size", "input_size", "stride", "padding")}
# Known only after running on the GPU (README, "What it is for"): kept as aux_<name>, never a feature.
RUNTIME = ("kernel_name", "kernels", "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z",
           "blocks_per_sm", "warps_per_sm")
DEVICE_FILES = ("devices.json", "devices.parquet")
P4_LINEAR = ("keep", "drop")


def _dense(raw: pd.DataFrame) -> dict[str, Any]:
    """nn.Linear(n, k, bias=True) on (b, m, n): a dense layer over b*m rows."""
    return {"batch": raw["b"] * raw["m"], "in_features": raw["n"], "out_features": raw["k"], "bias": True,
            "activation": "none"}


def _matmul(raw: pd.DataFrame) -> dict[str, Any]:
    """bmm of (b, m, n) by (b, n, k): the dataset's n is the reduction, costnet's matmul calls it k."""
    return {"batch": raw["b"], "m": raw["m"], "k": raw["n"], "n": raw["k"]}


def _conv2d(raw: pd.DataFrame) -> dict[str, Any]:
    """nn.Conv2d(bias=False) on square inputs; PyTorch's padding as the TensorFlow rule that gives its output
    size (the README's 3x3, stride 1, padding 1 is 'same')."""
    size, kernel, stride = raw["input_size"].to_numpy(), raw["kernel_size"].to_numpy(), raw["stride"].to_numpy()
    out = (size + 2 * raw["padding"].to_numpy() - kernel) // stride + 1  # torch.nn.Conv2d's output size
    same, valid = (out == output_size(size, kernel, stride, np.full(len(raw), rule)) for rule in ("same", "valid"))
    if not (fit := same | valid).all():
        row = raw[~fit].iloc[0]
        raise CostnetError(f"neusight2025: conv padding {row['padding']} (kernel {row['kernel_size']}, stride "
                           f"{row['stride']}, size {row['input_size']}) is neither TensorFlow 'same' nor 'valid'")
    return {"batch": raw["b"], "size": raw["input_size"], "channels_in": raw["in_channels"],
            "channels_out": raw["out_channels"], "kernel": raw["kernel_size"], "stride": raw["stride"],
            "padding": np.where(same, "same", "valid"), "bias": False, "activation": "none", "groups": 1}


def _layernorm(raw: pd.DataFrame) -> dict[str, Any]:
    """LayerNorm(h) on (b, h): one sequence position per sample."""
    return {"batch": raw["b"], "seq_len": 1, "features": raw["h"]}


def _softmax(raw: pd.DataFrame) -> dict[str, Any]:
    """Softmax over h of (b, h): one row per sample."""
    return {"batch": raw["b"], "rows": 1, "features": raw["h"]}


def _elementwise(raw: pd.DataFrame) -> dict[str, Any]:
    """An element-wise op on (b, h): the op's name is costnet's fn."""
    return {"batch": raw["b"], "features": raw["h"], "fn": raw["op"]}


COLUMNS: dict[str, Callable[[pd.DataFrame], dict[str, Any]]] = {
    "dense": _dense, "matmul": _matmul, "conv2d": _conv2d, "layernorm": _layernorm, "softmax": _softmax,
    "elementwise": _elementwise}


def _root(cfg: Mapping[str, Any]) -> Path:
    root = Path(str(cfg["path"])).expanduser()
    if not root.is_dir():
        raise CostnetError(f"neusight2025: dataset directory {str(root)!r} not found (set dataset.path)")
    return root


def available_ops(root: Path) -> list[str]:
    """The dataset's ops whose files ``root`` has, in ``OPS`` order."""
    return [name for name in OPS if (root / f"{name}.parquet").is_file()]


def _names(root: Path, op: str) -> list[str]:
    """The dataset's ops that ``op`` names, whose files ``root`` has: ``op`` itself, or for a
    costnet op every one mapping onto it."""
    if op not in OPS and op not in COLUMNS:
        raise CostnetError(f"neusight2025 has no op {op!r}: choose from {list(OPS)} or costnet's {list(COLUMNS)}")
    available = available_ops(root)
    names = [name for name in available if op in (name, OPS[name])]
    if not names:
        raise CostnetError(f"neusight2025: no {op}.parquet in {str(root)!r}; its ops are {available}")
    return names


def _read(root: Path, names: list[str]) -> pd.DataFrame:
    """The files of ``names`` one after another; the index is a row's position in them."""
    frames = []
    for name in names:
        file = root / f"{name}.parquet"
        try:
            frames.append(pd.read_parquet(file))
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise CostnetError(f"neusight2025: cannot read {str(file)!r}: {exc}") from exc
        if missing := [c for c in ("gpu", "op", "latency_ms", *SHAPES.get(name, ("b", "h"))) if c not in frames[-1]]:
            raise CostnetError(f"neusight2025: {str(file)!r} lacks column(s) {missing}")
        if others := sorted(set(frames[-1]["op"].unique()) - {name}):
            raise CostnetError(f"neusight2025: {str(file)!r} holds rows of op(s) {others}, not only {name!r}")
    return pd.concat(frames, ignore_index=True)


def _devices(root: Path) -> tuple[Path, pd.DataFrame]:
    """The spec sheets (one row per GPU) and their file: devices.json, else devices.parquet."""
    file = next((root / name for name in DEVICE_FILES if (root / name).is_file()), None)
    if file is None:
        raise CostnetError(f"neusight2025: no {' or '.join(DEVICE_FILES)} in {str(root)!r}")
    try:
        return file, read_spec_sheets(file)
    except CostnetError as exc:
        raise CostnetError(f"neusight2025: {exc}") from exc


def _hardware(root: Path, gpus: pd.Series) -> pd.DataFrame:
    """``device`` (the GPU's short name) and hardware features of each GPU named in ``gpus``."""
    file, sheets = _devices(root)
    if missing := sorted(set(gpus.unique()) - set(sheets["gpu"])):
        raise CostnetError(f"neusight2025: {str(file)!r} has no spec sheet of GPU(s) {missing}")
    rows = [{"gpu": s["gpu"], **sheet_hardware(s)} for s in sheets.to_dict("records")]
    return pd.DataFrame(rows).set_index("gpu").loc[gpus].set_axis(gpus.index)


def load(cfg: Mapping[str, Any], op: str | None) -> pd.DataFrame:
    """Rows of ``op`` (a dataset op such as ``linear``, or a costnet op such as ``elementwise``:
    every file mapping onto it) from the directory ``cfg["path"]``.

    The index is a row's position in the op's files read one after another (see :func:`original`).
    """
    rule = str(cfg.get("p4_linear", "keep"))
    if rule not in P4_LINEAR:
        raise CostnetError(f"dataset.p4_linear must be one of {list(P4_LINEAR)}, got {rule!r}")
    if op is None:
        raise CostnetError(f"neusight2025 needs op=: one of {list(OPS)} or costnet's {list(COLUMNS)}")
    root = _root(cfg)
    names = _names(root, op)
    raw = _read(root, names)
    target = OPS[names[0]]
    frame = pd.DataFrame(COLUMNS[target](raw), index=raw.index).assign(
        op=target, space="neusight2025_" + raw["op"], mode="forward", optimizer="none", input_grad=False,
        dtype=raw["dtype"] if "dtype" in raw else "float32", status="ok", time_median_ms=raw["latency_ms"],
        hardware_id=raw["gpu"], **{f"aux_{c}": raw[c] for c in RUNTIME if c in raw})
    frame = pd.concat([frame, _hardware(root, raw["gpu"])], axis=1)
    if rule == "drop":  # README, "Facts worth knowing": P4 linear rows look throttled
        frame = frame[~((raw["op"] == "linear") & (frame["device"] == "P4"))]
    return frame


def files(cfg: Mapping[str, Any]) -> list[Path]:
    """The op files and the spec-sheet file of the directory ``cfg["path"]``; an error when it has none."""
    root = _root(cfg)
    if not (names := available_ops(root)):
        raise CostnetError(f"neusight2025: no op files ({', '.join(OPS)}.parquet) in {str(root)!r}")
    return [root / f"{name}.parquet" for name in names] + [_devices(root)[0]]


def original(cfg: Mapping[str, Any], op: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The original columns of ``frame``'s rows (its index is their position in ``op``'s files)."""
    root = _root(cfg)
    return _read(root, _names(root, op)).loc[frame.index]
