"""What the CPU is: model, cores, frequency, ISA flags, caches, memory."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import psutil

CPUINFO = Path("/proc/cpuinfo")
CACHES = Path("/sys/devices/system/cpu/cpu0/cache")
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")  # names as in the cpuinfo 'flags' line
# sysfs cache 'size' files read like "48K" (Linux Documentation/ABI/testing/sysfs-devices-system-cpu).
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where it is absent)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # a blank line ends the first processor's block
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def model_name() -> str:
    """The CPU model ('model name' of /proc/cpuinfo, else what ``platform`` knows)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown"


def _size_bytes(text: str) -> int | None:
    """'48K' -> 49152; None when unparsable."""
    text = text.strip()
    scale = _UNITS.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    return int(digits) * scale if digits.isdigit() else None


def _caches() -> dict[str, int | None]:
    """Per-instance L1d, L2 and L3 sizes seen by cpu0, in bytes (None where absent)."""
    found: dict[str, int | None] = {"l1d_bytes": None, "l2_bytes": None, "l3_bytes": None}
    for index in sorted(CACHES.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = _size_bytes((index / "size").read_text())
        except OSError:
            continue
        if level == "1" and kind == "Data":
            found["l1d_bytes"] = size
        elif level in ("2", "3") and kind == "Unified":
            found[f"l{level}_bytes"] = size
    return found


def _max_frequency_mhz(cpuinfo: dict[str, str]) -> float | None:
    """psutil's maximum frequency, else the 'cpu MHz' of /proc/cpuinfo (a current clock)."""
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError):
        freq = None
    if freq and freq.max:
        return float(freq.max)
    try:
        return float(cpuinfo["cpu MHz"])
    except (KeyError, ValueError):
        return None


def cpu_info(threads: int) -> dict[str, Any]:
    """Static attributes of this machine's CPU, with the ``threads`` torch uses."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {
        "name": model_name(),
        "vendor": info.get("vendor_id") or None,
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "threads": threads,
        "max_frequency_mhz": _max_frequency_mhz(info),
        **{flag: flag in flags for flag in ISA_FLAGS},
        **_caches(),
        "memory_bytes": psutil.virtual_memory().total,
    }
