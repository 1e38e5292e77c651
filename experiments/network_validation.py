"""Whole networks on this machine (CPU, or a GPU with --device cuda): measured whole pass, sum of
separately measured layers, sum of predicted layers, side by side (issue 4, Sec. 2; Lu et al.
2017's observation). Predictions are for --hardware (this machine by default; a catalog device or
a GPU of a --hardware-specs file).

The cost models come from --models (costnet-train run directories or artifacts, e.g.
those of ``costnet-run --config-name networks``); the work is
``costnet.networks.validate``.

    python experiments/network_validation.py --models results/networks/train/*
    python experiments/network_validation.py --networks resnet18 --batches 1 8 --modes forward
    python experiments/network_validation.py --device cuda --batches 8 32 --hardware H200 \
        --hardware-specs conf/spec_sheets/H200.json --out results/networks/h200  # GPU: fp32, no TF32
    python experiments/network_validation.py --models other/models/* --reuse results/networks/validation \
        --out results/networks/validation_other   # other cost models on the same measured passes

Writes <out>/table.csv (after every run), table.md, layers.parquet (every layer's
measured and predicted time) and whole_vs_sum.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

from costnet.config import compose
from costnet.networks.estimate import hardware_features, load_models
from costnet.networks.validate import repredict, validate, write_report
from costnet.networks.zoo import NETWORKS
from costnet.timing import TimingConfig
from costnet.timing.workload import cuda_float32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    parser.add_argument("--models", nargs="*", default=[], help="costnet-train run directories or artifacts")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--timing", default="network", help="conf/timing/<name>.yaml")
    parser.add_argument("--processes", type=int, default=2,
                        help="fresh processes each whole pass is timed in, one per round over every run "
                             "(the fastest kept)")
    parser.add_argument("--reuse", type=Path, help="a previous --out: keep its measured times, predict anew")
    parser.add_argument("--device", default="cpu", help="where the networks and layers are timed: cpu, cuda[:N]")
    parser.add_argument("--hardware", default="local", help="whose features the models predict with: local, "
                        "a catalog device, or a GPU of --hardware-specs")
    parser.add_argument("--hardware-specs", type=Path, help="spec sheets in neusight2025's devices.json format")
    parser.add_argument("--out", type=Path, default=Path("results/networks/validation"))
    args = parser.parse_args()
    cfg = compose("collect", [f"timing={args.timing}"])
    timing = TimingConfig(**OmegaConf.to_container(cfg.timing, resolve=True))
    models = load_models(args.models, "local")
    hardware = hardware_features(args.hardware, args.hardware_specs)
    if args.device.startswith("cuda"):
        cuda_float32()  # the GPU op models' data: fp32 without TF32 (cuDNN's default allows it)
    header = (f"Cost models for: {', '.join(sorted(models)) or 'none (all layers analytical)'}; "
              f"predicted for {hardware['device']}; timed on {args.device} ({torch.get_num_threads()} threads); "
              f"optimizer {args.optimizer}; timing conf/timing/{args.timing}.yaml"
              + ("; fp32 without TF32, cuDNN autotuning on" if args.device.startswith("cuda") else ""))
    print(header)
    if args.reuse:
        header += f"; measured times reused from {args.reuse}"
        summary, layers = repredict(pd.read_csv(args.reuse / "table.csv"), pd.read_parquet(args.reuse / "layers.parquet"),
                                    models, hardware, args.optimizer)
    else:
        summary, layers = validate(args.networks, args.batches, args.modes, models, hardware, timing,
                                   OmegaConf.to_container(cfg.optimizers, resolve=True), args.optimizer, out=args.out,
                                   device=torch.device(args.device), processes=args.processes)
    print(write_report(summary, layers, args.out, header))


if __name__ == "__main__":
    main()
