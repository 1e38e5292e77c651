"""``costnet-train``: fit cost models under an evaluation protocol (Hydra config conf/train.yaml)."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from costnet.cli.common import run_hydra
from costnet.config import compose
from costnet.protocols.train import run_training, summary_table
from costnet.tracking import quiet_lightning


def recommended(cfg: DictConfig, given: list[str]) -> DictConfig:
    """``cfg`` with the dataset's recommended estimator and features (``dataset.recommended``,
    e.g. neusight2025's) for each of the two the command line ``given`` does not choose."""
    chosen = {o.split("=", 1)[0].lstrip("+~") for o in given}
    extra = [f"{group}={name}" for group, name in (cfg.dataset.get("recommended") or {}).items()
             if group not in chosen]
    return compose("train", [*given, *extra]) if extra else cfg


def _task(cfg: DictConfig) -> None:
    quiet_lightning()
    cfg = recommended(cfg, list(HydraConfig.get().overrides.task))
    table = run_training(cfg)
    print(summary_table(table))
    print(f"wrote {cfg.out}/metrics.csv, metrics.json, manifest.json")


def main() -> None:
    run_hydra("train", _task)


if __name__ == "__main__":
    main()
