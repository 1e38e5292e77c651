"""Where costnet's Hydra configs live, composing them outside a CLI, and checking their values."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from costnet.errors import CostnetError


def repo_root() -> Path:
    """The repository checkout costnet runs from (parent of ``conf/``)."""
    return conf_dir().parent


# ${repo:} in configs: paths relative to the checkout, whatever the working directory.
if not OmegaConf.has_resolver("repo"):
    OmegaConf.register_new_resolver("repo", lambda: str(repo_root()))


def conf_dir() -> Path:
    """The `conf/` directory: `$COSTNET_CONF_DIR`, else the repository's own."""
    env = os.environ.get("COSTNET_CONF_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "conf"
    if not path.is_dir():
        raise CostnetError(
            f"config directory {str(path)!r} not found: install costnet from its "
            "repository (`pip install -e .`) or set COSTNET_CONF_DIR"
        )
    return path


def compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose a config like the CLI would: inside a costnet Hydra app from its config
    directory, elsewhere (tests, notebooks, scripts) from :func:`conf_dir`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))


def int_option(cfg: DictConfig, key: str, minimum: int = 1, optional: bool = False) -> int | None:
    """``cfg.<key>`` as an int of at least ``minimum`` (None where ``optional`` and unset),
    or a CostnetError naming the key and the value. Hydra reads ``1.28e6`` as a float: a
    whole float counts."""
    value = OmegaConf.select(cfg, key)
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or value < minimum):
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise CostnetError(f"{key} must be {'null or ' if optional else ''}{kind}, got {value!r}")
    return int(value)


def is_number(value: Any, positive: bool = False) -> bool:
    """Whether ``value`` is a finite int or float (not a bool; above 0 where ``positive``): what a
    number read from a config, an artifact or a user's file must be before costnet computes with it."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value > 0 or not positive))


def float_option(cfg: DictConfig, key: str, optional: bool = False) -> float | None:
    """``cfg.<key>`` as a finite positive float (None where ``optional`` and unset), or a
    CostnetError naming the key and the value."""
    value = OmegaConf.select(cfg, key)
    if value is None and optional:
        return None
    if not is_number(value, positive=True):
        raise CostnetError(f"{key} must be {'null or ' if optional else ''}a positive number, got {value!r}")
    return float(value)
