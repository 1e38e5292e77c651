"""Classic networks by name, built without downloads.

``build_network(name)`` returns the network and the shape of one input sample;
``example_input(name, batch_size)`` a random batch for it. Convolutional networks
come from torchvision when it is importable (``source="auto"``) and otherwise from
costnet's own definitions, which reproduce torchvision's architectures layer for
layer (same layers, shapes, parameter counts and state_dict keys), so results
agree whichever is used. The transformer block is costnet's own. All are traceable by
``torch.fx.symbolic_trace``. Weights are randomly initialised; build under
``torch.device("meta")`` to get shapes only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.networks.alexnet import AlexNet
from costnet.networks.inception import Inception3
from costnet.networks.resnet import resnet18, resnet50
from costnet.networks.transformer import TransformerBlock
from costnet.networks.vgg import VGG

SOURCES = ("auto", "torchvision", "costnet")


@dataclass(frozen=True)
class _Entry:
    """How to build one network and the shape of one input sample."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    torchvision: str | None = None  # builder in torchvision.models, None if torchvision lacks it
    torchvision_kwargs: dict[str, Any] = field(default_factory=dict)


_IMAGE = (3, 224, 224)
_ENTRIES: dict[str, _Entry] = {
    "alexnet": _Entry(AlexNet, _IMAGE, "alexnet"),
    "vgg16": _Entry(VGG, _IMAGE, "vgg16"),
    "resnet18": _Entry(resnet18, _IMAGE, "resnet18"),
    "resnet50": _Entry(resnet50, _IMAGE, "resnet50"),
    "inception_v3": _Entry(Inception3, (3, 299, 299), "inception_v3",
                           {"aux_logits": False, "init_weights": True}),
    "transformer_block": _Entry(TransformerBlock, (128, 512)),
}

NETWORKS: tuple[str, ...] = tuple(_ENTRIES)


def _entry(name: str) -> _Entry:
    """The registry entry for name, or a CostnetError listing the known names."""
    if name not in _ENTRIES:
        raise CostnetError(f"unknown network {name!r}; known networks: {', '.join(NETWORKS)}")
    return _ENTRIES[name]


def _torchvision_models() -> Any | None:
    """The torchvision.models module, or None when torchvision is not importable."""
    try:
        return importlib.import_module("torchvision.models")
    except ImportError:
        return None


def build_network(name: str, source: str = "auto") -> tuple[nn.Module, tuple[int, ...]]:
    """The network called name and the shape of ONE input sample (no batch dim), e.g. (3, 224, 224).

    source: 'auto' (torchvision's definition when torchvision is importable, else
    costnet's own), 'torchvision' or 'costnet'.
    """
    entry = _entry(name)
    if source not in SOURCES:
        raise CostnetError(f"unknown network source {source!r}; known sources: {', '.join(SOURCES)}")
    if source != "costnet":
        models = _torchvision_models() if entry.torchvision else None
        if models is not None:
            return getattr(models, entry.torchvision)(weights=None, **entry.torchvision_kwargs), entry.input_shape
        if source == "torchvision":
            reason = "torchvision is not importable" if entry.torchvision else "torchvision does not define it"
            raise CostnetError(f"source='torchvision' cannot build {name!r}: {reason}; use source='costnet' or 'auto'")
    return entry.build(), entry.input_shape


def example_input(name: str, batch_size: int) -> torch.Tensor:
    """A random float batch for the network: [batch_size, *input_shape] (transformer: [batch, seq, d_model]);
    under ``torch.device("meta")`` its shape only, allocating nothing."""
    if batch_size < 1:
        raise CostnetError(f"batch_size must be at least 1, got {batch_size}")
    return torch.randn(batch_size, *_entry(name).input_shape)
