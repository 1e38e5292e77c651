"""``costnet-data``: inspect and merge dataset directories.

    costnet-data info DIR
    costnet-data merge A B ... out=DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from costnet.cli.common import fail
from costnet.data.info import info
from costnet.data.merge import merge
from costnet.errors import CostnetError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="costnet-data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("info", help="rows per device, op and mode; time ranges; failures")
    show.add_argument("path", type=Path, help="dataset directory")
    join = commands.add_parser("merge", help="merge dataset directories into a new one: A B ... out=DIR")
    join.add_argument("paths", nargs="+", help="input dataset directories, then out=DIR")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print(info(args.path))
            return
        outs = [p for p in args.paths if p.startswith("out=")]
        if len(outs) != 1 or not outs[0][4:]:
            fail("costnet-data merge needs exactly one out=DIR after the input directories")
        summary = merge([Path(p) for p in args.paths if not p.startswith("out=")], Path(outs[0][4:]))
        for source in summary.sources:
            print(f"{source['path']}: {source['rows']} rows in {source['shards']} shards, {source['kept']} kept")
        print(f"{summary.out}: {summary.rows_out} rows ({summary.duplicates_dropped} duplicates dropped)")
    except CostnetError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
