"""What a CUDA device is: torch's device properties, plus NVML where present."""

from __future__ import annotations

from typing import Any

import torch


def _nvml(index: int) -> dict[str, Any]:
    """Clocks, bus width and PCIe link from NVML (nvidia-ml-py); {} when unavailable."""
    try:
        import pynvml
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        sm = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
        mem = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)
        bus = pynvml.nvmlDeviceGetMemoryBusWidth(handle)
        info = {
            "max_sm_clock_mhz": sm,
            "max_memory_clock_mhz": mem,
            "memory_bus_width_bits": bus,
            "pcie_generation": pynvml.nvmlDeviceGetMaxPcieLinkGeneration(handle),
            "pcie_width": pynvml.nvmlDeviceGetMaxPcieLinkWidth(handle),
            # Double data rate: 2 transfers per memory clock, bus width in bits.
            # Vendors quote HBM/GDDR clocks differently, so treat this as an estimate.
            "nvml_bandwidth_gbs": 2 * mem * 1e6 * bus / 8 / 1e9,
        }
    except Exception:  # NVML missing, driver too old, permission denied: no NVML facts
        return {}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return info


def cuda_info(device: torch.device) -> dict[str, Any]:
    """Static attributes of the CUDA ``device``."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return {
        "name": props.name,
        "sm_count": props.multi_processor_count,
        "memory_bytes": props.total_memory,
        "compute_capability": f"{props.major}.{props.minor}",
        "l2_bytes": getattr(props, "L2_cache_size", None),
        "clock_rate_khz": getattr(props, "clock_rate", None),
        "memory_clock_rate_khz": getattr(props, "memory_clock_rate", None),
        "memory_bus_width_bits": getattr(props, "memory_bus_width", None),
        **_nvml(index),
    }
