"""``costnet-evaluate``: score a saved model artifact on a dataset (Hydra config conf/evaluate.yaml)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from costnet.cli.common import run_hydra
from costnet.protocols.evaluate import run_evaluation


def _task(cfg: DictConfig) -> None:
    table = run_evaluation(cfg)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def main() -> None:
    # `model=PATH` names the artifact (the documented contract); Hydra would take it for
    # the `model` config group of costnet-train, so it is passed on as `artifact=PATH`.
    sys.argv = [("artifact=" + a[len("model="):]) if a.startswith("model=") else a for a in sys.argv]
    run_hydra("evaluate", _task)


if __name__ == "__main__":
    main()
