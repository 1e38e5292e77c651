"""What the CPU is: model, cores, frequency, ISA flags, caches, memory."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import psutil

ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where absent)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _parse_size(text: str) -> int | None:
    """'48K' -> 49152; None when unparsable."""
    text = text.strip()
    if not text:
        return None
    unit = _SIZE_UNITS.get(text[-1].upper(), 1)
    digits = text[:-1] if text[-1].upper() in _SIZE_UNITS else text
    return int(digits) * unit if digits.isdigit() else None


def _caches() -> dict[str, int | None]:
    """L1d, L2 and L3 sizes of cpu0 from sysfs (per instance, bytes)."""
    found: dict[str, int | None] = {"l1d_bytes": None, "l2_bytes": None, "l3_bytes": None}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = _parse_size((index / "size").read_text())
        except OSError:
            continue
        if level == "1" and kind == "Data":
            found["l1d_bytes"] = size
        elif level in ("2", "3") and kind == "Unified":
            found[f"l{level}_bytes"] = size
    return found


def cpu_info(threads: int) -> dict[str, Any]:
    """Static attributes of this machine's CPU, with ``threads`` torch uses."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    freq = psutil.cpu_freq()
    max_mhz = freq.max if freq and freq.max else None
    if not max_mhz and info.get("cpu MHz"):
        max_mhz = float(info["cpu MHz"])
    return {
        "name": info.get("model name") or platform.processor() or platform.machine(),
        "vendor": info.get("vendor_id"),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "threads": threads,
        "max_frequency_mhz": max_mhz,
        **{flag: flag in flags for flag in ISA_FLAGS},
        **_caches(),
        "memory_bytes": psutil.virtual_memory().total,
    }
