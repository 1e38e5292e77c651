"""Spec-sheet attributes of named GPUs (``conf/hardware/*.yaml``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from costnet.config import conf_dir
from costnet.errors import CostnetError

REQUIRED = ("cuda_cores", "boost_clock_mhz", "memory_gb", "memory_bandwidth_gbs", "peak_fp32_gflops")


@lru_cache(maxsize=4)
def load_catalog(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every catalog entry by name, validated."""
    root = directory or conf_dir() / "hardware"
    catalog = {}
    for path in sorted(root.glob("*.yaml")):
        try:
            entry = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise CostnetError(f"hardware catalog file {str(path)!r} is not valid YAML: {exc}") from exc
        if not isinstance(entry, dict) or "name" not in entry:
            raise CostnetError(f"hardware catalog file {str(path)!r}: expected a mapping with a name")
        for field in REQUIRED:
            value = entry.get(field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise CostnetError(f"hardware catalog file {str(path)!r}: field {field!r} must be a "
                                   f"positive number, got {value!r}")
        catalog[entry["name"]] = entry
    return catalog


def lookup(name: str, directory: Path | None = None) -> dict[str, Any]:
    """The entry called ``name`` (case-insensitive) or one of whose aliases is a word of it."""
    catalog = load_catalog(directory)
    lowered = name.lower()
    for key, entry in catalog.items():
        if key.lower() == lowered:
            return entry
    for key, entry in catalog.items():  # whole words: "L4" must not match "L40S"
        if any(re.search(rf"\b{re.escape(alias.lower())}\b", lowered) for alias in entry.get("aliases", [])):
            return entry
    raise CostnetError(f"unknown hardware {name!r}: the catalog knows {sorted(catalog)}")
