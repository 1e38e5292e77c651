"""Versions of the software stack a measurement ran on."""

from __future__ import annotations

import platform
import re

import torch


def software_versions() -> dict[str, str | None]:
    """Python, torch, CUDA, cuDNN, MKL and oneDNN versions (None where absent)."""
    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
    onednn = re.search(r"MKL-DNN v([\d.]+)", config)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": str(cudnn) if cudnn else None,
        "mkl_version": mkl.group(1) if mkl else None,
        "onednn_version": onednn.group(1) if onednn else None,
    }
