"""``costnet-train stream=true``: the MLP trained on dataset directories streamed from their
Parquet shards (costnet.nets.streaming), for data larger than memory.

The rows of ``dataset=local`` directories are split by a seeded hash of their identity
(costnet.data.stream.Split, shares ``protocol.split``); ``protocol=joint`` fits one model
on all of them, ``protocol=per_device`` one per device. Test rows are scored as they stream
by (per device, and pooled over several); the run directory holds what a costnet-train run
holds: ``artifacts/<fold>-<model>.safetensors`` (read by ``load_predictor``), metrics.csv and
.json, predictions.parquet (test rows, ``row`` is the ``row_id``), manifest.json and
config.yaml. Baselines are not fitted (they need their rows in memory), nor plots drawn
(Spearman's rho needs every test row at once: NaN).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from costnet.data.stream import Scan, Split
from costnet.errors import CostnetError, warn
from costnet.features.transform import FeatureSet
from costnet.nets.estimators import Estimator, MLPEstimator, Monitor
from costnet.nets.factory import make_estimator
from costnet.nets.predictor import Predictor
from costnet.nets.streaming import TEST, RowStream, fit_stream
from costnet.protocols.metrics import METRICS, RunningScores
from costnet.protocols.train import write_run
from costnet.sources import OP_ALIASES
from costnet.tracking import finish, make_loggers


def stream_folds(cfg: DictConfig) -> list[tuple[str, Scan]]:
    """Each fold's name and the rows it streams: one over every device (``joint``) or one per device."""
    dataset = cfg.dataset
    if dataset.name != "local":
        raise CostnetError(f"stream=true reads costnet dataset directories (dataset=local dataset.path=DIR), "
                           f"not dataset={dataset.name}")
    paths = [dataset.path] if isinstance(dataset.path, str) else list(dataset.path)
    options = cfg.streaming
    scan = Scan(tuple(Path(str(p)) for p in paths), OP_ALIASES.get(str(cfg.op), str(cfg.op)),
                tuple(str(d) for d in cfg.devices) if cfg.get("devices") else None, dataset.get("max_batchsize"),
                str(dataset.get("disturbed", "drop")), int(options.batch_rows))
    name = cfg.protocol.name
    if name == "joint":
        return [("joint", scan)]
    if name == "per_device":
        devices = list(scan.devices) if scan.devices else scan.values("hardware_id")
        if not devices:
            raise CostnetError(f"no rows of op {scan.op!r} in {[str(r) for r in scan.roots]}")
        return [(d, Scan(scan.roots, scan.op, (d,), scan.max_batchsize, scan.disturbed, scan.batch_rows))
                for d in devices]
    raise CostnetError(f"stream=true trains protocol=joint or per_device (one hashed split of the rows), not {name}")


def score_stream(est: Estimator, stream: RowStream, fold: str, model: str, writer: pq.ParquetWriter | None = None
                 ) -> pd.DataFrame:
    """Metrics of ``est`` on the test rows of ``stream`` per device (rows ``device`` + METRICS);
    each batch's predictions go to ``writer`` when given."""
    scores: dict[str, RunningScores] = {}
    for frame in stream.frames(TEST):
        pred = est.predict(frame)
        if not (ok := np.isfinite(pred)).all():
            raise CostnetError(f"the model predicts no finite time for {int((~ok).sum())} of {len(pred)} test rows")
        y = frame["time_median_ms"].to_numpy(float)
        for device, rows in frame.groupby(frame["device"].astype(str)).indices.items():
            scores.setdefault(device, RunningScores()).add(y[rows], pred[rows])
        if writer is not None:
            writer.write_table(pa.Table.from_pandas(pd.DataFrame({
                "row": frame["row_id"].astype(str) if "row_id" in frame else frame.index.astype(str), "fold": fold,
                "model": model, "k": pd.array([None] * len(frame), dtype="Int64"),
                "device": frame["device"].astype(str),
                "measured_ms": y, "predicted_ms": pred}), schema=_PREDICTIONS, preserve_index=False))
    if not scores:
        raise CostnetError(f"fold {fold!r} has no test rows")
    rows = [{"device": d, **scores[d].result()} for d in sorted(scores)]
    if len(rows) > 1:
        pooled = RunningScores()
        for part in scores.values():
            pooled.merge(part)
        rows.append({"device": "all", **pooled.result()})
    return pd.DataFrame(rows, columns=["device", *METRICS])


def fit_and_score_stream(cfg: DictConfig, out: Path) -> pd.DataFrame:
    """costnet-train's work with ``stream=true``, every file under ``out``; returns the metrics table."""
    estimator = OmegaConf.to_container(cfg.estimator, resolve=True)
    if estimator.get("kind") != "mlp":
        raise CostnetError(f"stream=true trains the MLP (estimator=mlp or another kind: mlp config), "
                           f"not {estimator.get('kind')!r}")
    if cfg.baselines:
        warn(f"stream=true: baselines {list(cfg.baselines)} not fitted (they hold their rows in memory)")
    features = FeatureSet.from_config(cfg.features)
    split = Split(tuple(float(f) for f in cfg.protocol.split), int(cfg.seed))
    model = str(cfg.estimator.get("name") or "mlp")
    op = OP_ALIASES.get(str(cfg.op), str(cfg.op))
    config = OmegaConf.to_container(cfg, resolve=True)
    table: list[dict[str, Any]] = []
    manifest: list[dict[str, Any]] = []
    with pq.ParquetWriter(out / "predictions.parquet", _PREDICTIONS) as writer:
        for fold, scan in stream_folds(cfg):
            stream = RowStream(scan, split, features.numeric + features.categorical + ("row_id",))
            est = make_estimator(estimator, features, int(cfg.seed))
            assert isinstance(est, MLPEstimator)
            monitor = Monitor(make_loggers(cfg.tracking, out, f"{fold}-{model}", group=f"{cfg.protocol.name}-{op}",
                                           config=config, job_type=model))
            est.watch(monitor)
            start = time.perf_counter()
            counts = fit_stream(est, stream, int(cfg.streaming.workers), int(cfg.streaming.buffer_rows))
            train_s = time.perf_counter() - start
            per_device = score_stream(est, stream, fold, model, writer)
            table += [{"protocol": cfg.protocol.name, "op": op, "fold": fold, "model": model, "k": None,
                       "train_s": train_s, **r} for r in per_device.to_dict("records")]
            finish(monitor.loggers, per_device.iloc[-1].drop("device").to_dict(), per_device)
            path = Path("artifacts") / f"{fold}-{model}.safetensors"
            devices, tested = sorted(counts.devices), [d for d in per_device["device"] if d != "all"]
            Predictor(est, {"op": op, "model": model, "protocol": cfg.protocol.name, "fold": fold, "k": None,
                            "train_devices": devices, "test_devices": tested, "train_modes": sorted(counts.modes),
                            "features": cfg.features.name, "config": config,
                            "stream": {"train_rows": counts.total(0), "val_rows": counts.total(1),
                                       "test_rows": counts.total(2)}}).save(out / path)
            manifest.append({"path": str(path), "op": op, "model": model, "fold": fold, "k": None,
                             "train_devices": devices, "test_devices": tested})
    return write_run(cfg, out, table, manifest)


_PREDICTIONS = pa.schema([("row", pa.string()), ("fold", pa.string()), ("model", pa.string()), ("k", pa.int64()),
                          ("device", pa.string()), ("measured_ms", pa.float64()), ("predicted_ms", pa.float64())])
