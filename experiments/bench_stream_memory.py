"""Peak memory against rows: training data loaded in memory against streamed from Parquet.

Writes costnet datasets of 100k and 1M conv2d rows (justus2018's six-GPU rows, resampled with
the batch size moved by up to +-2 and the time scaled with it and jittered 2 %, in shards of
50,000 rows through costnet's own store, with a hardware record per GPU) under
``/tmp/costnet_stream_bench``, then measures, each in a fresh process, the peak resident set
size (``resource.getrusage``) of

- ``memory``: what costnet-train does before training: load the rows (dataset=local), add
  their features (``enrich``), fit the feature transform on 80 % of them and transform all;
- ``stream``: the streamed path (costnet.nets.streaming): the transform and target fitted in
  one pass over the training rows, then one epoch of (x, y) mini-batches (batch 128, default
  record batches and shuffle buffer) read through the training DataLoader.

Both use the ``hardware`` feature set (57 inputs on these rows). The processes import the same modules;
the table gives the peak and the peak less the process's size after its imports. Memory only:
the figures hold on a busy machine; times are not reported.

    python experiments/bench_stream_memory.py                  # 100k and 1M rows
    python experiments/bench_stream_memory.py --rows 100000    # one size
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from costnet.config import compose, repo_root
from costnet.data.schema import COMMON
from costnet.data.store import DatasetStore
from costnet.features.transform import FeatureSet, FeatureTransform, enrich
from costnet.ops import get_op
from costnet.sources import load_source
from costnet.sources.justus2018 import load_justus2018

OUT = Path("/tmp/costnet_stream_bench")
JUSTUS = repo_root().parent / "shared" / "datasets" / "justus2018"
SHARD_ROWS = 50_000
RUN_KEY = "5eed00000000"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def features() -> FeatureSet:
    return FeatureSet.from_config(OmegaConf.to_container(compose("train", ["protocol=joint"]).features))


def write(rows: int, root: Path) -> Path:
    """A dataset of ``rows`` conv2d rows resampled from justus2018 (skipped when already written)."""
    if (root / "_done").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.parquet"):
        old.unlink()
    source = load_justus2018(JUSTUS, "conv2d")
    rng = np.random.default_rng(0)
    store = DatasetStore(root, "conv2d", RUN_KEY)
    for gpu in source["device"].unique():
        store.write_json(f"_hardware/{gpu}.json", {"hardware_id": gpu, "kind": "cuda", "catalog_name": gpu})
    columns = get_op("conv2d").columns
    for start in range(0, rows, SHARD_ROWS):
        n = min(SHARD_ROWS, rows - start)
        pick = source.iloc[rng.integers(0, len(source), n)].reset_index(drop=True)
        batch = np.maximum(1, pick["batch"].to_numpy() + rng.integers(-2, 3, n))
        frame = pd.DataFrame({name: None for name in COMMON}, index=pick.index)
        index = np.arange(start, start + n)
        frame = frame.assign(
            row_id=[f"{RUN_KEY}-{i}" for i in index], run_key=RUN_KEY, index=index, seed=0, space="conv2d",
            op="conv2d", mode=pick["mode"], optimizer=pick["optimizer"], dtype="float32", input_grad=False,
            device="cuda:0", hardware_id=pick["device"], threads=1, status="ok", est_bytes=0,
            time_median_ms=pick["time_median_ms"] * batch / pick["batch"] * np.exp(rng.normal(0, 0.02, n)),
            n_runs=5, n_inner=50, converged=True, disturbed=False,
            timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc), batch=batch,
            **{c: pick[c] for c in columns if c != "batch"})
        store.append(frame.to_dict("records"), columns)
    (root / "_done").write_text(str(rows))
    return root


def case_memory(root: Path) -> dict[str, float]:
    import costnet.nets.streaming  # noqa: F401  the same imports as the streamed case

    base = peak_mb()
    frame = enrich(load_source({"name": "local", "path": str(root), "disturbed": "drop"}, "conv2d"))
    train = frame.sample(frac=0.8, random_state=0)
    transform = FeatureTransform(features()).fit(train)
    x = transform.transform(frame)
    return {"rows": len(frame), "inputs": x.shape[1], "imports_mb": base, "peak_mb": peak_mb()}


def case_stream(root: Path) -> dict[str, float]:
    from costnet.data.stream import Scan, Split
    from costnet.nets.estimators import MLPEstimator
    from costnet.nets.mlp import MLPConfig
    from costnet.nets.streaming import TRAIN, RowStream, StreamDataModule, fit_scalers

    base = peak_mb()
    fs = features()
    stream = RowStream(Scan((root,), "conv2d"), Split((0.8, 0.1, 0.1), 0), fs.numeric + fs.categorical)
    est = MLPEstimator(fs, MLPConfig(batch_size=128))
    counts = fit_scalers(est, stream)
    after_fit = peak_mb()
    seen = 0
    for x, _ in StreamDataModule(stream, est, counts, 128, seed=0).train_dataloader():
        seen += len(x)
    assert seen == counts.total(TRAIN)
    return {"rows": sum(counts.total(p) for p in range(3)), "inputs": est.transform.width, "imports_mb": base,
            "fit_peak_mb": after_fit, "peak_mb": peak_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--case", choices=["memory", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a measurement, in its own process
        print(json.dumps({"memory": case_memory, "stream": case_stream}[args.case](args.data)))
        return
    lines = ["| rows | on disk (MB) | in memory: peak RSS (MB) | over imports | streamed: peak RSS (MB) | over imports |",
             "|---:|---:|---:|---:|---:|---:|"]
    for rows in args.rows:
        root = write(rows, OUT / f"conv2d_{rows}")
        disk = sum(p.stat().st_size for p in root.glob("*.parquet")) / 2**20
        result = {}
        for case in ("memory", "stream"):
            done = subprocess.run([sys.executable, __file__, "--case", case, "--data", str(root)],
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"{case} on {rows} rows failed:\n{done.stderr[-3000:]}")
            result[case] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{rows} rows, {case}: {result[case]}", file=sys.stderr)
        m, s = result["memory"], result["stream"]
        lines.append(f"| {rows:,} | {disk:.0f} | {m['peak_mb']:,.0f} | {m['peak_mb'] - m['imports_mb']:,.0f} | "
                     f"{s['peak_mb']:,.0f} | {s['peak_mb'] - s['imports_mb']:,.0f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
