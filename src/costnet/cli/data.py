"""``costnet-data``: inspect dataset directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from costnet.cli.common import fail
from costnet.data.info import info
from costnet.errors import CostnetError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="costnet-data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("info", help="rows per device, op and mode; time ranges; failures")
    show.add_argument("path", type=Path, help="dataset directory")
    args = parser.parse_args(argv)
    try:
        print(info(args.path))
    except CostnetError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
