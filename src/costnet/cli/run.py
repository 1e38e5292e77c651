"""``costnet-run``: the main job, every stage that exists, end to end (costnet.pipeline)."""

from __future__ import annotations

from costnet.cli.common import run_hydra
from costnet.pipeline import run_job


def main() -> None:
    run_hydra("run", run_job)


if __name__ == "__main__":
    main()
