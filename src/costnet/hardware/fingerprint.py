"""The hardware record: one flat, JSON-able description of a device, keyed by ``hardware_id``."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch

from costnet.errors import CostnetError
from costnet.hardware.catalog import lookup
from costnet.hardware.cpu import ISA_FLAGS, cpu_info
from costnet.hardware.cuda import cuda_info
from costnet.hardware.microbench import PEAK_KEYS, cached_peaks

# What identifies a machine: static attributes only. Not the frequency (the /proc/cpuinfo
# fallback is a current clock), not NVML facts (present on some runs only), not measured
# peaks, not software versions. Memory counts in whole GiB: kernels reserve slightly
# different amounts across boots and drivers.
IDENTITY = {
    "cpu": ("name", "vendor", "physical_cores", "logical_cores", "threads", *ISA_FLAGS,
            "l1d_bytes", "l2_bytes", "l3_bytes", "memory_gib"),
    "cuda": ("name", "compute_capability", "sm_count", "threads", "memory_gib"),
}
_CATALOG_ONLY = ("name", "aliases", "sources", "notes")  # catalog fields not copied as spec_*


def _slug(text: str) -> str:
    """'Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz' -> 'intel-xeon-gold-6148-cpu-2-40ghz'."""
    text = re.sub(r"\((?:r|tm)\)", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40].rstrip("-") or "unknown"


def _hardware_id(kind: str, info: dict[str, Any]) -> str:
    static = {**info, "memory_gib": round((info.get("memory_bytes") or 0) / 2**30)}
    digest = hashlib.sha1(json.dumps([static[k] for k in IDENTITY[kind]]).encode()).hexdigest()[:6]
    threads = f"-{info['threads']}t" if kind == "cpu" else ""
    return f"{kind}-{_slug(info['name'])}{threads}-{digest}"


def _catalog_fields(name: str) -> dict[str, Any]:
    """``catalog_name`` and the catalog's spec-sheet values as ``spec_*`` (None when unknown)."""
    try:
        entry = lookup(name)
    except CostnetError:
        return {"catalog_name": None}
    return {"catalog_name": entry["name"],
            **{f"spec_{k}": v for k, v in entry.items() if k not in _CATALOG_ONLY}}


def _device(device: torch.device | str) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise CostnetError(f"unknown device {str(device)!r}: use cpu or cuda[:N]") from exc
    if device.type not in IDENTITY:
        raise CostnetError(f"unsupported device {str(device)!r}: use cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CostnetError(f"device {str(device)!r} asked for, but CUDA is not available here")
    return device


def fingerprint(device: torch.device | str, threads: int, measure: bool = True,
                cache_dir: Path | None = None) -> dict[str, Any]:
    """The hardware record of ``device`` used with ``threads`` torch threads.

    ``hardware_id`` hashes static attributes only, so the same machine and thread
    count always get the same id. ``measure`` adds measured peaks (cached per
    machine, see :func:`cached_peaks`); CUDA devices found in the catalog get its
    spec-sheet values as ``spec_*``. Software versions belong to each row instead
    (:func:`costnet.hardware.software_versions`).
    """
    if threads < 1:
        raise CostnetError(f"threads must be >= 1, got {threads}")
    device = _device(device)
    if device.type == "cpu":
        info = cpu_info(threads)
        extra: dict[str, Any] = {"catalog_name": None}
    else:
        info = {**cuda_info(device), "threads": threads}
        extra = _catalog_fields(info["name"])
    peaks = cached_peaks(device, threads, cache_dir) if measure else dict.fromkeys(PEAK_KEYS)
    return {"hardware_id": _hardware_id(device.type, info), "kind": device.type, **info, **extra, **peaks}
