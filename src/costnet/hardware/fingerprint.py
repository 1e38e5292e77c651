"""The hardware record every dataset row points at."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import torch

from costnet.errors import CostnetError
from costnet.hardware.catalog import lookup
from costnet.hardware.cpu import cpu_info
from costnet.hardware.cuda import cuda_info
from costnet.hardware.microbench import cached_peaks


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def fingerprint(device: torch.device | str, threads: int, measure: bool = True) -> dict[str, Any]:
    """One flat, JSON-able record of ``device`` as used with ``threads`` CPU threads.

    ``hardware_id`` hashes the static attributes only (not measured peaks, not
    software), so the same machine and thread count always get the same id.
    CUDA devices found in the catalog get its spec-sheet values as ``spec_*``.
    """
    device = torch.device(device)
    if device.type == "cpu":
        static = {"kind": "cpu", **cpu_info(threads)}
    elif device.type == "cuda":
        static = {"kind": "cuda", **cuda_info(device), "threads": threads}
    else:
        raise CostnetError(f"unsupported device {str(device)!r}: use cpu or cuda[:N]")
    digest = hashlib.sha1(json.dumps(static, sort_keys=True).encode()).hexdigest()[:6]
    suffix = f"{threads}t-{digest}" if device.type == "cpu" else digest
    record: dict[str, Any] = {"hardware_id": f"{device.type}-{_slug(static['name'])}-{suffix}", **static}
    if device.type == "cuda":
        try:
            spec = lookup(static["name"])
        except CostnetError:
            spec = {}
        record["catalog_name"] = spec.get("name")
        record.update({f"spec_{k}": v for k, v in spec.items()
                       if k not in ("name", "aliases", "sources", "notes")})
    peaks = cached_peaks(device, static["name"], threads) if measure else {}
    record["measured_peak_gflops"] = peaks.get("measured_peak_gflops")
    record["measured_bandwidth_gbs"] = peaks.get("measured_bandwidth_gbs")
    return record
