"""``costnet-train``'s work: fit the model (and baselines) on every fold of a protocol,
score each on its test rows, and write artifacts, metrics, test predictions, a manifest
and plots."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from costnet.config import compose, conf_dir, int_option
from costnet.data.store import atomic_write_bytes, staged_dir
from costnet.errors import CostnetError
from costnet.features.roof import fastest_share
from costnet.features.transform import FeatureSet, enrich
from costnet.nets.estimators import Estimator, Monitor, measured_times
from costnet.nets.predictor import Predictor
from costnet.protocols.folds import Fold, make_folds
from costnet.protocols.metrics import metrics, metrics_by, scores_json
from costnet.protocols.plots import scatter
from costnet.protocols.runner import Fitted, fit_folds
from costnet.sources import load_source
from costnet.tracking import finish, make_loggers


def model_name(cfg: Mapping[str, Any]) -> str:
    """A model config's short name: its ``name``, else the sklearn model, else its kind."""
    return str(cfg.get("name") or cfg.get("model") or cfg.get("kind"))


def load_rows(cfg: DictConfig) -> pd.DataFrame:
    """The configured dataset, restricted and subsampled as asked, with features."""
    frame = load_source(cfg.dataset, cfg.op)
    if frame.empty:
        raise CostnetError(f"dataset {cfg.dataset.name!r} has no rows of op {cfg.op!r}")
    if cfg.get("devices"):
        wanted = [str(d) for d in cfg.devices]
        if missing := sorted(set(wanted) - set(frame["device"].astype(str))):
            raise CostnetError(f"devices {missing} not in the dataset, which has {sorted(frame['device'].unique())}")
        frame = frame[frame["device"].astype(str).isin(wanted)]
    if max_rows := int_option(cfg, "max_rows", optional=True):
        frame = frame.sample(frac=1.0, random_state=int(cfg.seed)).groupby("device").head(max_rows)
    measured_times(frame["time_median_ms"])  # a bad time stops the run here, not when its fold is scored
    return enrich(frame)


def baseline_configs(names: list[str], seed: int) -> dict[str, dict[str, Any]]:
    """Baseline model configs by name, composed from conf/estimator/<name>.yaml as
    ``estimator=<name>`` would be (defaults merged, ``${seed}`` resolved)."""
    configs = {}
    for name in names:
        if not (conf_dir() / "estimator" / f"{name}.yaml").is_file():
            raise CostnetError(f"unknown baseline {name!r}: no {conf_dir() / 'estimator' / (name + '.yaml')}")
        job = compose("train", [f"estimator={name}", f"seed={seed}"])
        configs[name] = OmegaConf.to_container(job.estimator, resolve=True)
    return configs


class Run:
    """Bookkeeping of one costnet-train run: metrics rows, manifest entries, files."""

    def __init__(self, cfg: DictConfig, op: str, out: Path) -> None:
        self.cfg, self.op, self.out = cfg, op, out
        self.rows: list[dict[str, Any]] = []
        self.manifest: list[dict[str, Any]] = []
        self.predictions: list[pd.DataFrame] = []

    def score(self, fold: Fold, model: str, test: pd.DataFrame, pred: np.ndarray, train_s: float,
              k: int | None = None) -> pd.DataFrame:
        """Record the metrics per device (and pooled over several devices) and the
        predictions; returns the metrics."""
        self.predictions.append(pd.DataFrame({
            "row": test.index, "fold": fold.name, "model": model, "k": k, "device": test["device"].astype(str),
            "measured_ms": test["time_median_ms"].to_numpy(float), "predicted_ms": pred}))
        rows = metrics_by(test, pred, ["device"]).to_dict("records")
        if len(rows) > 1:  # a model tested on several devices is also scored on all its rows pooled
            rows.append({"device": "all", **metrics(test["time_median_ms"].to_numpy(), pred)})
        for row in rows:
            self.rows.append({"protocol": self.cfg.protocol.name, "op": self.op, "fold": fold.name,
                              "model": model, "k": k, "train_s": train_s, **row})
        return pd.DataFrame(rows)

    def save(self, fold: Fold, model: str, est: Estimator, k: int | None = None) -> None:
        tag = f"{fold.name}-{model}" + (f"-k{k}" if k is not None else "")
        path = Path("artifacts") / f"{tag}.safetensors"
        train_devices = list(fold.train_devices) + (list(fold.test_devices) if k else [])
        meta = {"op": self.op, "model": model, "protocol": self.cfg.protocol.name, "fold": fold.name,
                "k": k, "train_devices": train_devices, "test_devices": list(fold.test_devices),
                "train_modes": sorted(set(fold.train["mode"].astype(str))) if "mode" in fold.train else [],
                "peak_share": fastest_share(fold.train),
                "max_bytes": float(fold.train["bytes"].max()) if "bytes" in fold.train else None,
                "features": self.cfg.features.name, "config": OmegaConf.to_container(self.cfg, resolve=True)}
        Predictor(est, meta).save(self.out / path)
        self.manifest.append({"path": str(path), "op": self.op, "model": model, "fold": fold.name, "k": k,
                              "train_devices": train_devices, "test_devices": list(fold.test_devices)})

    def plot(self, fold: Fold, model: str, test: pd.DataFrame, pred: np.ndarray) -> Path | None:
        if not self.cfg.plots:
            return None
        m = metrics(test["time_median_ms"].to_numpy(), pred)
        title = f"{self.op} {fold.name} {model}: RMSE {m['rmse_ms']:.3g} ms, MRE {100 * m['mre']:.1f} %"
        return scatter(test, pred, title, self.out / "plots" / f"{fold.name}-{model}.png")

    def write(self) -> pd.DataFrame:
        pd.concat(self.predictions, ignore_index=True).to_parquet(self.out / "predictions.parquet", index=False)
        return write_run(self.cfg, self.out, self.rows, self.manifest)


def write_run(cfg: DictConfig, out: Path, rows: list[dict[str, Any]], manifest: list[dict[str, Any]]) -> pd.DataFrame:
    """A run's metrics.csv and metrics.json (``rows``: one per fold, model, k and device),
    manifest.json (``manifest``: its artifacts) and config.yaml; returns the metrics table."""
    table = pd.DataFrame(rows)
    table.to_csv(out / "metrics.csv", index=False)
    nested: dict[str, Any] = {}
    for r in rows:
        key = r["model"] if r["k"] is None or pd.isna(r["k"]) else f"{r['model']}@k={int(r['k'])}"
        nested.setdefault(key, {}).setdefault(r["fold"], {})[r["device"]] = {
            k: v for k, v in r.items() if k not in ("protocol", "op", "fold", "model", "device", "k")}
    atomic_write_bytes(out / "metrics.json", scores_json(nested))
    atomic_write_bytes(out / "manifest.json", json.dumps({"artifacts": manifest}, indent=2).encode())
    atomic_write_bytes(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    return table


def few_shot(run: Run, fitted: Fitted, save: bool) -> None:
    """Score the fitted model adapted with k rows of the held-out device, for each k
    (:meth:`Estimator.adapt`: MLPs are fine-tuned, other estimators refitted with the rows added).

    All k share one test set: the held-out rows outside the largest k's pool.
    """
    cfg, fold, name, base = run.cfg, fitted.fold, fitted.name, fitted.estimator
    ks = sorted(int(k) for k in cfg.protocol.ks)
    held = fold.test.sample(frac=1.0, random_state=int(cfg.seed))
    if len(held) <= ks[-1]:
        raise CostnetError(f"fewshot: the held-out device has {len(held)} rows, not more than k={ks[-1]}")
    pool, test = held.iloc[: ks[-1]], held.iloc[ks[-1]:]
    run.score(fold, name, test, base.predict(test), 0.0, k=0)
    finetune = OmegaConf.to_container(cfg.protocol.finetune)
    for k in ks:
        start = time.perf_counter()
        est = base.adapt(pool.iloc[:k], fold.train, fold.val, finetune, str(cfg.protocol.freeze))
        run.score(fold, name, test, est.predict(test), time.perf_counter() - start, k=k)
        if save:
            run.save(fold, name, est, k=k)


def run_training(cfg: DictConfig) -> pd.DataFrame:
    """Fit and score every fold of the configured protocol; returns the metrics table.

    The run is written beside ``cfg.out`` and moved there whole once complete
    (:func:`staged_dir`): a run that fails leaves an earlier run at ``cfg.out`` as it was.
    ``stream=true`` streams the dataset instead of loading it (costnet.protocols.stream).
    """
    with staged_dir(Path(str(cfg.out)), "manifest.json") as out:
        if cfg.get("stream"):
            from costnet.protocols.stream import fit_and_score_stream

            return fit_and_score_stream(cfg, out)
        return fit_and_score(cfg, out)


def fit_and_score(cfg: DictConfig, out: Path) -> pd.DataFrame:
    """:func:`run_training`'s work, writing every file (loggers' included) under ``out``."""
    frame = load_rows(cfg)
    op = str(frame["op"].iloc[0])
    primary = model_name(cfg.estimator)
    models = {primary: OmegaConf.to_container(cfg.estimator, resolve=True)}
    models.update({n: c for n, c in baseline_configs(list(cfg.baselines or []), int(cfg.seed)).items() if n != primary})
    run = Run(cfg, op, out)

    def watch(_: int, fold: Fold, name: str) -> Monitor:  # MLPs log their training curves
        return Monitor(make_loggers(cfg.tracking, out, f"{fold.name}-{name}", group=f"{cfg.protocol.name}-{op}",
                                    config=OmegaConf.to_container(cfg, resolve=True), job_type=name))

    folds = make_folds(frame, cfg.protocol, int(cfg.seed))
    for fitted in fit_folds(folds, models, FeatureSet.from_config(cfg.features), int(cfg.seed), watch,
                            progress=f"{cfg.protocol.name} {op}"):
        fold, name, est = fitted.fold, fitted.name, fitted.estimator
        keep = name == primary or bool(cfg.save_baselines)
        pred = est.predict(fold.test)
        plot = run.plot(fold, name, fold.test, pred)
        if cfg.protocol.name == "fewshot":
            few_shot(run, fitted, keep)
            per_device = metrics_by(fold.test, pred, ["device"])
        else:
            per_device = run.score(fold, name, fold.test, pred, fitted.train_s)
        finish(fitted.monitor.loggers, metrics(fold.test["time_median_ms"].to_numpy(), pred), per_device, plot)
        if keep:
            run.save(fold, name, est)
    return run.write()


def summary_table(table: pd.DataFrame) -> str:
    """Per device (and k): RMSE and MRE of each model side by side."""
    index = ["fold", "device"] + (["k"] if table["k"].notna().any() else [])
    wide = table.pivot_table(index=index, columns="model", values=["rmse_ms", "mre", "train_s"])
    return wide.to_string(float_format=lambda v: f"{v:.4g}")
