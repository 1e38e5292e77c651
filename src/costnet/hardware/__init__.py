"""Hardware fingerprints, measured peaks, software versions and the device registry (catalog).

The registry needs no torch and is imported at once; the rest load torch, so they are
imported on first use (PEP 562), which keeps readers of device specs (costnet-paleo) light.
"""

from importlib import import_module
from typing import Any

from costnet.hardware.catalog import load_catalog, lookup

# exported name -> the submodule that defines it
_LAZY = {"cpu_info": "cpu", "cuda_info": "cuda", "fingerprint": "fingerprint", "cached_peaks": "microbench",
         "measure_peaks": "microbench", "software_versions": "software"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    # Bind the function: importing the submodule `fingerprint` set this name to the module.
    globals()[name] = value
    return value


__all__ = ["cached_peaks", "cpu_info", "cuda_info", "fingerprint", "load_catalog", "lookup", "measure_peaks",
           "software_versions"]
