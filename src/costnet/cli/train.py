"""``costnet-train``: fit cost models under an evaluation protocol (Hydra config conf/train.yaml)."""

from __future__ import annotations

from omegaconf import DictConfig

from costnet.cli.common import run_hydra
from costnet.protocols.train import run_training, summary_table
from costnet.tracking import quiet_lightning


def _task(cfg: DictConfig) -> None:
    quiet_lightning()
    table = run_training(cfg)
    print(summary_table(table))
    print(f"wrote {cfg.out}/metrics.csv, metrics.json, manifest.json")


def main() -> None:
    run_hydra("train", _task)


if __name__ == "__main__":
    main()
