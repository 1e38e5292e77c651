"""Justus et al. 2018 on its six-GPU data (../shared/datasets/justus2018): per-GPU models
(Fig. 3), the all-GPU model (Fig. 6), leave-one-GPU-out and few-shot transfer (Sec. V).

Each experiment runs costnet-train once per entry of its config's ``runs`` and tabulates
RMSE and MRE per run, device (and k) for every model beside the paper's published numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from omegaconf import DictConfig, OmegaConf

from costnet.config import compose
from costnet.protocols.plots import scatter
from costnet.protocols.train import model_name, run_training
from costnet.reproduce import plots
from costnet.reproduce.provenance import dataset_files
from costnet.reproduce.result import Result

METRICS = ("rmse_ms", "mre")


@dataclass
class Trained:
    """Every run of an experiment: metrics and test predictions (with a ``run`` column),
    resolved costnet-train configs, input files and the main model's name."""

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    configs: dict[str, DictConfig]
    inputs: list[Path]
    primary: str

    def protocol(self, run: str) -> str:
        return str(self.configs[run].protocol.name)

    def primary_predictions(self, run: str) -> pd.DataFrame:
        """The main model's test predictions of ``run``."""
        p = self.predictions
        return p[(p["run"] == run) & (p["model"] == self.primary)]


def train(cfg: DictConfig) -> Trained:
    """costnet-train for each run: the experiment's ``train`` overrides, the run's own, then
    its ``subset`` ones (``all`` and the run's; the quick block sets them); W&B groups the runs
    under the experiment's name. ``only`` (a list, set by a quick block) keeps those runs.
    Every run's input is checked before the first one trains."""
    subset = cfg.get("subset") or {}
    only = cfg.get("only")
    configs = {run: compose("train", [*cfg.train, *overrides, *subset.get("all", []), *subset.get(run, []),
                                      f"seed={cfg.seed}", f"out={Path(cfg.out) / 'runs' / run}",
                                      f"tracking.group={cfg.name}"])
               for run, overrides in cfg.runs.items() if not only or run in only}
    inputs = sorted({f for c in configs.values() for f in dataset_files(c.dataset)})
    metrics, predictions = [], []
    for run, train_cfg in configs.items():
        metrics.append(run_training(train_cfg).assign(run=run))
        predictions.append(pd.read_parquet(Path(str(train_cfg.out)) / "predictions.parquet").assign(run=run))
    primary = model_name(next(iter(configs.values())).estimator)
    return Trained(pd.concat(metrics, ignore_index=True), pd.concat(predictions, ignore_index=True), configs,
                   inputs, primary)


def metric_table(trained: Trained, paper: Mapping[str, Any]) -> pd.DataFrame:
    """Per run, device (and k): test rows, each model's RMSE and MRE, the paper's numbers."""
    m = trained.metrics.assign(k=trained.metrics["k"].astype("Int64"))
    keys = ["run", "device"] + (["k"] if m["k"].notna().any() else [])
    counts = m[m["model"] == trained.primary].set_index(keys)["n"].rename("test rows")
    wide = m.set_index([*keys, "model"])[list(METRICS)].unstack("model")
    wide.columns = [f"{metric} {model}" for metric, model in wide.columns]
    order = {run: i for i, run in enumerate(dict.fromkeys(m["run"]))}  # the config's order of runs
    wide = pd.concat([counts, wide], axis=1).reset_index().sort_values("run", key=lambda r: r.map(order), kind="stable")
    wide = wide.reset_index(drop=True)
    for metric in METRICS:
        published = paper.get(metric) or {}
        if published:
            wide[f"paper {metric}"] = [published.get(r, {}).get(d, np.nan) for r, d in zip(wide["run"], wide["device"])]
    return wide


def result(cfg: DictConfig, trained: Trained, table: pd.DataFrame, figures: list[str], notes: list[str]) -> Result:
    notes = [*notes, f"Main model: `{trained.primary}`; the others are baselines fitted on the same rows.",
             *([f"Published numbers (`paper ...` columns): {cfg.paper.source}."] if cfg.get("paper") else [])]
    return Result.described(cfg, table, figures=figures, notes=notes, inputs=trained.inputs,
                            runs={r: OmegaConf.to_container(c, resolve=True) for r, c in trained.configs.items()})


def metric_bars(ax: Axes, table: pd.DataFrame, run: str, metric: str, ylabel: str) -> None:
    """``metric`` per device of ``run`` for every model, and the paper's where published."""
    part = table[table["run"] == run].set_index("device")
    columns = [c for c in part.columns if c.startswith(f"{metric} ") or c == f"paper {metric}"]
    plots.bars(ax, part[columns].dropna(axis=1, how="all"), ylabel, f"{run}: {metric} per GPU")


# Draws one run's predicted-vs-measured figure: (trained, metric table, run, path) -> file name.
Scatter = Callable[[Trained, pd.DataFrame, str, Path], str]


def train_and_scatter(cfg: DictConfig, scatter_run: Scatter) -> tuple[Trained, pd.DataFrame, list[str]]:
    """Every run trained and tabulated, and each run's predicted-vs-measured figure drawn by
    ``scatter_run`` into ``<out>/<run>_predicted_vs_measured.png``."""
    trained = train(cfg)
    table = metric_table(trained, cfg.paper)
    out = Path(str(cfg.out))
    return trained, table, [scatter_run(trained, table, run, out / f"{run}_predicted_vs_measured.png")
                            for run in trained.configs]


def per_gpu_scatter(trained: Trained, table: pd.DataFrame, run: str, path: Path) -> str:
    """One panel per GPU, titled with the main model's RMSE (and the paper's)."""
    rows = table[table["run"] == run].set_index("device")
    paper = rows.get("paper rmse_ms", pd.Series(np.nan, index=rows.index))
    titles = {d: f"{run} {d}: RMSE {rows.loc[d, f'rmse_ms {trained.primary}']:.3g} ms"
              + (f" (paper {paper[d]:.3g})" if pd.notna(paper[d]) else "") for d in rows.index}
    return plots.scatter_grid(trained.primary_predictions(run), titles, path)


def pooled_scatter(trained: Trained, table: pd.DataFrame, run: str, path: Path) -> str:
    """Every GPU in one panel, titled with the main model's pooled RMSE and MRE."""
    preds = trained.primary_predictions(run)
    pooled = table[(table["run"] == run) & (table["device"] == "all")].iloc[0]
    title = (f"{run}, all GPUs, {trained.primary}: RMSE {pooled[f'rmse_ms {trained.primary}']:.3g} ms, "
             f"MRE {100 * pooled[f'mre {trained.primary}']:.1f} %")
    frame = pd.DataFrame({"time_median_ms": preds["measured_ms"].to_numpy(), "device": preds["device"].to_numpy()})
    return scatter(frame, preds["predicted_ms"].to_numpy(), title, path).name


def per_device(cfg: DictConfig) -> Result:
    """One model per GPU and op (Fig. 3): predicted vs measured per GPU, RMSE per GPU."""
    trained, table, figures = train_and_scatter(cfg, per_gpu_scatter)
    fig, axes = plots.panels(len(trained.configs))
    for ax, run in zip(axes, trained.configs):
        metric_bars(ax, table, run, "rmse_ms", "RMSE (ms)")
    figures.append(plots.save(fig, Path(str(cfg.out)) / "rmse_per_gpu.png"))
    return result(cfg, trained, table, figures, [])


def joint(cfg: DictConfig) -> Result:
    """One model over every GPU with hardware features (Fig. 6)."""
    trained, table, figures = train_and_scatter(cfg, pooled_scatter)
    return result(cfg, trained, table, figures, ["Device `all`: every test row pooled."])


def lodo_fewshot(cfg: DictConfig) -> Result:
    """Leave one GPU out (Sec. V) and few-shot adaptation with k rows of the held-out GPU."""
    trained = train(cfg)
    table = metric_table(trained, cfg.paper)
    lodo = [r for r in trained.configs if trained.protocol(r) == "lodo"]
    fewshot = [r for r in trained.configs if trained.protocol(r) == "fewshot"]
    fig, axes = plots.panels(len(lodo) + len(fewshot))
    for ax, run in zip(axes, lodo):
        metric_bars(ax, table, run, "mre", "MRE on the held-out GPU")
    for ax, run in zip(axes[len(lodo):], fewshot):
        part = trained.metrics[trained.metrics["run"] == run].sort_values("k")
        for (device, model), g in part.groupby(["device", "model"]):
            ax.plot(g["k"], g["mre"], marker="o", label=f"{device} {model}")
        ax.set(xscale="symlog", xlabel="k rows of the held-out GPU (0: none)", ylabel="MRE",
               title=f"{run}: MRE against k")
        ax.legend(fontsize=7)
    figure = plots.save(fig, Path(str(cfg.out)) / "lodo_fewshot.png")
    notes = ["Few-shot: every k of a GPU is scored on the same test rows (its rows outside the largest k's pool); "
             "k = 0 is the leave-one-out model itself."] if fewshot else []
    return result(cfg, trained, table, [figure], notes)
