"""Benchmark the timer's interference checks: collect the same configurations on the idle
machine twice, then beside busy-looping neighbour processes, and compare the medians.

For each row of the disturbed run: did its median move more than ``--tolerance`` from the
idle run's, and was it flagged (``disturbed``)? A moved row that is not flagged is a
silently wrong row; the target is none. The second idle run gives the noise floor: how
many medians move that much with nobody else on the machine; so the script also counts the
rows that land beyond both idle medians by more than the tolerance.

Run it on an otherwise idle machine (nothing else busy, no tests, no training):

    python experiments/bench_interference.py --n 200 --neighbours 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from costnet.collect.runner import collect
from costnet.config import compose
from costnet.data import load_dataset
from costnet.data.info import flagged
from costnet.timing.interference import Probe, others_cores

BUSY_LOOP = "while True: pass"


def run(out: Path, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    """Collect the benchmark's configurations into ``out``; rows by index, and the summary."""
    cfg = compose("collect", [f"space={args.space}", f"n={args.n}", f"out={out}", f"seed={args.seed}",
                              "measure_peaks=false", "progress=true", *args.overrides])
    summary = collect(cfg)
    rows = load_dataset(out).set_index(["index", "mode"])
    return rows, summary.lines()


def compare(idle: pd.DataFrame, again: pd.DataFrame, other: pd.DataFrame, tolerance: float) -> dict[str, float]:
    """Shares of ``other``'s rows whose median moved more than ``tolerance`` from the first
    idle run's (the issue's measure), or beyond both idle runs' medians by more than
    ``tolerance`` (moved past the idle noise); flagged; and moved but not flagged."""
    ref, second = idle["time_median_ms"].rename("idle"), again["time_median_ms"].rename("again")
    both = pd.concat([ref, second, other[["time_median_ms", "disturbed", "retimed_blocks"]]], axis=1, join="inner")
    t = both["time_median_ms"]
    ratio = t / both["idle"]
    moved = (ratio - 1).abs() > tolerance
    low, high = both[["idle", "again"]].min(axis=1), both[["idle", "again"]].max(axis=1)
    beyond = (t > high * (1 + tolerance)) | (t < low / (1 + tolerance))
    marked = flagged(both)
    return {"rows": len(both), "moved": float(moved.mean()), "beyond_idle": float(beyond.mean()),
            "flagged": float(marked.mean()), "moved_unflagged": float((moved & ~marked).mean()),
            "moved_unflagged_rows": int((moved & ~marked).sum()),
            "beyond_idle_unflagged": float((beyond & ~marked).mean()),
            "beyond_idle_unflagged_rows": int((beyond & ~marked).sum()),
            "moved_2x": float(((ratio > 2) | (ratio < 0.5)).mean()), "median_ratio": float(ratio.median()),
            "retimed_blocks": int(both["retimed_blocks"].sum()),
            "max_ratio_unflagged": float(ratio[~marked].max()) if (~marked).any() else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="configurations")
    parser.add_argument("--space", default="conv2d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--neighbours", type=int, default=1, help="busy-looping processes beside the second run")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--out", type=Path, help="keep the datasets and results.json here")
    parser.add_argument("overrides", nargs="*", help="extra costnet-collect overrides")
    args = parser.parse_args()
    with Probe() as probe:
        before = probe.read()
        time.sleep(1.0)
        print(f"other processes use {others_cores(before, probe.read()):.2f} cores before the benchmark (should be ~0)")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        idle, idle_lines = run(root / "idle", args)
        again, again_lines = run(root / "idle-again", args)
        neighbours = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.neighbours)]
        try:
            time.sleep(0.5)
            busy, busy_lines = run(root / "busy", args)
        finally:
            for p in neighbours:
                p.kill()
        results = {"idle_again": compare(idle, again, again, args.tolerance),
                   "busy": compare(idle, again, busy, args.tolerance),
                   "args": {k: str(v) for k, v in vars(args).items()}}
        print("\n".join(["== idle", *idle_lines, "== idle again", *again_lines, "== busy", *busy_lines]))
        if args.out:
            (args.out / "results.json").write_text(json.dumps(results, indent=2))
    for name, r in results.items():
        if name == "args":
            continue
        print(f"{name:10s} rows {r['rows']}: medians moved >{100 * args.tolerance:.0f} % from idle: "
              f"{100 * r['moved']:.1f} % (>2x: {100 * r['moved_2x']:.1f} %, median ratio {r['median_ratio']:.2f}); "
              f"flagged disturbed: {100 * r['flagged']:.1f} %; moved and not flagged: {100 * r['moved_unflagged']:.1f} % "
              f"({r['moved_unflagged_rows']} rows, largest unflagged ratio {r['max_ratio_unflagged']:.2f}); "
              f"beyond both idle medians by >{100 * args.tolerance:.0f} %: {100 * r['beyond_idle']:.1f} %, of them "
              f"not flagged: {100 * r['beyond_idle_unflagged']:.1f} % ({r['beyond_idle_unflagged_rows']} rows); "
              f"{r['retimed_blocks']} blocks re-timed")


if __name__ == "__main__":
    main()
