"""Benchmark the collector: configurations per minute and collection efficiency.

Efficiency = time inside timed regions / wall time of the collection loop
(building layers, warm-up, bookkeeping and writing shards are the rest).

    python experiments/bench_collect.py --n 300 --spaces conv2d dense
    python experiments/bench_collect.py --n 100 --spaces conv2d -- timing.min_block_s=0.005
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from costnet.collect.runner import collect
from costnet.config import compose
from costnet.data import load_dataset


HEADER = ["| space | device | rows | configs/min | efficiency | mean row ms | build+warm-up share | failures |",
          "|---|---|---|---|---|---|---|---|"]


def collection_line(space: str, n: int, seed: int, overrides: list[str], device: str = "cpu") -> str:
    """Collect ``n`` configurations of ``space`` on ``device`` into a temporary directory; one
    table row: configurations per minute, efficiency (timed share of the loop) and failures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / space
        cfg = compose("collect", [f"space={space}", f"n={n}", f"out={out}", f"seed={seed}", f"device={device}",
                                  "progress=false", *overrides])
        s = collect(cfg)
        rows = load_dataset(out, include_failed=True)
    overhead = (rows["wall_s"].sum() - rows["timed_s"].fillna(0).sum()) / s.loop_s
    return (f"| {space} | {device} | {s.written} | {60 * s.written / s.loop_s:.0f} | {s.efficiency:.3f} "
            f"| {1e3 * rows['wall_s'].mean():.1f} | {overhead:.3f} | {s.errors + s.skipped} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="configurations per space")
    parser.add_argument("--spaces", nargs="+", default=["conv2d", "dense"])
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("overrides", nargs="*", help="extra costnet-collect overrides")
    args = parser.parse_args()
    lines = list(HEADER)
    for space in args.spaces:
        lines.append(collection_line(space, args.n, args.seed, args.overrides, args.device))
        print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
