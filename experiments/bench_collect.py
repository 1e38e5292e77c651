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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="configurations per space")
    parser.add_argument("--spaces", nargs="+", default=["conv2d", "dense"])
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("overrides", nargs="*", help="extra costnet-collect overrides")
    args = parser.parse_args()
    lines = ["| space | rows | configs/min | efficiency | mean row ms | build+warm-up share | failures |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for space in args.spaces:
            out = Path(tmp) / space
            cfg = compose("collect", [f"space={space}", f"n={args.n}", f"out={out}", f"seed={args.seed}",
                                      "progress=false", *args.overrides])
            s = collect(cfg)
            rows = load_dataset(out, include_failed=True)
            overhead = (rows["wall_s"].sum() - rows["timed_s"].fillna(0).sum()) / s.loop_s
            lines.append(f"| {space} | {s.written} | {60 * s.written / s.loop_s:.0f} | {s.efficiency:.3f} "
                         f"| {1e3 * rows['wall_s'].mean():.1f} | {overhead:.3f} | {s.errors + s.skipped} |")
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
