"""Benchmark where a user waits, each figure beside the limit it is measured against.

Prediction throughput: layer predictions per second of a saved 4 x 256 MLP artifact
(``load_predictor(...).predict(frame)`` on justus2018 conv rows: features, transform and
forward), against the same network's raw forward on a pre-built input tensor (the limit),
run in the chunks prediction uses. Run it on an idle machine: any second busy process
distorts the figures.

    python experiments/bench_speed.py --rows 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from costnet.config import compose, repo_root
from costnet.features.transform import FeatureSet, enrich
from costnet.nets.estimators import PREDICT_CHUNK, MLPEstimator
from costnet.nets.mlp import MLPConfig
from costnet.nets.predictor import Predictor, load_predictor
from costnet.sources import load_source


def best_seconds(run, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``run`` after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def prediction_throughput(rows: int, repeats: int) -> list[str]:
    """Rows per second of the artifact's predict and of the raw forward, and their ratio."""
    conv = load_source({"name": "justus2018", "path": str(repo_root().parent / "shared/datasets/justus2018")}, "conv")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| figure | measured | limit | ratio |\n|---|---|---|---|")
    for line in prediction_throughput(args.rows, args.repeats):
        print(line, flush=True)


if __name__ == "__main__":
    main()
