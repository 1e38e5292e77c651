"""The collect-then-train pipeline behind ``costnet-run`` (conf/run.yaml) and the network
experiment's cost models (conf/networks.yaml): collect, summarize, train."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from costnet.collect.runner import collect
from costnet.config import compose
from costnet.data import load_dataset
from costnet.data.info import flagged, info
from costnet.data.store import ensure_writable
from costnet.protocols.train import run_training, summary_table
from costnet.tracking import quiet_lightning


def run_job(cfg: DictConfig) -> None:
    """Collect every entry of ``cfg.collect`` into ``<out>/data``, summarize the dataset, and
    train every entry of ``cfg.train`` on it into ``<out>/train/<name>`` (conf/run.yaml,
    conf/networks.yaml); ``cfg.every.collect`` and ``cfg.every.train``, where given, come
    before every entry's own overrides.

    The terminal gets one line per stage and a short report at the end; the stages' full
    summaries go to ``<out>/run.log``.
    """
    quiet_lightning()
    every = cfg.get("every") or {}
    out = Path(str(cfg.out))
    ensure_writable(out)
    data = out / "data"
    out.mkdir(parents=True, exist_ok=True)
    trained: dict[str, pd.DataFrame] = {}
    with open(out / "run.log", "w") as log:
        def detail(title: str, text: str) -> None:
            log.write(f"== {title}\n{text}\n")
            log.flush()

        for name, overrides in cfg.collect.items():
            job = compose("collect", [
                *every.get("collect", []), *overrides, f"out={data}", f"seed={cfg.seed}", f"device={cfg.device}"])
            summary = collect(job)
            detail(f"collect {name}", "\n".join(summary.lines()))
            print(f"collected {name}: {summary.written} rows in {summary.loop_s:.0f} s, "
                  f"{summary.disturbed} disturbed")
        detail("dataset", info(data))
        for name, overrides in cfg.train.items():
            job = compose("train", [
                *every.get("train", []), *overrides, "dataset=local", f"dataset.path={data}",
                f"out={out / 'train' / name}", f"seed={cfg.seed}"])
            started = time.perf_counter()
            trained[name] = run_training(job)
            detail(f"train {name} (test rows never used for fitting)", summary_table(trained[name]))
            print(f"trained {name}: {trained[name]['model'].nunique()} models in {time.perf_counter() - started:.0f} s")
    print("\n".join(report(data, out, trained)))


def report(data: Path, out: Path, trained: dict[str, pd.DataFrame]) -> list[str]:
    """The main job's short report: the rows and how many were disturbed, then per trained op
    each model's test MRE, RMSE and share within 10 %, and where the files are."""
    rows = load_dataset(data, include_failed=True)
    ok = rows[rows["status"] == "ok"]
    per_op = ", ".join(f"{op} {n}" for op, n in ok["op"].value_counts().sort_index().items())
    disturbed = int(flagged(ok).sum())
    lines = ["", "== report",
             f"rows: {len(ok)} timed ({per_op}), {len(rows) - len(ok)} failed or skipped; disturbed by other work: "
             f"{disturbed} ({100 * disturbed / max(len(ok), 1):.1f} %, left out of training unless dataset.disturbed=keep)"]
    table = pd.concat([pooled(t) for t in trained.values()], ignore_index=True) if trained else pd.DataFrame()
    if not table.empty:
        shown = pd.DataFrame({"op": table["op"], "model": table["model"], "test MRE %": 100 * table["mre"],
                              "RMSE ms": table["rmse_ms"], "within 10 %": 100 * table["within_10pct"],
                              "test rows": table["n"]})
        lines += ["", shown.to_string(index=False, float_format=lambda v: f"{v:.3g}")]
    lines += ["", f"plots: {', '.join(str(out / 'train' / n / 'plots') for n in trained)}",
              f"models and metrics: {out / 'train'}/<op>/ (manifest.json, metrics.json); details: {out / 'run.log'}"]
    return lines


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Per op and model, the test metrics over all devices: the pooled row where a model was
    scored on several devices, else its one device's row."""
    single = table[table["device"] != "all"]
    if (table["device"] == "all").any():
        single = single[~single.set_index(["op", "model"]).index.isin(
            table[table["device"] == "all"].set_index(["op", "model"]).index)]
    parts = [table[table["device"] == "all"]]
    for (op, model), g in single.groupby(["op", "model"], sort=False):
        w = g["n"] / g["n"].sum()  # several per-device folds: weighted by their test rows
        parts.append(pd.DataFrame([{"op": op, "model": model, "n": int(g["n"].sum()),
                                    "mre": float((w * g["mre"]).sum()),
                                    "rmse_ms": float(np.sqrt((w * g["rmse_ms"] ** 2).sum())),
                                    "within_10pct": float((w * g["within_10pct"]).sum())}]))
    return pd.concat(parts, ignore_index=True)[["op", "model", "n", "mre", "rmse_ms", "within_10pct"]]
