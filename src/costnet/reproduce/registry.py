"""The experiments: conf/reproduce.yaml lists them in report order, conf/experiment/<name>.yaml
configures each (its runner, costnet-train overrides, ``quick`` block, published numbers)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from costnet.config import conf_dir
from costnet.errors import CostnetError
from costnet.reproduce.result import Result


def settings() -> DictConfig:
    """conf/reproduce.yaml: the experiments in order and the default output directory."""
    return OmegaConf.load(conf_dir() / "reproduce.yaml")


def experiment_names() -> list[str]:
    return [str(n) for n in settings().experiments]


def load_experiment(name: str, quick: bool = False, out: Path | None = None) -> DictConfig:
    """The experiment's config plus ``out`` (the experiment's directory). With ``quick`` its
    ``quick`` block is merged over it and stays under ``quick`` as a record of what changed;
    without, the block is dropped."""
    path = conf_dir() / "experiment" / f"{name}.yaml"
    if not path.is_file():
        raise CostnetError(f"unknown experiment {name!r}: no {path}")
    cfg = OmegaConf.load(path)
    block = cfg.pop("quick", None) or OmegaConf.create({})
    if quick:
        cfg = OmegaConf.merge(cfg, block, {"quick": block})
    cfg.out = str(out) if out is not None else None
    return cfg


def runner(cfg: DictConfig) -> Callable[[DictConfig], Result]:
    """The function ``runner: module.function`` names in costnet.reproduce."""
    module, _, function = str(cfg.runner).rpartition(".")
    try:
        return getattr(importlib.import_module(f"costnet.reproduce.{module}"), function)
    except (ImportError, AttributeError) as exc:
        raise CostnetError(f"experiment {cfg.name!r}: runner {cfg.runner!r} not found ({exc})") from exc


def paper(name: str, metric: str, run: str) -> dict[str, Any]:
    """Published numbers of experiment ``name``: ``metric`` of ``run``, by device."""
    numbers = load_experiment(name).paper
    if metric not in numbers or run not in numbers[metric]:
        raise CostnetError(f"experiment {name!r} has no published {metric!r} for run {run!r}")
    return dict(OmegaConf.to_container(numbers[metric][run]))
