"""The module and example inputs of a ``network=`` name, on the meta device (shapes only).

- a classic network of the zoo (``resnet50``, ``vgg16``...: costnet.networks.zoo);
- ``hf:PATH.json``: a Hugging Face config (costnet.networks.hf), called on token ids of
  shape (batch_size, seq_len);
- ``package.module:factory``: the user's own code, imported and called as
  ``factory(batch_size=B, seq_len=S)``, which returns ``(module, example_inputs)`` (a tensor
  or a tuple of tensors). It runs under ``torch.device("meta")``, so tensors it creates
  without naming a device hold no memory.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.networks import hf
from costnet.networks.zoo import build_network, example_input

Inputs = torch.Tensor | tuple[torch.Tensor, ...]


def _factory(spec: str, batch_size: int, seq_len: int) -> tuple[nn.Module, Inputs]:
    module_name, _, name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise CostnetError(f"network={spec!r}: cannot import {name!r} from {module_name!r} ({exc})") from exc
    built = factory(batch_size=batch_size, seq_len=seq_len)
    if not (isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], nn.Module)):
        raise CostnetError(f"network={spec!r}: the factory must return (module, example_inputs), "
                           f"got {type(built).__name__}")
    module, inputs = built
    if not (isinstance(inputs, torch.Tensor) or
            (isinstance(inputs, tuple) and inputs and all(isinstance(x, torch.Tensor) for x in inputs))):
        raise CostnetError(f"network={spec!r}: example_inputs must be a tensor or a tuple of tensors")
    return module, inputs


def build(network: str, batch_size: int, seq_len: int) -> tuple[nn.Module, Inputs]:
    """The module named by ``network`` and inputs to call it with, built on the meta device."""
    if batch_size < 1 or seq_len < 1:
        raise CostnetError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
    if network.startswith(hf.PREFIX):
        return hf.build(Path(network[len(hf.PREFIX):]), batch_size, seq_len)
    with torch.device("meta"):  # shapes only: neither weights nor the batch are allocated
        if ":" in network:
            return _factory(network, batch_size, seq_len)
        module, _ = build_network(network)
        return module, example_input(network, batch_size)
