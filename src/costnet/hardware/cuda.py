"""What a CUDA device is: torch's device properties, plus NVML where present."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch

NVML_FIELDS = ("max_sm_clock_mhz", "max_memory_clock_mhz", "memory_bus_width_bits", "pcie_generation",
               "pcie_width")


def _call(nvml: ModuleType, function: str, *args: Any) -> Any:
    """``nvml.<function>(*args)``, or None when NVML cannot answer (old driver or bindings, no permission)."""
    try:
        return getattr(nvml, function)(*args)
    except Exception:  # pynvml.NVMLError subclasses; AttributeError for functions old bindings lack
        return None


def _nvml(uuid: str | None) -> dict[str, Any]:
    """Maximum clocks, bus width and PCIe link from NVML (nvidia-ml-py); None values when unavailable."""
    info: dict[str, Any] = dict.fromkeys(NVML_FIELDS)
    if uuid is None:
        return info
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no bindings, no libnvidia-ml, no driver
        return info
    try:
        # By UUID, not index: CUDA and NVML number devices differently under CUDA_VISIBLE_DEVICES
        # or the default fastest-first CUDA_DEVICE_ORDER. NVML writes GPU UUIDs as "GPU-<uuid>".
        handle = _call(pynvml, "nvmlDeviceGetHandleByUUID", f"GPU-{uuid}".encode())
        if handle is not None:
            info.update(
                max_sm_clock_mhz=_call(pynvml, "nvmlDeviceGetMaxClockInfo", handle, pynvml.NVML_CLOCK_SM),
                max_memory_clock_mhz=_call(pynvml, "nvmlDeviceGetMaxClockInfo", handle, pynvml.NVML_CLOCK_MEM),
                memory_bus_width_bits=_call(pynvml, "nvmlDeviceGetMemoryBusWidth", handle),
                pcie_generation=_call(pynvml, "nvmlDeviceGetMaxPcieLinkGeneration", handle),
                pcie_width=_call(pynvml, "nvmlDeviceGetMaxPcieLinkWidth", handle),
            )
    finally:
        _call(pynvml, "nvmlShutdown")
    return info


def theoretical_bandwidth_gbs(memory_clock_mhz: float | None, bus_width_bits: int | None) -> float | None:
    """Peak DRAM bandwidth: 2 transfers per clock (double data rate) x bus width, in GB/s.

    The formula of NVIDIA's CUDA samples (deviceQuery / bandwidthTest). HBM and
    GDDR5X/GDDR6(X) clocks are reported under different conventions (some
    already count several transfers per clock), so treat this as an estimate.
    """
    if not memory_clock_mhz or not bus_width_bits:
        return None
    return 2 * memory_clock_mhz * 1e6 * bus_width_bits / 8 / 1e9


def cuda_info(device: torch.device) -> dict[str, Any]:
    """Static attributes of the CUDA ``device`` (torch properties, NVML where it answers)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    nvml = _nvml(str(uuid) if uuid is not None else None)
    memory_clock_khz = getattr(props, "memory_clock_rate", None)  # cudaDeviceProp.memoryClockRate, kHz
    memory_clock_mhz = nvml["max_memory_clock_mhz"] or (memory_clock_khz / 1e3 if memory_clock_khz else None)
    bus_width = getattr(props, "memory_bus_width", None) or nvml["memory_bus_width_bits"]
    return {
        "name": props.name,
        "sm_count": props.multi_processor_count,
        "memory_bytes": props.total_memory,
        "compute_capability": f"{props.major}.{props.minor}",
        "l2_bytes": getattr(props, "L2_cache_size", None),
        "clock_rate_khz": getattr(props, "clock_rate", None),  # cudaDeviceProp.clockRate, kHz
        "memory_clock_rate_khz": memory_clock_khz,
        **nvml,
        "memory_bus_width_bits": bus_width,
        "theoretical_bandwidth_gbs": theoretical_bandwidth_gbs(memory_clock_mhz, bus_width),
    }
