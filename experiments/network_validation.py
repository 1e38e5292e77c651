"""Whole networks on this CPU: measured whole pass, sum of separately measured layers,
sum of predicted layers, side by side (issue 4, Sec. 2; Lu et al. 2017's observation).

For each classic network, batch size and mode (forward pass, training step) it
times the whole network, times each extracted layer on its own exactly as the
collector times a row, and predicts each layer with the cost models given by
--models (costnet-train run directories or artifacts, e.g. those of
``costnet-run --config-name networks``). Layers no op covers (concatenations)
are estimated analytically in both sums and counted in ``uncovered_share``.

    python experiments/network_validation.py --models results/networks/train/*
    python experiments/network_validation.py --networks resnet18 --batches 1 8 --modes forward

Writes <out>/table.csv, <out>/table.md, <out>/layers.parquet (every layer's
measured and predicted time) and <out>/whole_vs_sum.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from costnet.config import compose
from costnet.networks.estimate import Setting, hardware_features, layer_times, load_models
from costnet.networks.extract import extract_layers
from costnet.networks.measure import time_layers, time_network
from costnet.networks.zoo import NETWORKS, build_network, example_input
from costnet.timing import TimingConfig
from costnet.timing.workload import optimizer_factory

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def run(network: str, batch: int, mode: str, models: dict, hardware: dict, args: argparse.Namespace,
        timing: TimingConfig, make_optimizer) -> tuple[dict, pd.DataFrame]:
    """One (network, batch, mode): the three totals and the per-layer table."""
    device = torch.device("cpu")
    module, _ = build_network(network)
    x = example_input(network, batch)
    layers = extract_layers(module, x)
    setting = Setting(mode, args.optimizer)
    table = layer_times(layers, models, hardware, setting)
    table["measured_ms"] = time_layers(layers, mode, make_optimizer, args.optimizer, timing, device)
    uncovered = table["kind"] == "analytical"
    table.loc[uncovered, "measured_ms"] = table.loc[uncovered, "time_ms"]  # same estimate in both sums
    whole = time_network(module, x, mode, make_optimizer, args.optimizer, timing, device)["time_median_ms"]
    covered = table["kind"] == "layer"
    per_layer = np.abs(table.loc[covered, "time_ms"] / table.loc[covered, "measured_ms"] - 1)
    row = {"network": network, "batch": batch, "mode": mode, "whole_ms": whole,
           "layer_sum_ms": table["measured_ms"].sum(), "predicted_ms": table["time_ms"].sum(),
           "layers": int(covered.sum()), "uncovered_share": table.loc[uncovered, "time_ms"].sum() / table["time_ms"].sum(),
           "layer_mre": float(per_layer.mean())}
    row["sum_over_whole"] = row["layer_sum_ms"] / whole
    row["pred_error"] = row["predicted_ms"] / whole - 1
    row["pred_error_vs_sum"] = row["predicted_ms"] / row["layer_sum_ms"] - 1
    table.insert(0, "network", network)
    table.insert(1, "batch_size", batch)
    table.insert(2, "step", mode)
    return row, table


def plot(summary: pd.DataFrame, path: Path) -> None:
    modes = list(summary["mode"].unique())
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        part = summary[summary["mode"] == mode]
        for col, marker in (("layer_sum_ms", "o"), ("predicted_ms", "x")):
            ax.scatter(part["whole_ms"], part[col], marker=marker, label=col.replace("_ms", ""))
        lo, hi = summary[["whole_ms", "layer_sum_ms", "predicted_ms"]].min().min(), summary["whole_ms"].max() * 1.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.85, hi * 0.85], [lo * 1.15, hi * 1.15], color="grey", alpha=0.2, label="±15 %")
        ax.set(xscale="log", yscale="log", xlabel="measured whole pass (ms)", ylabel="ms", title=mode)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    parser.add_argument("--models", nargs="*", default=[], help="costnet-train run directories or artifacts")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--timing", default="network", help="conf/timing/<name>.yaml")
    parser.add_argument("--out", type=Path, default=Path("results/networks/validation"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = compose("collect", [f"timing={args.timing}"])
    timing = TimingConfig(**OmegaConf.to_container(cfg.timing, resolve=True))
    make_optimizer = optimizer_factory(cfg.optimizers)
    hardware = hardware_features("local")
    models = load_models(args.models, "local")
    print(f"cost models for: {sorted(models) or 'none (all layers analytical)'}; {torch.get_num_threads()} threads")
    rows, tables = [], []
    jobs = [(n, b, m) for n in args.networks for b in args.batches for m in args.modes]
    for network, batch, mode in tqdm(jobs, desc="networks", unit="run"):
        start = time.perf_counter()
        row, table = run(network, batch, mode, models, hardware, args, timing, make_optimizer)
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
        tables.append(table)
        summary = pd.DataFrame(rows)
        summary.to_csv(args.out / "table.csv", index=False)  # after every run: nothing lost on a crash
        tqdm.write(f"{network} b={batch} {mode}: whole {row['whole_ms']:.4g} ms, layer sum "
                   f"{row['layer_sum_ms']:.4g} ({row['sum_over_whole']:.2f}x), predicted {row['predicted_ms']:.4g} "
                   f"({100 * row['pred_error']:+.1f} %)")
    summary = pd.DataFrame(rows)
    pd.concat(tables, ignore_index=True).drop(columns=["parents"]).to_parquet(args.out / "layers.parquet")
    within = (summary["pred_error"].abs() <= 0.15).mean()
    (args.out / "table.md").write_text(
        "# Whole networks on this CPU: measured, layer sum, predicted\n\n"
        + summary.to_markdown(index=False, floatfmt=".4g")
        + f"\n\nPredicted within 15 % of the measured whole pass: {100 * within:.0f} % of runs.\n")
    plot(summary, args.out / "whole_vs_sum.png")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
