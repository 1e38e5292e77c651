"""Shared plumbing of the command-line entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable

import hydra
from omegaconf import DictConfig

from costnet.config import conf_dir
from costnet.errors import CostnetError


def fail(message: str) -> None:
    """Stop with one clear message and exit status 2."""
    print(f"costnet: error: {message}", file=sys.stderr)
    sys.exit(2)


def artifact_arguments(argv: list[str]) -> list[str]:
    """``model=A,B`` names artifacts in costnet-predict and costnet-gauge; Hydra would read
    ``model=`` as the model config group of costnet-train and ``A,B`` as a sweep, so it
    becomes ``models=[A,B]``. Likewise ``hardware=V100`` (conf/hardware is a config
    group) becomes ``device=V100``."""
    out = []
    for arg in argv:
        if arg.startswith("model="):
            arg = f"models=[{arg[len('model='):]}]"
        elif arg.startswith("hardware="):
            arg = "device=" + arg[len("hardware="):]
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
