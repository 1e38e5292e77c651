"""The device registry: spec-sheet attributes of named devices, one ``conf/hardware_catalog/<NAME>.yaml`` each.

The only source of device specs in costnet: the features of catalog GPUs, the AI Gauge's
cloud GPUs and PALEO's device presets all read it. An entry is a GPU unless it says
``kind: cpu``; a CPU gives its ``cores`` where a GPU gives ``cuda_cores`` and ``memory_gb``.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import yaml

from costnet import config
from costnet.errors import CostnetError

# Positive numbers each kind of entry must give (``kind`` defaults to gpu).
REQUIRED = {"gpu": ("cuda_cores", "boost_clock_mhz", "memory_gb", "memory_bandwidth_gbs", "peak_fp32_gflops"),
            "cpu": ("cores", "boost_clock_mhz", "memory_bandwidth_gbs", "peak_fp32_gflops")}
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
    kind = entry.get("kind", "gpu")
    if kind not in REQUIRED:
        raise CostnetError(f"hardware catalog file {str(path)!r}: field 'kind' must be one of {sorted(REQUIRED)}, "
                           f"got {kind!r}")
    for field in REQUIRED[kind]:
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


def _normalise(name: str) -> str:
    """``name`` without case, spaces, dashes or underscores: "Titan X", "titan_x" and "TITAN-X" agree."""
    return re.sub(r"[\s_-]+", "", name).lower()


def _names(entry: dict[str, Any]) -> set[str]:
    """An entry's name and aliases, normalised: what an exact lookup matches."""
    return {_normalise(entry["name"]), *map(_normalise, entry["aliases"])}


def _root(conf_dir: Path | None) -> Path:
    return Path(conf_dir or config.conf_dir()) / "hardware_catalog"


def load_catalog(conf_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every entry of ``<conf_dir>/hardware/*.yaml`` by name, validated.

    ``conf_dir`` defaults to costnet's ``conf/`` (``$COSTNET_CONF_DIR``, else the repository's).
    Files are parsed again only when one changes (name, modification time or size).
    """
    root = _root(conf_dir)
    paths = sorted(root.glob("*.yaml"))
    if not paths:
        raise CostnetError(f"hardware catalog {str(root)!r} has no *.yaml files")
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return copy.deepcopy(_read_catalog(stamp))  # callers may change what they get


@functools.lru_cache(maxsize=8)
def _read_catalog(stamp: tuple[tuple[str, int, int], ...]) -> dict[str, dict[str, Any]]:
    """The validated entries of the files ``stamp`` names (see :func:`load_catalog`)."""
    catalog: dict[str, dict[str, Any]] = {}
    for path in (Path(name) for name, _, _ in stamp):
        try:
            entry = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CostnetError(f"hardware catalog file {str(path)!r} cannot be read: {exc}") from exc
        entry = _validate(path, entry)
        for other, known in catalog.items():
            if _names(entry) & _names(known):
                raise CostnetError(f"hardware catalog file {str(path)!r}: field 'aliases' repeats a name of "
                                   f"{other!r}: {sorted(_names(entry) & _names(known))}")
        catalog[path.stem] = entry
    return catalog


def _mentions(device_name: str, alias: str) -> bool:
    """Whether ``alias`` is in ``device_name`` as a whole token ("L4" is not in "L40S", "K40" not in "K400")."""
    return re.search(rf"(?<![a-z0-9]){re.escape(alias.lower())}(?![a-z0-9])", device_name) is not None


def lookup(name: str, conf_dir: Path | None = None) -> dict[str, Any]:
    """The catalog entry called ``name`` or one of its aliases, else the one whose alias ``name`` contains.

    Names compare without case, spaces, dashes or underscores ("titan_x" is "TitanX").
    Device names as torch or NVML report them work, e.g. "Tesla V100-SXM2-16GB"
    or "NVIDIA H100 80GB HBM3"; an alias matches as a whole token of the name.
    """
    catalog = load_catalog(conf_dir)
    wanted = name.strip().lower()
    for key, entry in catalog.items():
        if _normalise(wanted) in _names(entry):
            return entry
    matches = sorted(key for key, entry in catalog.items() if any(_mentions(wanted, a) for a in entry["aliases"]))
    if len(matches) > 1:
        raise CostnetError(f"hardware {name!r} matches several catalog entries {matches}: name one of them")
    if not matches:
        raise CostnetError(f"unknown hardware {name!r}: the catalog knows {sorted(catalog)} (or device names "
                           "containing one of their aliases)")
    return catalog[matches[0]]


def catalog_file(name: str, conf_dir: Path | None = None) -> Path:
    """The file of the catalog entry that ``name`` looks up (for provenance records)."""
    return _root(conf_dir) / f"{lookup(name, conf_dir)['name']}.yaml"
