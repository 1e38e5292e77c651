"""``costnet-paleo``: PALEO's analytical estimate of training time and data-parallel scaling
(Hydra config conf/paleo.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, ListConfig

from costnet.cli.common import run_hydra
from costnet.config import float_option, int_option
from costnet.data.store import ensure_writable
from costnet.errors import CostnetError
from costnet.paleo.estimate import estimate, summary_text


def _workers(value: object) -> list[int]:
    items = list(value) if isinstance(value, (list, ListConfig)) else [value]
    if not items or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        raise CostnetError(f"workers must be positive integers, e.g. workers=1,2,4,8; got {value!r}")
    return [int(v) for v in items]


def _task(cfg: DictConfig) -> None:
    if cfg.out:
        ensure_writable(Path(str(cfg.out)), file=True)
    result = estimate(str(cfg.net), str(cfg.device), str(cfg.link), _workers(cfg.workers), str(cfg.scaling),
                      int_option(cfg, "batch_size", optional=True), float_option(cfg, "ppp_comp"),
                      float_option(cfg, "ppp_comm"), float_option(cfg, "ppp_memory", optional=True))
    print(summary_text(result))
    if cfg.layers:
        table = pd.DataFrame(result["layers"])
        table = table[table["time_ms"] > 0]  # inputs, views and skipped gradients take no time
        print(table.drop(columns=["bytes_read", "bytes_written"]).to_string(
            index=False, float_format=lambda v: f"{v:.4g}"))
    if cfg.out:
        path = Path(str(cfg.out))
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")


def main() -> None:
    run_hydra("paleo", _task)


if __name__ == "__main__":
    main()
