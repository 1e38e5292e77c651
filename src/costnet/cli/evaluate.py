"""``costnet-evaluate``: score a saved model artifact on a dataset (Hydra config conf/evaluate.yaml)."""

from __future__ import annotations


from omegaconf import DictConfig

from costnet.cli.common import run_hydra
from costnet.protocols.evaluate import run_evaluation


def _task(cfg: DictConfig) -> None:
    table = run_evaluation(cfg)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def main() -> None:
    run_hydra("evaluate", _task)


if __name__ == "__main__":
    main()
