"""A GPU that appears in no dataset, predicted from its spec sheet alone (issue 15): per-op
models trained on all of neusight2025's GPUs predict the whole-model workloads, the operator
calls and the classic networks measured on that GPU by costnet (``measurements/<gpu>/``,
written by experiments/measure_workloads.py, measure_neusight_ops.py and network_validation.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from costnet.errors import CostnetError
from costnet.features.hardware import spec_sheet_hardware
from costnet.nets.predictor import Predictor
from costnet.networks import validate as networks_validate
from costnet.networks.estimate import load_models
from costnet.reproduce import plots
from costnet.reproduce.justus import result, train
from costnet.reproduce.result import Result
from costnet.reproduce.workloads import Extracted, predict_workload
from costnet.sources import neusight2025


def measured_workloads(path: Path) -> pd.DataFrame:
    """One row per workload of ``workloads.csv``: the fastest of its measurements (a measurement
    taken while the clocks still ramped up from idle reads slower, never faster)."""
    raw = pd.read_csv(path)
    if missing := {"workload", "model", "mode", "seq_len", "batch_size", "e2e_ms"} - set(raw.columns):
        raise CostnetError(f"{str(path)!r} lacks column(s) {sorted(missing)}")
    keys = ["gpu", "workload", "model", "mode", "seq_len", "batch_size"]
    return raw.dropna(subset=["e2e_ms"]).groupby(keys, as_index=False).agg(
        measured_ms=("e2e_ms", "min"), measurements=("e2e_ms", "size"), spread=("e2e_ms", lambda t: t.max() / t.min()))


def predict_measured(workloads: pd.DataFrame, configs: Path, models: Mapping[str, Predictor],
                     hardware: Mapping[str, Any]) -> pd.DataFrame:
    """Each measured workload with its prediction and relative error."""
    extracted: Extracted = {}
    rows = []
    for w in workloads.itertuples():
        predicted, kernels, times = predict_workload(configs, w, models, hardware, extracted)
        rows.append({"gpu": hardware["device"], "workload": w.workload, "measured_ms": w.measured_ms,
                     "measurements": w.measurements, "spread": w.spread, "predicted_ms": predicted,
                     "error": predicted / w.measured_ms - 1, "kernels": kernels, **times})
    return pd.DataFrame(rows)


def seen_workloads(root: Path, models: Mapping[str, Predictor], wanted: list[str]) -> pd.DataFrame:
    """neusight2025's own workloads (``root``: its workload_labels, configs and devices.json; only
    the models ``wanted``, or all) predicted by the same joint models, on GPUs they were trained
    on: what the deployed models make of hardware they saw, against the held-out figures of the
    neusight_workloads experiment."""
    labels = pd.read_parquet(root / "workload_labels.parquet")
    if wanted:
        labels = labels[labels["model"].isin(wanted)]
    hardware = {gpu: spec_sheet_hardware(root / "devices.json", str(gpu)) for gpu in labels["gpu"].unique()}
    extracted: Extracted = {}
    rows = []
    for w in labels.itertuples():
        predicted, _, _ = predict_workload(root / "workload_configs", w, models, hardware[w.gpu], extracted)
        rows.append({"gpu": hardware[w.gpu]["device"], "workload": w.workload, "measured_ms": float(w.e2e_ms),
                     "predicted_ms": predicted, "error": predicted / float(w.e2e_ms) - 1})
    return pd.DataFrame(rows)


def op_errors(ops: Path, models: Mapping[str, Predictor]) -> pd.DataFrame:
    """Per op of the measured operator calls (neusight2025's layout): rows, MRE, and the median
    and 10th/90th percentiles of predicted / measured."""
    rows = []
    for op, model in sorted(models.items()):
        try:
            frame = neusight2025.load({"path": str(ops), "p4_linear": "keep"}, op)
        except CostnetError:
            continue  # no measured calls of this op
        ratio = model.predict(frame) / frame["time_median_ms"].to_numpy(float)
        rows.append({"op": op, "rows": len(frame), "mre": float(np.mean(np.abs(ratio - 1))),
                     "median_ratio": float(np.median(ratio)), "ratio_p10": float(np.quantile(ratio, 0.1)),
                     "ratio_p90": float(np.quantile(ratio, 0.9))})
    return pd.DataFrame(rows)


def measured_gpu(cfg: DictConfig) -> Result:
    """Joint per-op models on neusight2025's GPUs, then the measured GPU's workloads, operator
    calls and classic networks predicted from its spec sheet; the table holds each workload and
    a summary row, ops.csv and networks.csv the other two."""
    trained = train(cfg)
    out, measured = Path(str(cfg.out)), Path(str(cfg.measurements))
    models = load_models([Path(str(c.out)) for c in trained.configs.values()])
    hardware = spec_sheet_hardware(Path(str(cfg.specs)), str(cfg.gpu))
    workloads = measured_workloads(measured / "workloads.csv")
    if cfg.get("models"):
        workloads = workloads[workloads["model"].isin([str(m) for m in cfg.models])]
    table = predict_measured(workloads, Path(str(cfg.configs)), models, hardware)
    ops = op_errors(measured / "ops", models)
    ops.to_csv(out / "ops.csv", index=False)
    seen = seen_workloads(Path(str(cfg.configs)).parent, models, [str(m) for m in cfg.get("models") or []])
    seen.to_csv(out / "seen_gpus.csv", index=False)
    seen_means = seen.assign(abs_error=seen["error"].abs()).groupby("gpu")["abs_error"].agg(["mean", "max"])
    networks, layers = networks_validate.repredict(pd.read_csv(measured / "networks" / "table.csv"),
                                                   pd.read_parquet(measured / "networks" / "layers.parquet"),
                                                   models, hardware)
    networks.drop(columns=["wall_s"], errors="ignore").to_csv(out / "networks.csv", index=False)
    layers.to_parquet(out / "network_layers.parquet")
    summary = {"gpu": hardware["device"], "workload": "mean abs. error", "error": table["error"].abs().mean(),
               "max_abs_error": table["error"].abs().max()}
    fig, axes = plots.panels(2)
    plots.predicted_vs_measured(axes[0], {None: table}, f"{hardware['device']} workloads, from its spec sheet", s=18)
    plots.bars(axes[1], ops.set_index("op")[["mre"]], "MRE of the op calls", f"{hardware['device']} operator calls")
    figures = [plots.save(fig, out / "measured_gpu.png"), networks_validate.plot(networks, out / "networks.png").name]
    within = int((networks["pred_error"].abs() <= networks_validate.TARGET).sum())
    notes = ["Table: one row per workload (`error` = predicted / measured - 1; `measured_ms` the fastest of "
             "`measurements` runs, `spread` their largest / smallest), then the mean absolute error (`error`) and the "
             "largest (`max_abs_error`). Targets: better than NeuSight on unseen GPUs (6.3 % H100, 7.6 % "
             "A100-80GB, 12.4 % L4).",
             "Operator calls (ops.csv, neusight2025's shapes timed with NeuSight's protocol): "
             + "; ".join(f"{r.op} MRE {100 * r.mre:.1f} % (median predicted/measured {r.median_ratio:.2f}, "
                         f"{r.rows} calls)" for r in ops.itertuples()) + ".",
             f"Classic networks (networks.csv, networks.png; measured whole passes and layers, predicted anew): "
             f"{within} of {len(networks)} within {networks_validate.TARGET:.0%} of the whole pass; median absolute "
             f"error {100 * networks['pred_error'].abs().median():.1f} %. Sum of separately timed layers / whole "
             f"pass: forward median {networks.loc[networks['mode'] == 'forward', 'sum_over_whole'].median():.2f}, "
             f"training step {networks.loc[networks['mode'] == 'train', 'sum_over_whole'].median():.2f} (each layer "
             "timed alone pays its own loss, backward and optimizer launches: Lu et al.'s gap on a GPU).",
             "The same joint models on neusight2025's own workloads, on GPUs they were trained on (seen_gpus.csv; "
             "compare the neusight_workloads experiment, GPU held out): mean / largest absolute error "
             + ", ".join(f"{gpu} {100 * r['mean']:.1f} / {100 * r['max']:.1f} %" for gpu, r in seen_means.iterrows())
             + ".",
             f"Measurements: {measured} (its README says how and when they were taken)."]
    trained.inputs = sorted({*trained.inputs, *(p for p in measured.rglob("*") if p.is_file()),
                             *Path(str(cfg.configs)).glob("*.json"), Path(str(cfg.specs)),
                             Path(str(cfg.configs)).parent / "workload_labels.parquet"})
    return result(cfg, trained, pd.concat([table, pd.DataFrame([summary])], ignore_index=True), figures, notes)
