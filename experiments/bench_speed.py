"""Benchmark where a user waits, each figure beside the limit it is measured against.

- Prediction throughput: layer predictions per second of a saved 4 x 256 MLP artifact
  (``load_predictor(...).predict(frame)`` on justus2018 conv rows: features, transform and
  forward), against the same network's raw forward on a pre-built input tensor (the limit),
  run in the chunks prediction uses.
- Whole-network latency, warm: ``costnet.predict_model`` on ResNet-50 (batch 32) and a
  24-layer transformer (BERT-large's config, batch 8 x 512 tokens) with a 4 x 256 MLP
  artifact per op, split into building the module, extraction, features and the models'
  forward; and the ``costnet-predict`` command as a user runs it.
- Training throughput: one epoch of the 4 x 256 MLP (batch 128, Lightning) on 10k, 100k and
  1M rows resampled from justus2018 conv, against the same network's forward, backward and
  AdamW step on pre-built tensors (the limit), with each run's peak memory (own process).
- Collection efficiency: the share of costnet-collect's loop spent inside timed regions
  (experiments/bench_collect.py), on the CPU and, where one is present, on a CUDA GPU.
- Test suite: the default suite's wall time, against the 5 minutes contributors are promised.

Run it on an idle machine: any second busy process distorts the figures.

    python -m experiments.bench_speed                       # everything
    python -m experiments.bench_speed --only latency training
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from costnet.config import compose, repo_root
from costnet.features import transform as feature_transform
from costnet.features.hardware import from_catalog
from costnet.features.transform import FeatureSet, enrich
from costnet.hardware.catalog import lookup
from costnet.nets.estimators import PREDICT_CHUNK, MLPEstimator, Monitor
from costnet.nets.mlp import MLPConfig
from costnet.nets import predictor as predictor_module
from costnet.nets.predictor import Predictor, load_predictor
from costnet.networks import api
from costnet.networks import estimate as estimate_module
from costnet.networks.api import predict_model
from costnet.networks.build import build
from costnet.networks.extract import extract_layers
from costnet.sampling.space import Plan, load_space
from costnet.sources import load_source
from experiments.bench_collect import HEADER, collection_line

SECTIONS = ["prediction", "latency", "training", "collection", "suite"]
SHARED = repo_root().parent / "shared" / "datasets"
NETWORKS = [("ResNet-50, batch 32", "resnet50", 32, 128),
            ("24-layer transformer (BERT-large), batch 8 x 512",
             f"hf:{SHARED / 'neusight2025/workload_configs/bert_large.json'}", 8, 512)]


def best_seconds(run, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``run`` after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def justus_conv() -> pd.DataFrame:
    return load_source({"name": "justus2018", "path": str(SHARED / "justus2018")}, "conv")


def prediction_throughput(rows: int, repeats: int) -> list[str]:
    """Rows per second of the artifact's predict and of the raw forward, and their ratio."""
    conv = justus_conv()
    train = enrich(conv[conv["device"] == "V100"].head(2200))
    features = FeatureSet.from_config(compose("train", ["features=analytical"]).features)
    estimator = MLPEstimator(features, MLPConfig(max_epochs=1, patience=1)).fit(train.head(2000), train.tail(200))
    with tempfile.TemporaryDirectory() as tmp:
        predictor = load_predictor(Predictor(estimator, {"op": "conv2d", "model": "mlp"}).save(Path(tmp) / "m.safetensors"))
    frame = conv.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    predict_s = best_seconds(lambda: predictor.predict(frame), repeats)
    net = predictor.estimator.nets[0].eval()
    x = torch.from_numpy(predictor.estimator._x(enrich(frame)))

    def forward() -> None:
        with torch.inference_mode():
            for start in range(0, len(x), PREDICT_CHUNK):
                net(x[start:start + PREDICT_CHUNK])

    forward_s = best_seconds(forward, repeats)
    flops = 2 * sum(m.in_features * m.out_features for m in net if isinstance(m, torch.nn.Linear))
    return [f"| prediction throughput, `load_predictor(...).predict(frame)` | {rows / predict_s:,.0f} rows/s "
            f"| raw forward {rows / forward_s:,.0f} rows/s ({flops * rows / forward_s / 1e9:.0f} GFLOP/s) "
            f"| {forward_s / predict_s:.2f} |"]


def op_artifacts(ops: list[str], out: Path, rows: int = 400) -> list[Path]:
    """A 4 x 256 MLP artifact per op, fitted for two epochs on ``rows`` configurations drawn from
    the op's space with times made up from their roofline estimate: what a latency figure needs
    is the artifacts' size and work, not their accuracy."""
    features = FeatureSet.from_config(compose("train", ["features=analytical"]).features)
    rng, paths = np.random.default_rng(0), []
    for op in ops:
        plan = Plan(load_space(compose("collect", [f"space={op}"]).space), 0, {"forward": 1, "train": 1},
                    ("sgd",), ("float32",))
        frame = enrich(pd.DataFrame([{**plan.config(i), "device": "V100", **from_catalog(lookup("V100"))}
                                     for i in range(rows)]))
        frame["time_median_ms"] = frame["t_roofline_ms"] * rng.uniform(1, 10, rows) + 0.005
        estimator = MLPEstimator(features, MLPConfig(max_epochs=2, patience=2)).fit(frame.iloc[:-50], frame.iloc[-50:])
        paths.append(Predictor(estimator, {"op": op, "model": "mlp"}).save(out / f"{op}.safetensors"))
    return paths


@contextmanager
def stopwatch(owner: Any, name: str, spent: dict[str, float], key: str) -> Iterator[None]:
    """Adds the seconds spent in ``owner.name`` to ``spent[key]`` while the block runs."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - start

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def network_latency(repeats: int) -> list[str]:
    """Warm time of predict_model per network, split; then the costnet-predict command."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, network, batch, seq in NETWORKS:
            module, x = build(network, batch, seq)
            ops = sorted(set(extract_layers(module, x).query("kind == 'layer'")["op"].astype(str)))
            models = {p.stem: load_predictor(p) for p in op_artifacts(ops, Path(tmp) / network.split("/")[-1])}
            best: dict[str, float] = {}
            for _ in range(repeats + 1):  # the first is the warm-up
                spent = dict.fromkeys(("extract", "features", "models", "inputs"), 0.0)
                start = time.perf_counter()
                module, x = build(network, batch, seq)
                spent["build"] = time.perf_counter() - start
                with (stopwatch(api, "extract_layers", spent, "extract"),
                      stopwatch(estimate_module, "enrich", spent, "features"),
                      stopwatch(Predictor, "predict", spent, "models"),
                      stopwatch(predictor_module, "enrich", spent, "inputs"),
                      stopwatch(feature_transform.FeatureTransform, "transform", spent, "inputs")):
                    start = time.perf_counter()
                    predict_model(module, x, "V100", models=models, mode="train")
                    spent["predict"] = time.perf_counter() - start
                spent["total"] = spent["build"] + spent["predict"]
                if not best or spent["total"] < best["total"]:
                    best = spent
            rest = best["predict"] - best["extract"] - best["features"] - best["models"]
            lines.append(f"| whole-network latency, {label}, warm: build {1e3 * best['build']:.0f} ms, extraction "
                         f"{1e3 * best['extract']:.0f} ms, features {1e3 * best['features']:.0f} ms, op models "
                         f"{1e3 * best['models']:.0f} ms ({1e3 * best['inputs']:.0f} ms of it their input "
                         f"transform, the rest their forward), table and analytical layers {1e3 * rest:.0f} ms "
                         f"| {1e3 * best['total']:.0f} ms | 50 ms | {0.05 / best['total']:.2f} |")
            print(lines[-1], flush=True)
            artifacts = ",".join(str(Path(tmp) / network.split("/")[-1] / f"{op}.safetensors") for op in ops)
            command = ["costnet-predict", f"network={network}", f"batch_size={batch}", f"seq_len={seq}",
                       "hardware=V100", "mode=train", f"model=[{artifacts}]", "top=0"]
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times.append(time.perf_counter() - start)
            lines.append(f"| `costnet-predict` {label} (a new process: imports included) | {min(times):.2f} s | 3 s "
                         f"| {3 / min(times):.2f} |")
            print(lines[-1], flush=True)
    return lines


class EpochTimer(pl.Callback):
    """Seconds of each training epoch (batches only: no validation, no setup)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self.start)


def training_case(rows: int) -> dict[str, float]:
    """One epoch of MLPEstimator.fit on ``rows`` resampled justus2018 conv rows (this process),
    and the same network's forward + backward + AdamW step on pre-built tensors."""
    conv = justus_conv()
    frame = enrich(conv.sample(rows + rows // 10, replace=True, random_state=0).reset_index(drop=True))
    features = FeatureSet.from_config(compose("train", ["features=analytical"]).features)
    cfg = MLPConfig(max_epochs=1, patience=1)
    estimator = MLPEstimator(features, cfg)
    timer = EpochTimer()
    estimator.watch(Monitor(callbacks=[timer]))
    start = time.perf_counter()
    estimator.fit(frame.iloc[:rows], frame.iloc[rows:])
    fit_s = time.perf_counter() - start
    net = estimator.nets[0].train()
    x = torch.from_numpy(estimator._x(frame.iloc[:rows]))
    y = torch.zeros(len(x))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)

    def steps() -> None:
        for begin in range(0, len(x), cfg.batch_size):
            opt.zero_grad()
            (net(x[begin:begin + cfg.batch_size]).squeeze(-1) - y[begin:begin + cfg.batch_size]).abs().mean().backward()
            opt.step()

    limit_s = best_seconds(steps, 1) if rows <= 100_000 else _once(steps)
    return {"rows": rows, "epoch_s": timer.seconds[0], "fit_s": fit_s, "limit_s": limit_s,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _once(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def training_throughput(sizes: list[int]) -> list[str]:
    """Each size in its own process, so its peak memory is its own."""
    lines = []
    for rows in sizes:
        done = subprocess.run([sys.executable, "-m", "experiments.bench_speed", "--training-case", str(rows)],
                              check=True, capture_output=True, text=True, cwd=repo_root())
        case = json.loads(done.stdout.strip().splitlines()[-1])
        lines.append(f"| training, one epoch of {rows:,} rows (batch 128): {case['epoch_s']:.1f} s "
                     f"({rows / case['epoch_s']:,.0f} rows/s; fit with feature transform and validation "
                     f"{case['fit_s']:.1f} s; peak memory {case['peak_mib']:,.0f} MiB) "
                     f"| {rows / case['epoch_s']:,.0f} rows/s | forward + backward + step "
                     f"{rows / case['limit_s']:,.0f} rows/s{'; 1M-row epoch target 60 s' if rows >= 1_000_000 else ''} "
                     f"| {case['limit_s'] / case['epoch_s']:.2f} |")
        print(lines[-1], flush=True)
    return lines


def collection_efficiency(n: int) -> list[str]:
    """bench_collect's table rows for conv2d and dense on the CPU, and on CUDA where present."""
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    lines = [*HEADER]
    print("\n" + "\n".join(HEADER))
    for device in devices:
        for space in ("conv2d", "dense"):
            lines.append(collection_line(space, n, 123, [], device))
            print(lines[-1], flush=True)
    if len(devices) == 1:
        lines.append("(no CUDA GPU here: the CUDA figure is not measured)")
        print(lines[-1])
    return lines


def suite_time() -> list[str]:
    """Wall time of the default test suite, as CI runs it (its own process)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=repo_root(), capture_output=True, text=True,
                          env={**os.environ, "WANDB_MODE": "disabled"})
    seconds = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else f"exit status {done.returncode}"
    line = f"| default test suite ({summary}) | {seconds:.0f} s | 300 s | {300 / seconds:.2f} |"
    print(line, flush=True)
    return [line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the prediction throughput")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="rows of the training epochs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--collect-n", type=int, default=100, help="configurations per space of the collection figure")
    parser.add_argument("--training-case", type=int, help=argparse.SUPPRESS)  # one size, in its own process
    args = parser.parse_args()
    if args.training_case:
        print(json.dumps(training_case(args.training_case)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| figure | measured | limit | ratio |\n|---|---|---|---|")
    if "prediction" in args.only:
        for line in prediction_throughput(args.rows, args.repeats):
            print(line, flush=True)
    if "latency" in args.only:
        network_latency(args.repeats)
    if "training" in args.only:
        training_throughput(args.sizes)
    if "collection" in args.only:
        collection_efficiency(args.collect_n)
    if "suite" in args.only:
        suite_time()


if __name__ == "__main__":
    main()
