"""Measured peak FLOP/s and memory bandwidth of a device, cached per machine."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from costnet.data.store import atomic_write_bytes
from costnet.errors import CostnetError
from costnet.hardware.cpu import model_name
from costnet.timing.timer import Clock, clock_for

PEAK_KEYS = ("measured_peak_gflops", "measured_bandwidth_gbs")
MATMUL_N = {"cpu": 2048, "cuda": 8192}  # square matmul side
COPY_BYTES = {"cpu": 256 << 20, "cuda": 1 << 30}  # well past any last-level cache
# The probe's version, part of the cache key: 2 added the GEMM as a 1 x 1 convolution, so a peak
# cached by version 1 (the matmul alone) is measured again.
PROBE = 2
REPEATS = {"cpu": 3, "cuda": 10}  # timed repetitions after one warm-up call (CPU: ~2 s on 2 cores)


def _best_seconds(fn: Callable[[], object], clock: Clock, repeats: int) -> float:
    """Shortest of ``repeats`` timed calls of ``fn``, after one untimed warm-up call."""
    fn()  # allocations, page faults, kernel and algorithm selection
    return min(clock.time_block(fn, 1) for _ in range(repeats))


def _gemm_gflops(device: torch.device, dtype: torch.dtype, clock: Clock) -> float:
    """GFLOP/s of an n x n x n GEMM (2 n^3 FLOPs: a multiply and an add per term), the better of
    ``torch.mm`` and the same GEMM run as a 1 x 1 convolution over a channels-last n-channel map.

    The two go through different libraries, and a device's peak is what its fastest one reaches:
    CPU builds of torch run matmuls through MKL, which takes its AVX2 kernels on AMD processors,
    and convolutions through oneDNN, which uses AVX-512. On this project's 2-core AMD EPYC (Zen 5)
    the matmul alone read 208 GFLOP/s and the convolution 422, as fast as its 3 x 3 convolutions
    (444): a peak from the matmul alone put the compute floor of whole-network prediction
    (:mod:`costnet.networks.estimate`) above half of the networks' measured convolutions."""
    n = MATMUL_N[device.type]
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    # float32 on CUDA stays true fp32 unless torch.backends.cuda.matmul.allow_tf32 was set (off by default).
    mm = _best_seconds(lambda: torch.mm(a, b, out=out), clock, REPEATS[device.type])
    side = 2 ** (n.bit_length() // 2)  # an h x w map of n pixels (n a power of two): 64 x 32 for n = 2048
    x = a.reshape(1, n, side, n // side).contiguous(memory_format=torch.channels_last)
    w = b.reshape(n, n, 1, 1).contiguous(memory_format=torch.channels_last)
    conv = _best_seconds(lambda: torch.nn.functional.conv2d(x, w), clock, REPEATS[device.type])
    return 2 * n**3 / min(mm, conv) / 1e9


def _copy_gbs(device: torch.device, dtype: torch.dtype, clock: Clock) -> float:
    """GB/s of a large tensor copy: 2 x nbytes moved (read the source, write the destination)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    # ones, not empty: untouched pages of the source would read from the kernel's shared zero page.
    src = torch.ones(COPY_BYTES[device.type] // itemsize, device=device, dtype=dtype)
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), clock, REPEATS[device.type])
    return 2 * src.nbytes / seconds / 1e9


def measure_peaks(device: torch.device, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Best-of-several GEMM GFLOP/s and copy GB/s on ``device`` (CUDA timed with events)."""
    clock = clock_for(device)  # perf_counter on CPU; CUDA events after a synchronize on CUDA
    peaks = {"measured_peak_gflops": _gemm_gflops(device, dtype, clock),
             "measured_bandwidth_gbs": _copy_gbs(device, dtype, clock)}
    if device.type == "cuda":
        torch.cuda.empty_cache()  # hand the benchmark's ~2.75 GiB back to the device
    return peaks


def default_cache_dir() -> Path:
    """``$COSTNET_CACHE_DIR``, else ``~/.cache/costnet``."""
    return Path(os.environ.get("COSTNET_CACHE_DIR") or Path.home() / ".cache" / "costnet")


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else model_name()


def _read(path: Path) -> dict[str, float] | None:
    """The peaks cached at ``path``; None when missing or damaged (then measured again)."""
    try:
        cached = json.loads(path.read_text())
        peaks = {key: float(cached[key]) for key in PEAK_KEYS}
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return peaks if all(value > 0 for value in peaks.values()) else None


def cached_peaks(device: torch.device, threads: int, cache_dir: Path | None = None) -> dict[str, float]:
    """:func:`measure_peaks` with ``threads`` torch threads, measured once per machine and cached.

    The cache file is ``<cache_dir>/hardware/<key>.json``, the key a short sha1 of
    the device kind, its model name, ``threads``, the torch version and the probe's version.
    """
    if threads < 1:
        raise CostnetError(f"threads must be >= 1, got {threads}")
    device = torch.device(device)
    context = {"device": device.type, "name": _device_name(device), "threads": threads,
               "torch_version": torch.__version__, "probe": PROBE}
    key = hashlib.sha1(json.dumps(list(context.values())).encode()).hexdigest()[:12]
    path = (cache_dir or default_cache_dir()) / "hardware" / f"{key}.json"
    peaks = _read(path)
    if peaks is not None:
        return peaks
    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        peaks = measure_peaks(device)
    finally:
        if previous != threads:
            torch.set_num_threads(previous)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps({**context, **peaks}, indent=1).encode())
    return peaks
