"""Runtime and cost of a training job on every cloud configuration, before it runs
(AI Gauge's offline estimate: Dube et al., SBAC-PAD 2019, predict a job's runtime from a model
of its step time and price it as runtime x the configuration's hourly price).

A configuration is a GPU type, a GPU count and an hourly price (conf/gauge/catalog.yaml).
Data-parallel training with a fixed per-GPU batch ``b`` on ``K`` GPUs takes

    runtime = epochs x ceil(dataset / (b K)) x step(K)
    step(K) = step_time_ms(gpu, b) + comm_time_ms(scheme, gradient bytes, K, link bandwidth)

where the all-reduce of the gradients is not overlapped with compute (as PALEO, Qi et al.
ICLR 2017, Sec. 3.2) and ``cost = runtime_h x count x price per GPU-hour`` (per-second
billing, no rounding up to whole hours). Any step-time predictor plugs in as the callable
``step_time_ms(gpu_name, per_gpu_batch) -> ms``: :func:`network_step_time` sums the
per-layer cost models over a network's layers (AI Gauge's approach: a learned model of the
step), :func:`roofline_step_time` needs only a job's FLOP and byte totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from matplotlib.figure import Figure

from costnet import config
from costnet.errors import CostnetError
from costnet.files import read_text
from costnet.hardware import load_catalog
from costnet.nets.predictor import Predictor
from costnet.networks.estimate import Setting, choose_models, hardware_features, layer_times
from costnet.networks.extract import extract_layers
from costnet.networks.zoo import build_network, example_input
from costnet.paleo.comm import comm_time_ms
from costnet.roofline import roofline_ms

StepTime = Callable[[str, int], float]


@dataclass(frozen=True)
class Offering:
    """GPUs of one type rented in the given counts, with the link between them."""

    gpu: str
    counts: tuple[int, ...]
    price_per_gpu_hour: float
    link: str
    bandwidth_gbs: float  # one link, one direction
    provider: str


@dataclass(frozen=True)
class Job:
    """A training job: per-GPU batch, training-set size and epochs."""

    batch_size: int
    dataset_size: int
    epochs: float

    def __post_init__(self) -> None:
        for name in ("batch_size", "dataset_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise CostnetError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) or not self.epochs > 0:
            raise CostnetError(f"epochs must be a positive number, got {self.epochs!r}")


def default_catalog_path() -> Path:
    return config.conf_dir() / "gauge" / "catalog.yaml"


def load_offerings(path: str | Path | None = None) -> list[Offering]:
    """The offerings of a catalog file (default conf/gauge/catalog.yaml), validated.

    GPU names must be those of the hardware catalog (conf/hardware_catalog/*.yaml).
    """
    path = Path(path) if path else default_catalog_path()
    try:
        data = yaml.safe_load(read_text(path, "gauge catalog"))
    except yaml.YAMLError as exc:
        raise CostnetError(f"gauge catalog {str(path)!r} cannot be read: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("links"), dict) \
            or not isinstance(data.get("offerings"), list) or not data["offerings"]:
        raise CostnetError(f"gauge catalog {str(path)!r} must map 'links' to a mapping and 'offerings' to a "
                           "non-empty list")
    links = data["links"]
    for name, link in links.items():
        if not isinstance(link, dict) or not config.is_number(link.get("bandwidth_gbs"), positive=True):
            raise CostnetError(f"gauge catalog {str(path)!r}: link {name!r} needs a positive bandwidth_gbs")
    known = load_catalog()
    offerings = []
    for i, entry in enumerate(data["offerings"]):
        where = f"gauge catalog {str(path)!r}, offering {i}"
        if not isinstance(entry, dict):
            raise CostnetError(f"{where}: expected a mapping")
        gpu = entry.get("gpu")
        if gpu not in known:
            raise CostnetError(f"{where}: gpu {gpu!r} is not in the hardware catalog {sorted(known)}")
        counts = entry.get("counts")
        if not isinstance(counts, list) or not counts \
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in counts):
            raise CostnetError(f"{where}: counts must be a list of positive integers, got {counts!r}")
        if not config.is_number(entry.get("price_per_gpu_hour"), positive=True):
            raise CostnetError(f"{where}: price_per_gpu_hour must be a positive number, "
                               f"got {entry.get('price_per_gpu_hour')!r}")
        if entry.get("link") not in links:
            raise CostnetError(f"{where}: link {entry.get('link')!r} is not one of {sorted(links)}")
        offerings.append(Offering(gpu, tuple(counts), float(entry["price_per_gpu_hour"]), entry["link"],
                                  float(links[entry["link"]]["bandwidth_gbs"]), str(entry.get("provider", ""))))
    return offerings



def select_offerings(offerings: list[Offering], gpus: Iterable[str] | None) -> list[Offering]:
    """The offerings of the GPU types ``gpus`` (all when None), in catalog order."""
    if gpus is None:
        return offerings
    wanted = list(gpus)
    if unknown := sorted(set(wanted) - {o.gpu for o in offerings}):
        raise CostnetError(f"gpus {unknown} are not in the gauge catalog {[o.gpu for o in offerings]}")
    return [o for o in offerings if o.gpu in wanted]

def roofline_step_time(flops_per_sample: float, bytes_per_sample: float, ppp: float,
                       hardware: dict[str, dict[str, Any]] | None = None) -> StepTime:
    """A training step's time on one GPU from the roofline of its totals.

    ``per_gpu_batch x max(FLOPs / (peak_fp32_gflops x ppp), bytes / (memory_bandwidth_gbs x ppp))``:
    the step is bound by compute or by memory traffic (Williams, Waterman & Patterson,
    "Roofline", CACM 2009), with the platform percent of peak ``ppp`` of PALEO (Qi et al.,
    ICLR 2017, Sec. 3.1), computed by costnet.roofline. Peaks come from the hardware catalog
    (conf/hardware_catalog/*.yaml).
    """
    for name, value in (("flops_per_sample", flops_per_sample), ("bytes_per_sample", bytes_per_sample),
                        ("ppp", ppp)):
        if not config.is_number(value, positive=True):
            raise CostnetError(f"{name} must be a positive number, got {value!r}")
    specs = hardware if hardware is not None else load_catalog()

    def step_time_ms(gpu: str, per_gpu_batch: int) -> float:
        if gpu not in specs:
            raise CostnetError(f"unknown GPU {gpu!r}: the hardware catalog knows {sorted(specs)}")
        spec = specs[gpu]
        return per_gpu_batch * float(roofline_ms(flops_per_sample, bytes_per_sample, spec["peak_fp32_gflops"],
                                                 spec["memory_bandwidth_gbs"], ppp))

    return step_time_ms


def network_step_time(network: str, predictors: Iterable[Predictor], setting: Setting) -> tuple[StepTime, int]:
    """A classic network's step time per GPU from per-layer cost models, and its parameter count.

    The step is the sum of the network's layer times at the per-GPU batch
    (:func:`costnet.networks.estimate.layer_times`), each op predicted by the model
    trained on that GPU where one is given (else any model of the op, else PALEO's
    analytical time at ``setting``'s PPP). Layers are extracted once per batch size.
    """
    meta = torch.device("meta")  # shapes only: neither weights nor batches are allocated
    with meta:
        module, _ = build_network(network)
    params = sum(p.numel() for p in module.parameters())
    found = list(predictors)
    layers: dict[int, pd.DataFrame] = {}

    def step_time_ms(gpu: str, per_gpu_batch: int) -> float:
        if per_gpu_batch not in layers:
            with meta:
                example = example_input(network, per_gpu_batch)
            layers[per_gpu_batch] = extract_layers(module, example)
        table = layer_times(layers[per_gpu_batch], choose_models(found, gpu), hardware_features(gpu), setting)
        return float(table["time_ms"].sum())

    return step_time_ms, params


def predict_configurations(step_time_ms: StepTime, gradient_bytes: float, job: Job,
                           offerings: Iterable[Offering], scheme: str = "ring_allreduce",
                           ppp_comm: float = 1.0) -> pd.DataFrame:
    """Runtime and cost of ``job`` on every (offering, count), with the Pareto-optimal ones marked.

    ``step_time_ms(gpu, per_gpu_batch)`` is any single-GPU step-time predictor;
    ``gradient_bytes`` is what each step all-reduces (parameters x bytes per gradient value).
    """
    if not config.is_number(gradient_bytes, positive=True):
        raise CostnetError(f"gradient_bytes must be a positive number, got {gradient_bytes!r}")
    rows = []
    for offer in offerings:
        compute_ms = float(step_time_ms(offer.gpu, job.batch_size))
        if not config.is_number(compute_ms, positive=True):
            raise CostnetError(f"the step-time predictor gave {compute_ms!r} ms for {offer.gpu}: expected a "
                               "positive time")
        for count in offer.counts:
            comm_ms = comm_time_ms(scheme, gradient_bytes, count, offer.bandwidth_gbs, ppp_comm)
            steps = -(-job.dataset_size // (job.batch_size * count))  # ceil: the last partial batch is a step
            runtime_h = job.epochs * steps * (compute_ms + comm_ms) / 1e3 / 3600
            price = offer.price_per_gpu_hour * count
            rows.append({"gpu": offer.gpu, "count": count, "provider": offer.provider, "link": offer.link,
                         "per_gpu_batch": job.batch_size, "steps_per_epoch": steps, "compute_ms": compute_ms,
                         "comm_ms": comm_ms, "step_ms": compute_ms + comm_ms, "runtime_h": runtime_h,
                         "price_per_hour": price, "cost_usd": runtime_h * price})
    if not rows:
        raise CostnetError("no configurations to estimate: the catalog (or the gpus filter) is empty")
    table = pd.DataFrame(rows)
    table["pareto"] = pareto_mask(table["runtime_h"].to_numpy(), table["cost_usd"].to_numpy())
    return table


def pareto_mask(times: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Which points no other point dominates (no slower, no dearer, and strictly better in one).

    Points with equal time and cost do not dominate each other: ties stay on the front together.
    """
    times, costs = np.asarray(times, dtype=float), np.asarray(costs, dtype=float)
    no_worse = (times[:, None] <= times[None, :]) & (costs[:, None] <= costs[None, :])
    better = (times[:, None] < times[None, :]) | (costs[:, None] < costs[None, :])
    dominated = (no_worse & better).any(axis=0)  # [j, i]: j dominates i
    return ~dominated


def pareto_front(table: pd.DataFrame) -> pd.DataFrame:
    """The Pareto-optimal rows, fastest first."""
    return table[table["pareto"]].sort_values(["runtime_h", "cost_usd"]).reset_index(drop=True)


def plot_pareto(table: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Runtime against cost for every configuration, the Pareto front highlighted and labelled."""
    front = pareto_front(table)
    fig = Figure(figsize=(8, 5.5))
    ax = fig.add_subplot()
    ax.scatter(table["runtime_h"], table["cost_usd"], s=18, color="0.65", label="configuration")
    ax.step(front["runtime_h"], front["cost_usd"], where="post", color="tab:red", linewidth=1)
    ax.scatter(front["runtime_h"], front["cost_usd"], s=36, color="tab:red", zorder=3, label="Pareto-optimal")
    for row in front.itertuples():
        ax.annotate(f"{row.gpu} x{row.count}", (row.runtime_h, row.cost_usd), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    if table["cost_usd"].max() > 10 * table["cost_usd"].min():
        ax.set_yscale("log")
    else:
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.set_xlabel("runtime (hours)")
    ax.set_ylabel("cost (USD)")
    ax.set_title(title or "Training runtime and cost per cloud configuration")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_outputs(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """configurations.csv (all, with the ``pareto`` flag), pareto.csv and pareto.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "configurations.csv", out / "pareto.csv", out / "pareto.png"]
    table.to_csv(paths[0], index=False)
    pareto_front(table).to_csv(paths[1], index=False)
    plot_pareto(table, paths[2])
    return paths
