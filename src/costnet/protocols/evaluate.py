"""``costnet-evaluate``'s work: score a saved artifact on any dataset of a known layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from costnet.data.store import atomic_write_bytes, ensure_writable
from costnet.errors import CostnetError
from costnet.nets.predictor import load_predictor
from costnet.protocols.metrics import metrics_by, scores_json
from costnet.sources import load_source, source


def run_evaluation(cfg: DictConfig) -> pd.DataFrame:
    """Per-device metrics of ``cfg.model`` on ``cfg.dataset``; writes the files asked for."""
    for key in ("out", "predictions"):
        if cfg.get(key):
            ensure_writable(Path(str(cfg[key])), file=True)
    predictor = load_predictor(str(cfg.model))
    op = str(cfg.get("op") or predictor.op)
    frame = load_source(cfg.dataset, op)
    if cfg.get("devices"):
        frame = frame[frame["device"].astype(str).isin([str(d) for d in cfg.devices])]
    if frame.empty:
        raise CostnetError(f"no rows of op {op!r} to evaluate in dataset {cfg.dataset.name!r}")
    pred = predictor.predict(frame)
    table = metrics_by(frame, pred, ["device"])
    if cfg.get("out"):
        out = Path(str(cfg.out))
        scores = {str(r.pop("device")): r for r in table.to_dict("records")}
        atomic_write_bytes(out, scores_json(scores))
    if cfg.get("predictions"):
        path = Path(str(cfg.predictions))
        original = source(cfg.dataset).original(cfg.dataset, op, frame)
        original.assign(predicted_ms=pred).to_parquet(path)
    return table
