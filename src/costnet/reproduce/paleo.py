"""PALEO's AlexNet data-parallel case (Qi, Sparks & Talwalkar, ICLR 2017, Table 4): our
analytical estimate on 1-8 K20 GPUs beside the published training times. The setup and the
published numbers are read from conf/paleo/experiments/<reference>.yaml; why ours differ is
explained in experiments/paleo_scaling.py's docstring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig

from costnet.errors import CostnetError
from costnet.hardware.catalog import catalog_file
from costnet.paleo.comm import SCHEMES
from costnet.paleo.estimate import estimate
from costnet.paleo.presets import paleo_dir
from costnet.paleo.spec import resolve_net
from costnet.reproduce import plots
from costnet.reproduce.result import Result

PUBLISHED = (("paleo_data_parallel_hours", "PALEO data-parallel", "k--"), ("paleo_hybrid_hours", "PALEO hybrid", "k:"),
             ("one_weird_trick_hybrid_hours", "Krizhevsky hybrid (measured)", "r-."))


def reference_path(name: str) -> Path:
    path = paleo_dir() / "experiments" / f"{name}.yaml"
    if not path.is_file():
        raise CostnetError(f"PALEO reference {name!r} not found: no {path}")
    return path


def build_table(reference: dict[str, Any]) -> pd.DataFrame:
    """Ours beside the published numbers, one row per worker count."""
    setup, published = reference["setup"], reference["published"]
    result = estimate(setup["net"], setup["device"], setup["link"], setup["workers"], setup["scaling"],
                      setup["batch_size"], setup["ppp_comp"], setup["ppp_comm"])
    scaling = pd.DataFrame(result["scaling_table"])
    table = pd.DataFrame({"workers": scaling["workers"], "compute_ms": scaling["compute_ms"]})
    steps = setup["epochs"] * setup["images"] / scaling["global_batch"]
    for scheme in SCHEMES:
        table[f"ours {scheme} hours"] = steps * scaling[f"step_ms_{scheme}"] / 3.6e6
        table[f"ours {scheme} speedup"] = scaling[f"speedup_{scheme}"]
    for key, label, _ in PUBLISHED:
        hours = pd.Series(published[key], dtype=float)
        table[f"{label} hours"] = hours
        table[f"{label} speedup"] = hours.iloc[0] / hours
    return table


def plot(table: pd.DataFrame, path: Path) -> str:
    """Speedup against workers: ours per scheme and the published curves."""
    fig, (ax,) = plots.panels(1, 6.0)
    for scheme in SCHEMES:
        ax.plot(table["workers"], table[f"ours {scheme} speedup"], marker="o", label=f"ours, {scheme}")
    for _, label, style in PUBLISHED:
        ax.plot(table["workers"], table[f"{label} speedup"], style, marker="s", label=f"{label} (published)")
    ax.plot(table["workers"], table["workers"], color="grey", lw=0.8, label="linear")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="K20 workers (128 images each)", ylabel="speedup in throughput",
           title="AlexNet, data parallel over 6 GB/s PCIe")
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def run(cfg: DictConfig) -> Result:
    path = reference_path(str(cfg.reference))
    reference = yaml.safe_load(path.read_text())
    table = build_table(reference)
    published = reference["published"]
    notes = [f"Setup ({path.relative_to(paleo_dir().parent)}): {reference['setup']}.",
             f"Published numbers: {published['source']}."]
    if not published["verified"]:
        notes.append("**The published numbers are unverified** (recalled from PALEO Table 4, not read from the "
                     "PDF); check them before citing.")
    notes.append("Why ours differ from PALEO's: see the docstring of experiments/paleo_scaling.py.")
    inputs = [path, resolve_net(reference["setup"]["net"]), catalog_file(reference["setup"]["device"]),
              *(paleo_dir() / f for f in ("links.yaml", "costs.yaml"))]
    return Result.described(cfg, table, figures=[plot(table, Path(str(cfg.out)) / "scaling.png")], notes=notes,
                            inputs=inputs, runs={"reference": reference})
