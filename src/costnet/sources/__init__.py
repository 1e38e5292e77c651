"""Where training and evaluation rows come from: published datasets and local collections.

``SOURCES`` is the one registry of dataset kinds (``conf/dataset/<name>.yaml`` sets ``name``):
how each loads its rows, which files it reads and how a row maps back to its original columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from costnet.errors import CostnetError
from costnet.sources import justus2018, local, neusight2025

OP_ALIASES = {"conv": "conv2d", "conv2d": "conv2d", "dense": "dense"}


@dataclass(frozen=True)
class Source:
    """One kind of dataset; every function takes the dataset's config (``conf/dataset/``)."""

    load: Callable[[Mapping[str, Any], str | None], pd.DataFrame]  # (cfg, op) -> rows with ``device``
    files: Callable[[Mapping[str, Any]], list[Path]]  # the input files; CostnetError when absent
    original: Callable[[Mapping[str, Any], str, pd.DataFrame], pd.DataFrame]  # rows as the source has them


SOURCES = {
    "justus2018": Source(justus2018.load, justus2018.files, justus2018.original),
    "local": Source(local.load, local.files, local.original),
    "neusight2025": Source(neusight2025.load, neusight2025.files, neusight2025.original),
}


def source(cfg: Mapping[str, Any]) -> Source:
    """The registered source of the dataset config ``cfg``."""
    name = cfg.get("name")
    if name not in SOURCES:
        raise CostnetError(f"unknown dataset {name!r}: choose from {sorted(SOURCES)}")
    return SOURCES[name]


def load_source(cfg: Mapping[str, Any], op: str | None) -> pd.DataFrame:
    """Rows of the dataset described by ``cfg`` (``conf/dataset/*.yaml``).

    ``device`` becomes the device name every protocol groups by: the GPU name for
    justus2018, the GPU's short name (``gpu_short``) for neusight2025, the ``hardware_id`` for
    local collections.
    """
    return source(cfg).load(cfg, OP_ALIASES.get(op, op) if op else None)
