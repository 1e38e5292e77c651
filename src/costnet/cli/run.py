"""``costnet-run``: the main job, every stage that exists, end to end."""

from __future__ import annotations

from pathlib import Path

from hydra import compose
from omegaconf import DictConfig

from costnet.cli.common import run_hydra
from costnet.collect.runner import collect
from costnet.data.info import info


def _task(cfg: DictConfig) -> None:
    data = Path(str(cfg.out)) / "data"
    for name, overrides in cfg.collect.items():
        print(f"== collect {name}")
        job = compose(config_name="collect", overrides=[
            *overrides, f"out={data}", f"seed={cfg.seed}", f"device={cfg.device}"])
        print("\n".join(collect(job).lines()))
    print("== dataset")
    print(info(data))


def main() -> None:
    run_hydra("run", _task)


if __name__ == "__main__":
    main()
