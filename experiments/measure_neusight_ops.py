"""Time neusight2025's operator shapes on this machine's GPU with NeuSight's protocol, and write
them in that dataset's layout, so per-op models can be scored on a GPU no dataset holds (issue 15).

Two steps, because the GPU machine may not hold the dataset:

    # here: a seeded sample of each op's shapes (shape columns only, no measurements)
    python -m experiments.measure_neusight_ops sample --per-op 100 --out shapes.csv
    # on the GPU: time them; writes <out>/<op>.parquet and <out>/devices.json
    python -m experiments.measure_neusight_ops time --shapes shapes.csv --specs h200.json --out DIR

The calls are neusight2025's (README, "What each op computes"); the timing is NeuSight's
(README, "What was measured and how"): inputs already on the GPU, no autograd, fp32 with TF32
off, cuDNN autotuning on; 25 calls in a row, each between two CUDA events and followed by a
synchronize; ``latency_ms`` is the mean of the 5 fastest. ``DIR`` then loads as
``dataset=neusight2025 dataset.path=DIR`` (the GPU's spec sheet from --specs, in devices.json's
format).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from costnet.errors import CostnetError
from costnet.hardware.spec_sheets import read_spec_sheets
from costnet.ops.elementwise import BINARY, SCALAR_OPERAND, UNARY, WITH_SCALAR
from costnet.sources.neusight2025 import SHAPES, available_ops
from costnet.timing.workload import cuda_float32
from experiments.measure_workloads import NEUSIGHT, device_properties

CALLS, FASTEST = 25, 5  # NeuSight's protocol (README)


def sample_shapes(root: Path, per_op: int, seed: int, max_flops: float) -> pd.DataFrame:
    """``per_op`` seeded shapes of each op file of ``root`` (one GPU's rows: every GPU ran the
    same shapes), leaving out GEMMs and convolutions above ``max_flops`` to bound the time."""
    frames = []
    for name in available_ops(root):
        raw = pd.read_parquet(root / f"{name}.parquet")
        cols = list(SHAPES.get(name, ("b", "h")))
        rows = raw[raw["gpu"] == raw["gpu"].iloc[0]][["op", *cols]].drop_duplicates()
        if name in ("linear", "bmm"):
            rows = rows[2.0 * rows["b"] * rows["m"] * rows["n"] * rows["k"] <= max_flops]
        elif name == "conv":
            out = rows["input_size"] ** 2 * rows["out_channels"] * rows["b"]
            rows = rows[2.0 * out * rows["in_channels"] * rows["kernel_size"] ** 2 <= max_flops]
        frames.append(rows.sample(min(per_op, len(rows)), random_state=seed))
    return pd.concat(frames, ignore_index=True)


def _call(row: pd.Series, device: torch.device) -> Callable[[], object]:
    """The op call of one shape, its inputs already on ``device``."""
    op = str(row["op"])

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device)
    if op == "linear":
        layer = nn.Linear(int(row["n"]), int(row["k"]), device=device)
        x = rand(int(row["b"]), int(row["m"]), int(row["n"]))
        return lambda: layer(x)
    if op == "bmm":
        a, b = rand(int(row["b"]), int(row["m"]), int(row["n"])), rand(int(row["b"]), int(row["n"]), int(row["k"]))
        return lambda: torch.bmm(a, b)
    if op == "conv":
        conv = nn.Conv2d(int(row["in_channels"]), int(row["out_channels"]), int(row["kernel_size"]),
                         int(row["stride"]), int(row["padding"]), bias=False, device=device)
        x = rand(int(row["b"]), int(row["in_channels"]), int(row["input_size"]), int(row["input_size"]))
        return lambda: conv(x)
    x = rand(int(row["b"]), int(row["h"]))
    if op == "ln":
        norm = nn.LayerNorm(int(row["h"]), device=device)
        return lambda: norm(x)
    if op == "softmax":
        return lambda: torch.softmax(x, dim=-1)
    if op in BINARY:
        y, fn = rand(int(row["b"]), int(row["h"])), BINARY[op]
        return lambda: fn(x, y)
    if op in WITH_SCALAR:
        fn = WITH_SCALAR[op]
        return lambda: fn(x, SCALAR_OPERAND)
    if op in UNARY:
        module = UNARY[op]()
        return lambda: module(x)
    raise CostnetError(f"unknown neusight2025 op {op!r}")


def neusight_latency(fn: Callable[[], object]) -> float:
    """Mean of the 5 fastest of 25 calls, each between CUDA events and followed by a synchronize (ms)."""
    times = []
    for _ in range(CALLS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.mean(sorted(times)[:FASTEST]))


def time_shapes(shapes: pd.DataFrame, specs: Path, out: Path, device: torch.device) -> pd.DataFrame:
    """Every shape timed on ``device``; writes <out>/devices.json first, <out>/<op>.parquet once all are timed."""
    if device.type != "cuda":
        raise CostnetError(f"NeuSight's protocol times CUDA events: device must be cuda, got {str(device)!r}")
    cuda_float32()
    gpu = device_properties(device)["gpu"]
    sheets = read_spec_sheets(specs)
    sheet = sheets[sheets["gpu"] == gpu]
    if sheet.empty:
        raise CostnetError(f"{str(specs)!r} has no spec sheet whose gpu is {gpu!r} (the name this GPU reports)")
    out.mkdir(parents=True, exist_ok=True)
    sheet.to_json(out / "devices.json", orient="records", indent=1)
    times = np.full(len(shapes), math.nan)
    with torch.inference_mode():
        for i, row in tqdm(list(shapes.iterrows()), desc="shapes", mininterval=5):
            try:
                times[i] = neusight_latency(_call(row, device))
            except torch.OutOfMemoryError:
                pass  # NeuSight skipped shapes that ran out of memory too (README)
    timed = shapes.assign(gpu=gpu, latency_ms=times, dtype="float32", torch_version=torch.__version__)
    timed = timed[timed["latency_ms"].notna()]
    for op, part in timed.groupby("op"):
        part = part.dropna(axis=1, how="all")  # each op's own shape columns, integers as in neusight2025
        part = part.astype({c: "int64" for c in SHAPES.get(str(op), ("b", "h"))})
        part.to_parquet(out / f"{op}.parquet", index=False)
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    s = sub.add_parser("sample", help="write a seeded sample of neusight2025's shapes")
    s.add_argument("--root", type=Path, default=NEUSIGHT)
    s.add_argument("--per-op", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-flops", type=float, default=1e12, help="largest GEMM or convolution kept")
    s.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("time", help="time the sampled shapes on this GPU")
    t.add_argument("--shapes", type=Path, required=True)
    t.add_argument("--specs", type=Path, required=True, help="spec sheets in neusight2025's devices.json format")
    t.add_argument("--device", default="cuda")
    t.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "sample":
        shapes = sample_shapes(args.root, args.per_op, args.seed, args.max_flops)
        shapes.to_csv(args.out, index=False)
        print(f"{len(shapes)} shapes of {shapes['op'].nunique()} ops -> {args.out}")
    else:
        timed = time_shapes(pd.read_csv(args.shapes), args.specs, args.out, torch.device(args.device))
        print(timed.groupby("op")["latency_ms"].describe().to_string())


if __name__ == "__main__":
    main()
