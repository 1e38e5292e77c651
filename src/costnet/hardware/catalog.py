"""Spec-sheet attributes of named GPUs, one ``conf/hardware/<NAME>.yaml`` per GPU."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from costnet import config
from costnet.errors import CostnetError

REQUIRED = ("cuda_cores", "boost_clock_mhz", "memory_gb", "memory_bandwidth_gbs", "peak_fp32_gflops")
OPTIONAL = ("memory_bus_width_bits", "peak_fp16_tensor_gflops", "peak_bf16_tensor_gflops",
            "peak_tf32_tensor_gflops")  # null where the GPU lacks the feature


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _validate(path: Path, entry: Any) -> dict[str, Any]:
    """``entry`` read from ``path``, or a CostnetError naming the file and the bad field."""
    if not isinstance(entry, dict):
        raise CostnetError(f"hardware catalog file {str(path)!r}: expected a mapping of fields")
    if entry.get("name") != path.stem:
        raise CostnetError(f"hardware catalog file {str(path)!r}: field 'name' must be the file's name "
                           f"{path.stem!r}, got {entry.get('name')!r}")
    for field in REQUIRED:
        if not _positive(entry.get(field)):
            raise CostnetError(f"hardware catalog file {str(path)!r}: field {field!r} must be a positive "
                               f"number, got {entry.get(field)!r}")
    for field in OPTIONAL:
        if entry.get(field) is not None and not _positive(entry[field]):
            raise CostnetError(f"hardware catalog file {str(path)!r}: field {field!r} must be a positive "
                               f"number or null, got {entry[field]!r}")
    aliases = entry.setdefault("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise CostnetError(f"hardware catalog file {str(path)!r}: field 'aliases' must be a list of "
                           f"non-empty strings, got {aliases!r}")
    return entry


def load_catalog(conf_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every entry of ``<conf_dir>/hardware/*.yaml`` by name, validated.

    ``conf_dir`` defaults to costnet's ``conf/`` (``$COSTNET_CONF_DIR``, else the repository's).
    """
    root = Path(conf_dir or config.conf_dir()) / "hardware"
    paths = sorted(root.glob("*.yaml"))
    if not paths:
        raise CostnetError(f"hardware catalog {str(root)!r} has no *.yaml files")
    catalog = {}
    for path in paths:
        try:
            entry = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CostnetError(f"hardware catalog file {str(path)!r} cannot be read: {exc}") from exc
        catalog[path.stem] = _validate(path, entry)
    return catalog


def _mentions(device_name: str, alias: str) -> bool:
    """Whether ``alias`` is in ``device_name`` as a whole token ("L4" is not in "L40S", "K40" not in "K400")."""
    return re.search(rf"(?<![a-z0-9]){re.escape(alias.lower())}(?![a-z0-9])", device_name) is not None


def lookup(name: str, conf_dir: Path | None = None) -> dict[str, Any]:
    """The catalog entry called ``name`` (case-insensitive), or whose alias ``name`` contains.

    Device names as torch or NVML report them work, e.g. "Tesla V100-SXM2-16GB"
    or "NVIDIA H100 80GB HBM3"; an alias matches as a whole token of the name.
    """
    catalog = load_catalog(conf_dir)
    wanted = name.strip().lower()
    for key, entry in catalog.items():
        if key.lower() == wanted:
            return entry
    matches = sorted(key for key, entry in catalog.items() if any(_mentions(wanted, a) for a in entry["aliases"]))
    if len(matches) > 1:
        raise CostnetError(f"hardware {name!r} matches several catalog entries {matches}: name one of them")
    if not matches:
        raise CostnetError(f"unknown hardware {name!r}: the catalog knows {sorted(catalog)} (or device names "
                           "containing one of their aliases)")
    return catalog[matches[0]]
