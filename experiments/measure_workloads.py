"""Measure whole Hugging Face models on this machine's device, as neusight2025's workloads were
measured, to score costnet-predict on a GPU that appears in no dataset (issue 15).

A workload is ``<model>-<inf|train>-<seq_len>-<batch_size>`` (neusight2025's naming): the config
``<configs>/<model>.json`` built with random weights on the device (costnet.networks.hf, eager
attention, as costnet-predict builds it on the meta device), called on random token ids; ``inf``
is a forward pass (eval mode, no autograd), ``train`` a forward and backward pass without an
optimizer step (costnet.networks.measure.time_network's ``forward_backward``). fp32 with TF32 off
and cuDNN autotuning on, as NeuSight measured (PyTorch 2.1). Timed with conf/timing/<timing>.yaml
(CUDA events after a synchronize on a GPU).

    python -m experiments.measure_workloads --device cuda --out results/workloads_here
    python -m experiments.measure_workloads --workloads bert_large-inf-512-8 gpt2_large-train-1024-1

Writes <out>/workloads.csv after every workload (columns of neusight2025's workload_labels plus
the timing statistics and the device's properties); a workload that runs out of memory (or
whose config cannot be built) is recorded with its error instead of a time.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import OmegaConf

from costnet.config import compose
from costnet.errors import CostnetError
from costnet.hardware.cuda import cuda_info
from costnet.networks import hf
from costnet.networks.measure import time_network
from costnet.reproduce.workloads import WORKLOAD_MODES
from costnet.timing import TimingConfig
from costnet.timing.workload import OptimizerFactory, cuda_float32, optimizer_factory

NEUSIGHT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "neusight2025"


def parse_workload(name: str) -> dict[str, Any]:
    """``model-mode-seq-batch`` as a dict; a CostnetError names a malformed one."""
    parts = name.rsplit("-", 3)
    if len(parts) != 4 or parts[1] not in WORKLOAD_MODES or not (parts[2].isdigit() and parts[3].isdigit()):
        raise CostnetError(f"workload {name!r} is not <model>-<inf|train>-<seq_len>-<batch_size>")
    return {"workload": name, "model": parts[0], "mode": parts[1], "seq_len": int(parts[2]),
            "batch_size": int(parts[3])}


def device_properties(device: torch.device) -> dict[str, Any]:
    """What was timed on: the GPU's name (neusight2025's ``gpu`` column), SMs, L2 and software."""
    software = {"torch_version": torch.__version__, "cuda_version": torch.version.cuda}
    if device.type != "cuda":
        return {"gpu": platform.processor() or "cpu", **software}
    info = cuda_info(device)
    return {"gpu": info["name"], "num_sm": info["sm_count"], "l2_cache_mb": (info["l2_bytes"] or 0) / 2**20,
            "max_sm_clock_mhz": info["max_sm_clock_mhz"], **software}


def warm_device(device: torch.device, seconds: float) -> None:
    """Keep the GPU busy with matrix products for ``seconds``, so the first workload is not
    timed while its clocks ramp up from idle (an idle H200 reads 345 MHz, 1980 MHz under load)."""
    if device.type != "cuda" or seconds <= 0:
        return
    a = torch.rand(4096, 4096, device=device)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10):
            a = torch.mm(a, a).clamp_(-1, 1)
        torch.cuda.synchronize(device)


def measure_workload(spec: dict[str, Any], configs: Path, device: torch.device, timing: TimingConfig,
                     make_optimizer: OptimizerFactory) -> dict[str, Any]:
    """One workload's timing statistics (ms), or its error."""
    try:
        module, ids = hf.build(configs / f"{spec['model']}.json", spec["batch_size"], spec["seq_len"], device)
        stats = time_network(module, ids, WORKLOAD_MODES[spec["mode"]], make_optimizer, "sgd", timing, device)
        return {"e2e_ms": stats["time_median_ms"], **stats}
    except (RuntimeError, CostnetError) as exc:  # out of memory (a RuntimeError), or a config it cannot build
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    finally:
        module = ids = None  # noqa: F841 -- free the model before the next one is built
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", help="names; default: every workload of --labels")
    parser.add_argument("--labels", type=Path, default=NEUSIGHT / "workload_labels.parquet")
    parser.add_argument("--configs", type=Path, default=NEUSIGHT / "workload_configs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--timing", default="network", help="conf/timing/<name>.yaml")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="seconds of GPU work before the first workload")
    parser.add_argument("--out", type=Path, default=Path("results/workloads_here"))
    args = parser.parse_args()
    names = args.workloads or sorted(pd.read_parquet(args.labels, columns=["workload"])["workload"].unique())
    specs = [parse_workload(n) for n in names]
    cfg = compose("collect", [f"timing={args.timing}"])
    timing = TimingConfig(**OmegaConf.to_container(cfg.timing, resolve=True))
    device = torch.device(args.device)
    cuda_float32()
    props = device_properties(device)
    args.out.mkdir(parents=True, exist_ok=True)
    warm_device(device, args.warmup_s)
    make_optimizer = optimizer_factory(cfg.optimizers)
    rows = []
    for spec in sorted(specs, key=lambda s: (s["seq_len"] * s["batch_size"], s["model"])):
        start = time.perf_counter()
        row = {**props, **spec, **measure_workload(spec, args.configs, device, timing, make_optimizer)}
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
        pd.DataFrame(rows).to_csv(args.out / "workloads.csv", index=False)
        print(f"{spec['workload']}: {row.get('e2e_ms', float('nan')):.4g} ms {row.get('error', '')} "
              f"({row['wall_s']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
