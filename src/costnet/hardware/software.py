"""Versions of the software stack a measurement ran on (recorded per row, not per machine)."""

from __future__ import annotations

import platform
import re

import torch

# Lines of torch.__config__.show(), e.g.
#   "Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 ..."
#   "Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71...)"
_MKL = re.compile(r"Math Kernel Library Version (\d+(?:\.\d+)*)")
_ONEDNN = re.compile(r"(?:MKL-DNN|oneDNN) v(\d+(?:\.\d+)*)")


def _match(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None


def software_versions() -> dict[str, str | None]:
    """Python, torch, CUDA, cuDNN, MKL and oneDNN versions (None where absent)."""
    config = torch.__config__.show()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": str(cudnn) if cudnn else None,
        "mkl_version": _match(_MKL, config),
        "onednn_version": _match(_ONEDNN, config),
    }
