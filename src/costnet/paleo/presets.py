"""PALEO's hardware: devices from costnet's device registry (conf/hardware_catalog/, costnet.hardware.catalog),
links (conf/paleo/links.yaml) and cost constants (conf/paleo/costs.yaml)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from costnet.config import conf_dir
from costnet.errors import CostnetError
from costnet.hardware.catalog import lookup


@dataclass(frozen=True)
class Device:
    """A compute device: peak FLOP/s and device-memory bandwidth."""

    key: str
    name: str
    peak_gflops: float
    memory_gbs: float
    source: str


@dataclass(frozen=True)
class Link:
    """An interconnect between workers."""

    key: str
    name: str
    bandwidth_gbs: float
    source: str


@dataclass(frozen=True)
class Costs:
    """Constants of the layer cost model (see conf/paleo/costs.yaml)."""

    bytes_per_element: float
    memory_gb_bytes: float
    flops_per_element: dict[str, tuple[float, float]]

    def flops(self, kind: str) -> tuple[float, float]:
        """(forward, backward) FLOPs per element of a non-GEMM layer kind."""
        if kind not in self.flops_per_element:
            raise CostnetError(f"conf/paleo/costs.yaml has no flops_per_element entry {kind!r}")
        return self.flops_per_element[kind]


def paleo_dir() -> Path:
    """The conf/paleo/ directory of presets and net specs."""
    return conf_dir() / "paleo"


def _read_yaml(name: str) -> dict[str, Any]:
    path = paleo_dir() / name
    if not path.is_file():
        raise CostnetError(f"preset file {str(path)!r} not found")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise CostnetError(f"{str(path)!r} must be a mapping")
    return data


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip()).upper()


def _lookup(kind: str, file: str, name: str) -> tuple[str, dict[str, Any]]:
    table = _read_yaml(file)
    wanted = _normalise(name)
    for key, entry in table.items():
        if wanted in (_normalise(key), _normalise(entry.get("name", key))):
            return key, entry
    raise CostnetError(f"unknown {kind} {name!r}; known: {', '.join(table)}")


def _positive(kind: str, key: str, entry: dict[str, Any], field: str) -> float:
    value = entry.get(field)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise CostnetError(f"{kind} preset {key!r}: {field} must be a positive number, got {value!r}")
    return float(value)


def get_device(name: str) -> Device:
    """The registry device called ``name`` or one of its aliases (case, spaces, dashes and underscores
    ignored: ``titan_x``, ``"Titan X"`` and ``TITAN_X`` are the same), e.g. one of PALEO's presets
    TITAN_X, K20, K20X, K40, K80, GEFORCE_780_TI, GEFORCE_750_M, CPU_I7."""
    entry = lookup(name)
    return Device(entry["name"], f"{entry.get('vendor', '')} {entry['name']}".strip(), float(entry["peak_fp32_gflops"]),
                  float(entry["memory_bandwidth_gbs"]), "; ".join(entry.get("sources", [])))


def get_link(name: str) -> Link:
    """The link preset called ``name`` (case-insensitive)."""
    key, entry = _lookup("link", "links.yaml", name)
    return Link(key, str(entry.get("name", key)), _positive("link", key, entry, "bandwidth_gbs"),
                str(entry.get("source", "")))


@lru_cache(maxsize=4)
def _costs(path: str) -> Costs:  # keyed by the conf directory, which $COSTNET_CONF_DIR may change
    data = _read_yaml("costs.yaml")
    table = {str(k): (float(v[0]), float(v[1])) for k, v in dict(data["flops_per_element"]).items()}
    return Costs(float(data["bytes_per_element"]), float(data["memory_gb_bytes"]), table)


def load_costs() -> Costs:
    """The cost constants of conf/paleo/costs.yaml."""
    return _costs(str(paleo_dir()))
