"""Issue-3 targets on the six-GPU data of Justus et al. 2018, measured on held-out rows.

Runs costnet-train for each protocol, writes results/justus/<run>/ and a summary
results/justus/SUMMARY.md beside the paper's published figures. Every number is
computed here from test rows never used for fitting or model selection.

    python experiments/justus_targets.py                     # everything (about an hour on 2 cores)
    python experiments/justus_targets.py --only conv_per_device dense_per_device
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import pandas as pd

from costnet.config import compose
from costnet.protocols.train import run_training
from costnet.reproduce.registry import paper

# Justus et al. 2018's published numbers, cited in conf/experiment/justus_*.yaml: per-GPU conv
# RMSE (ms), Fig. 3; all-GPU model (batch < 33), Fig. 6; leave-one-out MRE, Sec. V.
PAPER_CONV_RMSE = paper("justus_per_device", "rmse_ms", "conv")
PAPER_JOINT = {"rmse_ms": paper("justus_joint", "rmse_ms", "conv")["all"],
               "mre": paper("justus_joint", "mre", "conv")["all"]}
PAPER_LODO_MRE = paper("justus_lodo_fewshot", "mre", "lodo")

RUNS = {
    "conv_per_device": ["op=conv", "protocol=per_device"],
    "dense_per_device": ["op=dense", "protocol=per_device"],
    "conv_joint": ["op=conv", "protocol=joint", "dataset.max_batchsize=32"],
    "conv_lodo": ["op=conv", "protocol=lodo", "max_rows=10000", "model.max_epochs=40", "model.patience=40"],
    "conv_fewshot": ["op=conv", "protocol=fewshot", "max_rows=10000", "model.max_epochs=40",
                     "model.patience=40", "protocol.held_out=[V100,GTX1080Ti]"],
}


def report(name: str, table: pd.DataFrame) -> str:
    """A Markdown table of one run: MLP and baselines per device (and k)."""
    keys = ["device"] + (["k"] if table["k"].notna().any() else [])
    wide = table.pivot_table(index=keys, columns="model", values=["rmse_ms", "mre", "train_s"])
    wide.columns = [f"{metric} {model}" for metric, model in wide.columns]
    wide = wide.reset_index()
    if name == "conv_per_device":
        wide["paper rmse_ms"] = wide["device"].map(PAPER_CONV_RMSE)
        wide["target rmse_ms"] = wide["paper rmse_ms"] / 2
    if name == "conv_lodo":
        wide["paper mre"] = wide["device"].map(PAPER_LODO_MRE)
    if name == "conv_joint":
        wide["paper rmse_ms"], wide["paper mre"] = PAPER_JOINT["rmse_ms"], PAPER_JOINT["mre"]
    return f"## {name}\n\n" + wide.to_markdown(index=False, floatfmt=".4g") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    parser.add_argument("--out", type=Path, default=Path("results/justus"))
    parser.add_argument("overrides", nargs="*", help="extra costnet-train overrides for every run")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    sections = []
    for name in args.only:
        start = time.perf_counter()
        cfg = compose("train", [*RUNS[name], f"out={args.out / name}", "tracking.wandb=disabled",
                                "baselines=[gbm,linear_flops,paleo]", *args.overrides])
        table = run_training(cfg)
        sections.append(report(name, table) + f"\n(run took {time.perf_counter() - start:.0f} s)\n")
        print(sections[-1], flush=True)
        (args.out / "SUMMARY.md").write_text("# justus2018 targets\n\n" + "\n".join(sections))


if __name__ == "__main__":
    main()
