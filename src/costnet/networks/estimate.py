"""Whole-network time from per-layer cost models.

Time per batch T_b is the sum over layers of their predicted times (a forward
pass or one training step); an epoch of p batches takes E = p * T_b. Layers of
an op with a trained model get that model's prediction; layers no model covers
get the PALEO-style analytical time FLOPs / (peak * ppp_comp) + bytes /
(bandwidth * ppp_mem) (Qi et al. 2017, Sec. 3.1; costnet.roofline); free layers (views, and dropout in a
forward pass, which runs in eval mode) cost 0.
The ``source`` column of the table says which applies to each row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from costnet.config import is_number
from costnet.errors import CostnetError
from costnet.features.analytical import analytical_features
from costnet.features.hardware import from_catalog, from_record, spec_sheet_hardware
from costnet.features.roof import fewest_flops
from costnet.features.transform import enrich
from costnet.hardware import fingerprint
from costnet.hardware.catalog import lookup
from costnet.nets.predictor import Predictor, load_predictor
from costnet.networks.backward import backward_ms
from costnet.networks.overhead import with_kernel_gap, with_pass_ratio
from costnet.ops import get_op
from costnet.ops.step import OPTIMIZER_STATES, check_dtypes, update_bytes
from costnet.roofline import compute_ms, paleo_ms

LOCAL = ("local", "cpu")

# Appended to a layer's source when its model saw the device clipped into its training range.
CLIPPED = " (device beyond the trained range: seen clipped)"


def hardware_features(name: str, specs: Path | None = None) -> dict[str, Any]:
    """Hardware feature values of the GPU ``name`` in the spec-sheet file ``specs``
    (costnet.hardware.spec_sheets), else of a catalog device, or of this machine for
    ``local``/``cpu``."""
    if specs is not None:
        return spec_sheet_hardware(specs, name)
    if name.lower() in LOCAL:
        return {"device": "cpu", **from_record(fingerprint("cpu", torch.get_num_threads()))}
    return {"device": name, **from_catalog(lookup(name))}


def read_predictors(paths: Iterable[str | Path]) -> list[Predictor]:
    """Every predictor of artifact files and run directories (their manifest.json)."""
    found: list[Predictor] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += [load_predictor(p) for p in manifest_artifacts(path)]
        else:
            found.append(load_predictor(path))
    return found


def manifest_entries(run: Path) -> list[tuple[dict[str, Any], Path]]:
    """Each artifact entry of a run directory's manifest.json with its path, confined to the
    run directory: an absolute path, or one that leads out of it (``..``, a symlink), is refused."""
    manifest = run / "manifest.json"
    if not manifest.is_file():
        raise CostnetError(f"{str(run)!r} is a directory without manifest.json")
    try:
        entries = [(dict(e), str(e["path"])) for e in json.loads(manifest.read_text())["artifacts"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise CostnetError(f"{str(manifest)!r} is not a costnet run manifest: {exc!r}") from exc
    root, found = run.resolve(), []
    for entry, name in entries:
        path = (run / name).resolve()
        if Path(name).is_absolute() or not path.is_relative_to(root):
            raise CostnetError(f"{str(manifest)!r} lists artifact {name!r} outside its run directory; refused")
        found.append((entry, path))
    return found


def manifest_artifacts(run: Path) -> list[Path]:
    """The artifact paths of a run directory's manifest (:func:`manifest_entries`)."""
    return [path for _, path in manifest_entries(run)]


def choose_models(found: Iterable[Predictor], hardware: str | None = None) -> dict[str, Predictor]:
    """One predictor per op: those trained on ``hardware`` first, then MLPs before
    baselines; the first of the rest wins."""

    def rank(p: Predictor) -> tuple[int, int]:
        devices = [str(d).lower() for d in p.meta.get("train_devices", [])]
        on_device = hardware is not None and (hardware.lower() in devices or
                                              (hardware.lower() in LOCAL and "cpu" in devices))
        return (0 if on_device else 1, 0 if p.meta.get("model") == "mlp" else 1)

    models: dict[str, Predictor] = {}
    for p in sorted(found, key=rank):
        models.setdefault(p.op, p)
    return models


def load_models(paths: Iterable[str | Path], hardware: str | None = None) -> dict[str, Predictor]:
    """One predictor per op from artifact files or run directories (see :func:`choose_models`)."""
    return choose_models(read_predictors(paths), hardware)


def op_rows(layers: pd.DataFrame, op: str, context: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of one op in the collector's schema (typed config columns plus context)."""
    columns: dict[str, Any] = {}
    for col in get_op(op).columns:
        if col not in layers:
            raise CostnetError(f"extracted {op} layers lack column {col!r}")
        values = layers[col]
        if values.isna().any():
            raise CostnetError(f"extracted {op} layers have no value for {col!r} in some rows")
        if all(isinstance(v, (bool, np.bool_)) for v in values.to_numpy()):
            values = values.astype(bool)
        elif pd.api.types.is_numeric_dtype(values) and (values % 1 == 0).all():
            values = values.astype(int)
        columns[col] = values
    inplace = layers["inplace"].astype(bool).to_numpy() if "inplace" in layers else False
    # one frame built at once: a column assigned at a time costs about 0.1 ms each
    return pd.DataFrame({**columns, "op": op, **context, "input_grad": layers["input_grad"].astype(bool).to_numpy(),
                         "inplace": inplace}, index=layers.index)


def distinct_rows(rows: pd.DataFrame, op: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The distinct configurations of ``rows`` (an op's config columns, ``input_grad`` and
    ``inplace``; the context is the same for all), and for each row the position of its configuration: a
    24-layer transformer repeats one block's few shapes 24 times, and each is featurized and
    predicted once."""
    keys = [*get_op(op).columns, "input_grad", "inplace"]
    seen: dict[tuple, int] = {}  # each configuration's number, in order of first appearance (op_rows refuses NaN)
    codes = np.fromiter((seen.setdefault(key, len(seen)) for key in zip(*(rows[k].to_numpy() for k in keys))),
                        dtype=np.int64, count=len(rows))
    first = np.unique(codes, return_index=True)[1]
    return rows.iloc[first], codes


MODES = ("train", "forward_backward", "forward")


@dataclass(frozen=True)
class Setting:
    """What is predicted: the mode, optimizer and dtype of the step, and analytical PPPs."""

    mode: str = "train"  # train (forward, backward, optimizer update) | forward_backward (no update) | forward
    optimizer: str = "sgd"
    dtype: str = "float32"
    ppp_comp: float = 1.0  # PALEO's platform percent of peak for uncovered layers
    ppp_mem: float = 1.0
    # No layer runs faster than its FLOPs at the device's peak (the compute roof of the
    # roofline model, Williams et al. 2009), counting the fewest FLOPs a known algorithm needs
    # (Op.fast_algorithm_factor: Winograd convolutions), times the largest share of peak its
    # model's training rows reached (costnet.features.roof): a prediction below it is raised to it.
    # Only the compute roof: a layer whose tensors stay in cache beats the DRAM bandwidth.
    compute_floor: bool = True
    # Per kernel-running call, how much a separately timed call exceeds its share of one whole
    # pass (Lu et al. 2017; fitted by costnet.networks.overhead.fit_kernel_gap). 0: the sum of
    # the layers as timed; the gap is one row of the table, -kernel_gap_ms x calls.
    kernel_gap_ms: float = 0.0
    # The whole pass over the sum of its separately timed layers (fitted by
    # costnet.networks.overhead.fit_pass_ratio; on a CPU the gap scales with the pass). 1: the sum
    # as timed; otherwise one row of the table, (pass_ratio - 1) x the sum, after the kernel gap.
    pass_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CostnetError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        check_dtypes([self.dtype])
        if not is_number(self.kernel_gap_ms):
            raise CostnetError(f"kernel_gap_ms must be a finite number of ms, got {self.kernel_gap_ms!r}")
        if not is_number(self.pass_ratio, positive=True):
            raise CostnetError(f"pass_ratio must be a positive finite number, got {self.pass_ratio!r}")
        if not (0 < self.ppp_comp <= 1 and 0 < self.ppp_mem <= 1):
            raise CostnetError(f"ppp_comp and ppp_mem must be in (0, 1], got {self.ppp_comp}, {self.ppp_mem}")

    @property
    def row_mode(self) -> str:
        """The ``mode`` of the layer rows: forward, or train (a step with a backward pass)."""
        return "forward" if self.mode == "forward" else "train"

    @property
    def row_optimizer(self) -> str:
        """The ``optimizer`` of the layer rows: none unless the step updates the weights."""
        return self.optimizer if self.mode == "train" else "none"


def forward_only(model: Predictor) -> bool:
    """Whether ``model`` was trained on forward calls only (artifacts record their rows' modes)."""
    return list(model.meta.get("train_modes") or []) == ["forward"]


def _step_ms(model: Predictor, rows: pd.DataFrame, extra: pd.DataFrame, setting: Setting, peak: float,
             bandwidth: float) -> tuple[np.ndarray, str]:
    """Each row's time from ``model`` (``extra``: ``enrich(rows)``), and how it was made. A step
    with a backward pass, asked of a model that only saw forward calls, is its forward call plus the backward of
    :mod:`costnet.networks.backward` (twice the forward where no rule covers the op) plus, for
    ``mode=train``, the optimizer update estimated analytically: its FLOPs, and the weights,
    gradients and optimizer states read and written once (PALEO-style, costnet.roofline)."""
    if setting.row_mode != "train" or not forward_only(model):
        return model.predict(rows, extra), ""
    forward = rows.assign(mode="forward", optimizer="none")
    ahead = model.predict(forward)
    back = backward_ms(forward, model.predict)
    how = " forward + backward rule" if back is not None else " forward x 3 (no backward rule for this op)"
    back = 2 * ahead if back is None else back
    if setting.mode != "train":  # forward_backward: no optimizer step
        return ahead + back, how
    nbytes = update_bytes(extra["bytes_weights"].to_numpy(float), OPTIMIZER_STATES.get(setting.row_optimizer, 2))
    update = paleo_ms(extra["flops_update"].to_numpy(float), nbytes, peak, bandwidth)
    return ahead + back + update, how + " + update"


def layer_times(layers: pd.DataFrame, models: Mapping[str, Predictor], hardware: Mapping[str, Any],
                setting: Setting = Setting()) -> pd.DataFrame:
    """``layers`` (from :func:`costnet.networks.extract.extract_layers`) with
    ``time_ms``, ``source`` and ``flops`` (of the predicted step) per row."""
    table = layers.copy()
    # the three new columns filled as arrays and set once (a .loc assignment per op costs ~1 ms)
    time_ms, flops_all = np.zeros(len(table)), np.zeros(len(table))
    source = np.full(len(table), "free", dtype=object)
    context = {"mode": setting.row_mode, "dtype": setting.dtype, "optimizer": setting.row_optimizer,
               **{k: v for k, v in hardware.items() if k.startswith("hw_") or k == "device"}}
    peak, bandwidth = float(hardware["hw_peak_gflops"]), float(hardware["hw_bandwidth_gbs"])

    def analytical(flops: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        return paleo_ms(flops, nbytes, peak, bandwidth, setting.ppp_comp, setting.ppp_mem)

    if setting.row_mode == "forward":  # dropout in eval mode hands its input on: no kernel runs
        table.loc[(table["kind"] == "layer") & (table["op"] == "dropout"), "kind"] = "free"
    covered = table["kind"] == "layer"
    for op, index in table[covered].groupby("op").groups.items():
        at = table.index.get_indexer(index)
        rows, same = distinct_rows(op_rows(table.loc[index], str(op), context), str(op))
        # a model's features include the analytical ones: computed once, for the table and the model
        extra = enrich(rows) if op in models else analytical_features(rows)
        flops = extra["flops"].to_numpy(float)[same]
        flops_all[at] = flops
        if op in models:
            predicted, how = _step_ms(models[op], rows, extra, setting, peak, bandwidth)
            predicted = predicted[same]
            bad = ~(np.isfinite(predicted) & (predicted > 0))
            if bad.any():  # pandas' sum would skip a NaN layer: the network would come out too fast
                names = table["name"].astype(str).to_numpy()[at][bad]
                raise CostnetError(f"the {op} model predicts {predicted[bad][0]!r} ms for {int(bad.sum())} "
                                   f"layer(s), e.g. {names[0]!r}: not a time")
            fewest = fewest_flops(rows, extra["flops"].to_numpy(float))[same]  # e.g. Winograd convolutions
            share = models[op].peak_share(setting.row_mode)
            floor = compute_ms(fewest, peak * share) if setting.compute_floor else np.zeros(len(flops))
            label = f"model:{models[op].meta.get('model', 'model')}{how}"
            if models[op].beyond(rows):  # costnet.features.envelope
                label += CLIPPED
            time_ms[at] = np.maximum(predicted, floor)
            source[at] = np.where(predicted < floor, f"{label} (raised to the compute floor)", label)
        else:
            time_ms[at] = analytical(flops, extra["bytes"].to_numpy(float)[same])
            source[at] = "analytical (no model for this op)"
    rest = (table["kind"] == "analytical").to_numpy()
    if rest.any():
        # forward plus a backward that reads and writes as much again (no weights to update)
        factor = 2.0 if setting.row_mode == "train" else 1.0
        flops, nbytes = table.loc[rest, "flops_fwd"].to_numpy(float), table.loc[rest, "bytes"].to_numpy(float)
        flops_all[rest] = factor * flops
        time_ms[rest] = factor * analytical(flops, nbytes)
        source[rest] = "analytical (uncovered)"
    table["time_ms"], table["flops"], table["source"] = time_ms, flops_all, pd.array(source, dtype="str")
    if setting.kernel_gap_ms:
        table = with_kernel_gap(table, setting.kernel_gap_ms)
    if setting.pass_ratio != 1:
        table = with_pass_ratio(table, setting.pass_ratio)
    total = table["time_ms"].sum()
    table["share"] = table["time_ms"] / total if total > 0 else 0.0
    return table


@dataclass(frozen=True)
class NetworkTime:
    """Totals of one network, batch size and device."""

    batch_ms: float
    batches_per_epoch: int
    modeled_share: float  # share of the time predicted by trained models

    @property
    def epoch_s(self) -> float:
        return self.batch_ms * self.batches_per_epoch / 1e3


def network_time(table: pd.DataFrame, batch_size: int, dataset_size: int) -> NetworkTime:
    """T_b and E = p * T_b with p = ceil(dataset_size / batch_size) batches."""
    if batch_size < 1 or dataset_size < 1:
        raise CostnetError(f"batch_size and dataset_size must be >= 1, got {batch_size}, {dataset_size}")
    total = float(table["time_ms"].sum())
    modeled = float(table.loc[table["source"].str.startswith("model"), "time_ms"].sum())
    return NetworkTime(total, math.ceil(dataset_size / batch_size), modeled / total if total else 0.0)
