"""Shared plumbing of the command-line entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from typing import Any

import hydra
from omegaconf import DictConfig

from costnet.config import conf_dir
from costnet.errors import CostnetError


def fail(message: str) -> None:
    """Stop with one clear message and exit status 2."""
    print(f"costnet: error: {message}", file=sys.stderr)
    sys.exit(2)


def path_list(value: Any) -> list[str]:
    """``model=A`` (one path) or ``model=[A,B]`` (several) as a list of paths."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def bracket_lists(argv: list[str], keys: Collection[str]) -> list[str]:
    """``argv`` with each ``key=A,B`` of ``keys`` written ``key=[A,B]``: Hydra reads an unbracketed
    comma list as a sweep and refuses it outside ``--multirun``, where it is left a sweep."""
    if {"-m", "--multirun"} & set(argv):
        return argv
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in keys and "," in value and value[0] not in "[('\"":
            arg = f"{key}=[{value}]"
        out.append(arg)
    return out


def run_hydra(config_name: str, task: Callable[[DictConfig], None]) -> None:
    """Run ``task`` as a Hydra app over ``conf/<config_name>.yaml`` and the command line."""
    try:
        path = str(conf_dir())
    except CostnetError as exc:
        fail(str(exc))

    @hydra.main(version_base="1.3", config_path=path, config_name=config_name)
    def app(cfg: DictConfig) -> None:
        try:
            task(cfg)
        except CostnetError as exc:
            fail(str(exc))

    app()
