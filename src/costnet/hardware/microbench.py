"""Measured peak FLOP/s and memory bandwidth of a device, cached per machine."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from costnet.data.store import atomic_write_bytes
from costnet.timing.timer import TimingConfig, clock_for, measure

_TIMING = TimingConfig(warmup_runs=1, min_runs=3, max_runs=5, rel_spread=0.02, min_block_s=0.0,
                       budget_s=1.0)


def measure_peaks(device: torch.device, name: str) -> dict[str, float]:
    """Best-of-several GFLOP/s of a large float32 matmul and GB/s of a large copy.

    FLOPs of an n x n matmul: 2 n^3 (one multiply and one add per term). A copy
    moves 2 x nbytes (read the source, write the destination).
    """
    n = 8192 if device.type == "cuda" else 2048
    a = torch.rand(n, n, device=device)
    b = torch.rand(n, n, device=device)
    clock = clock_for(device)
    with torch.inference_mode():
        mm = measure(lambda: a @ b, _TIMING, clock)
        src = torch.empty((1 << 30 if device.type == "cuda" else 1 << 28) // 4, device=device)
        dst = torch.empty_like(src)
        copy = measure(lambda: dst.copy_(src), _TIMING, clock)
    return {
        "measured_peak_gflops": 2 * n**3 / min(mm.samples) / 1e9,
        "measured_bandwidth_gbs": 2 * src.nbytes / min(copy.samples) / 1e9,
    }


def cache_dir() -> Path:
    """``$COSTNET_CACHE_DIR`` or ``~/.cache/costnet``."""
    return Path(os.environ.get("COSTNET_CACHE_DIR", Path.home() / ".cache" / "costnet"))


def cached_peaks(device: torch.device, name: str, threads: int) -> dict[str, Any]:
    """:func:`measure_peaks`, measured once per (device, model, threads, torch) and cached."""
    key = hashlib.sha1(json.dumps([device.type, name, threads, torch.__version__]).encode()).hexdigest()[:12]
    path = cache_dir() / "hardware" / f"{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass  # a damaged cache is measured again
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        peaks = measure_peaks(device, name)
    finally:
        torch.set_num_threads(previous)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(peaks).encode())
    return peaks
