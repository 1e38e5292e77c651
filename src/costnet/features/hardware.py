"""Hardware attributes as model features, the same for catalog devices and measured CPUs.

``hw_peak_gflops``    fp32 peak: the spec sheet's for GPUs, the measured matmul peak for CPUs
``hw_bandwidth_gbs``  memory bandwidth: spec sheet for GPUs, measured copy rate for CPUs
``hw_cores``          CUDA cores, or CPU threads used (a catalog CPU: its cores)
``hw_clock_mhz``      boost clock, or the CPU's maximum frequency
``hw_memory_gb``      device memory, or host memory (0 for a catalog CPU: no device memory)
``hw_bus_width_bits`` memory bus width (0 where unknown, e.g. CPUs)
``hw_interconnect``   NVLink / PCIe for GPUs, ``host`` for CPUs (categorical)
``hw_sm_count``       streaming multiprocessors (NaN where unknown, e.g. CPUs)
``hw_l2_mb``          L2 cache size, MB (NaN where unknown)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from costnet.data.store import read_hardware
from costnet.errors import CostnetError
from costnet.hardware.spec_sheets import read_spec_sheets

HARDWARE_FEATURES = ("hw_peak_gflops", "hw_bandwidth_gbs", "hw_cores", "hw_clock_mhz", "hw_memory_gb",
                     "hw_bus_width_bits")
# Every numeric column that describes the device rather than the layer.
DEVICE_COLUMNS = (*HARDWARE_FEATURES, "hw_sm_count", "hw_l2_mb")


def from_catalog(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Feature values of a catalog device (``conf/hardware_catalog/*.yaml``): a GPU, or a CPU (``kind: cpu``)."""
    cpu = entry.get("kind") == "cpu"
    return {
        "hw_peak_gflops": float(entry["peak_fp32_gflops"]),
        "hw_bandwidth_gbs": float(entry["memory_bandwidth_gbs"]),
        "hw_cores": float(entry["cores" if cpu else "cuda_cores"]),
        "hw_clock_mhz": float(entry["boost_clock_mhz"]),
        "hw_memory_gb": float(entry.get("memory_gb") or 0),
        "hw_bus_width_bits": float(entry.get("memory_bus_width_bits") or 0),
        "hw_interconnect": str(entry.get("interconnect", "host" if cpu else "unknown")),
        "hw_sm_count": float(entry.get("sm_count") or "nan"),
        "hw_l2_mb": float(entry.get("l2_cache_mb") or "nan"),
    }


def from_spec_sheet(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Feature values of a GPU spec sheet in NeuSight's fields, as the neusight2025 dataset names them
    (its README: ``devices.*`` columns), read as the catalog's; bus width and interconnect are not on it."""
    catalog = {"peak_fp32_gflops": entry["fp32_peak_gflops"], "memory_bandwidth_gbs": entry["mem_bw_gbps"],
               "cuda_cores": float(entry["num_sm"]) * float(entry["cores_per_sm"]),
               "boost_clock_mhz": entry["freq_mhz"], "memory_gb": entry["dev_mem_gb"],
               "sm_count": entry["num_sm"], "l2_cache_mb": entry["l2_cache_mb"]}
    return from_catalog(catalog)


def spec_sheet_hardware(file: Path, name: str) -> dict[str, Any]:
    """``device`` (the short name) and hardware features of the GPU ``name`` (its ``gpu`` or
    ``gpu_short``) in the spec-sheet file ``file`` (costnet.hardware.spec_sheets)."""
    sheets = read_spec_sheets(file)
    match = sheets[(sheets["gpu"] == name) | (sheets["gpu_short"] == name)]
    if match.empty:
        raise CostnetError(f"spec-sheet file {str(file)!r} has no GPU {name!r}; it has "
                           f"{sorted(sheets['gpu'])} (or their short names {sorted(sheets['gpu_short'])})")
    return sheet_hardware(match.iloc[0].to_dict())


def sheet_hardware(sheet: Mapping[str, Any]) -> dict[str, Any]:
    """``device`` (the GPU's short name) and hardware features of one spec-sheet record."""
    return {"device": str(sheet["gpu_short"]), **from_spec_sheet(sheet)}


# Record fields behind each feature for devices outside the catalog (CPUs, unknown GPUs).
_RECORD_FIELDS = {
    "cpu": {"hw_cores": "threads", "hw_clock_mhz": "max_frequency_mhz", "hw_bus_width_bits": None},
    "cuda": {"hw_cores": "sm_count", "hw_clock_mhz": "max_sm_clock_mhz", "hw_bus_width_bits": "memory_bus_width_bits"},
}


def _measured(record: Mapping[str, Any], key: str) -> float:
    """A measured peak, NaN when it was not measured (collect with measure_peaks=false)."""
    value = record.get(key)
    return float(value) if value else float("nan")


def from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Feature values of a hardware record written by ``costnet-collect``.

    Catalogued GPUs get their spec sheet; other devices their measured peaks.
    """
    kind = "cuda" if record.get("kind") == "cuda" else "cpu"
    if kind == "cuda" and record.get("catalog_name"):
        from costnet.hardware.catalog import lookup
        return from_catalog(lookup(str(record["catalog_name"])))
    fields = _RECORD_FIELDS[kind]
    return {
        "hw_peak_gflops": _measured(record, "measured_peak_gflops"),
        "hw_bandwidth_gbs": _measured(record, "measured_bandwidth_gbs"),
        **{feature: float(record.get(key) or 0) if key else 0.0 for feature, key in fields.items()},
        "hw_memory_gb": float(record.get("memory_bytes") or 0) / 2**30,
        "hw_interconnect": "host" if kind == "cpu" else "unknown",
    }


def dataset_hardware(root: Path) -> pd.DataFrame:
    """Hardware features of each ``hardware_id`` a dataset directory's records describe
    (:func:`from_record` of each record; empty when there are none)."""
    return pd.DataFrame([{"hardware_id": r["hardware_id"], **from_record(r)}
                         for r in read_hardware(root).to_dict("records")])
