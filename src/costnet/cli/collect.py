"""``costnet-collect``: time sampled layer configurations into a dataset directory."""

from __future__ import annotations

from omegaconf import DictConfig

from costnet.cli.common import run_hydra
from costnet.collect.runner import collect


def _task(cfg: DictConfig) -> None:
    print("\n".join(collect(cfg).lines()))


def main() -> None:
    run_hydra("collect", _task)


if __name__ == "__main__":
    main()
