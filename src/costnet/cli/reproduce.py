"""``costnet-reproduce``: the papers' tables and figures, one experiment each
(conf/reproduce.yaml lists them, conf/experiment/<name>.yaml configures each).

    costnet-reproduce                         # every experiment, full; results/<name>/, results/REPORT.md
    costnet-reproduce --only paleo_scaling justus_joint
    costnet-reproduce --quick                 # each on a small subset (CI); results/quick/

Each experiment writes <out>/<name>/table.md, table.csv, its PNGs and provenance.json;
<out>/REPORT.md gathers them. An experiment whose input data is missing is skipped with the
reason; one that fails is reported and the others still run (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from costnet.cli.common import fail
from costnet.data.store import ensure_writable
from costnet.errors import CostnetError
from costnet.reproduce.provenance import MissingInput, git_state
from costnet.reproduce.registry import experiment_names, load_experiment, runner, settings
from costnet.reproduce.report import write_report
from costnet.tracking import quiet_lightning


def parse(argv: list[str] | None) -> argparse.Namespace:
    names = experiment_names()
    parser = argparse.ArgumentParser(prog="costnet-reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=names,
                        help=f"run only these experiments: {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="each experiment on a small subset (for CI)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output directory (default {settings().out}, with --quick {settings().quick_out})")
    args = parser.parse_args(argv)
    args.out = args.out or Path(str(settings().quick_out if args.quick else settings().out))
    args.only = [n for n in names if n in (args.only or names)]
    return args


def run_one(name: str, quick: bool, out: Path) -> float:
    """Run one experiment and write its result to ``out/name``; returns its seconds."""
    cfg = load_experiment(name, quick, out / name)
    code = git_state()  # the checkout as it ran: edits made while it runs do not count
    start = time.perf_counter()
    result = runner(cfg)(cfg)
    seconds = time.perf_counter() - start
    result.write(out / name, OmegaConf.to_container(cfg, resolve=True), seconds, code)
    return seconds


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    try:
        ensure_writable(args.out)
    except CostnetError as exc:
        fail(str(exc))
    quiet_lightning()
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    start = time.perf_counter()
    for i, name in enumerate(args.only, 1):
        print(f"== [{i}/{len(args.only)}] {name} ({'quick' if args.quick else 'full'})", flush=True)
        try:
            seconds = run_one(name, args.quick, args.out)
        except MissingInput as exc:
            skipped[name] = str(exc)
            print(f"== {name}: skipped: {exc}", flush=True)
        except Exception as exc:  # noqa: BLE001 - one failed experiment must not stop the others
            failed[name] = str(exc) if isinstance(exc, CostnetError) else f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            print(f"== {name}: FAILED: {failed[name]}", flush=True)
        else:
            print(f"== {name}: done in {seconds:.0f} s: {args.out / name}", flush=True)
    report = write_report(args.out, skipped, failed)
    print(f"== {len(args.only) - len(skipped) - len(failed)} done, {len(skipped)} skipped, {len(failed)} failed "
          f"in {time.perf_counter() - start:.0f} s; report: {report}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
