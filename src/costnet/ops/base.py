"""The interface every timed layer type implements, and helpers they share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.sampling.params import Choice, IntRange

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
PADDINGS = ("same", "valid")


@dataclass(frozen=True)
class Elements:
    """Element counts of a layer's tensors, for the memory guard."""

    inputs: int
    params: int
    outputs: int


@dataclass(frozen=True)
class Params:
    """A space's parsed parameter distributions and fixed settings, by name."""

    values: Mapping[str, IntRange | Choice]
    settings: Mapping[str, float]

    def int(self, name: str, rng: np.random.Generator, high: int | None = None) -> int:
        dist = self.values[name]
        assert isinstance(dist, IntRange), name
        return dist.sample(rng, high)

    def pick(self, name: str, rng: np.random.Generator) -> Any:
        dist = self.values[name]
        assert isinstance(dist, Choice), name
        return dist.sample(rng)


class Op(ABC):
    """A layer type: how to sample, build and size one configuration.

    Subclasses declare the parameters their spaces must give (``ranges`` are
    integer ranges, ``choices`` are lists, ``allowed`` restricts choice values,
    ``settings`` are positive numbers) and the config columns a sampled
    configuration has (``columns``). ``has_params`` is False for layers without
    weights, whose training step can only differentiate their inputs.
    """

    name: ClassVar[str]
    ranges: ClassVar[tuple[str, ...]] = ()
    choices: ClassVar[tuple[str, ...]] = ()
    allowed: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    settings: ClassVar[tuple[str, ...]] = ()
    columns: ClassVar[tuple[str, ...]]
    has_params: ClassVar[bool] = True

    @abstractmethod
    def draw(self, p: Params, rng: np.random.Generator) -> dict[str, Any]:
        """Sample one configuration (the values of ``columns``)."""

    @abstractmethod
    def build(
        self, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype
    ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        """The layer as a module returning one tensor, and its inputs.

        Values are not initialized: callers build on the ``meta`` device and
        materialize with :func:`costnet.timing.workload.materialize`.
        """

    @abstractmethod
    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        """Element counts of inputs, parameters and outputs of ``cfg``."""


def activation(name: str) -> nn.Module:
    """The activation module called ``name``."""
    if name not in ACTIVATIONS:
        raise CostnetError(f"unknown activation {name!r}: choose from {list(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Spatial output size under TensorFlow's padding rules (as in Justus et al.).

    'same': ceil(size / stride); 'valid': ceil((size - kernel + 1) / stride).
    Source: tf.nn.convolution documentation, "padding" section.
    """
    if padding == "same":
        return math.ceil(size / stride)
    if padding == "valid":
        return math.ceil((size - kernel + 1) / stride)
    raise CostnetError(f"unknown padding {padding!r}: choose from {list(PADDINGS)}")


def channel_cap(budget: float, size: int) -> int:
    """Largest channel count below ``budget / size`` (Justus et al. 2018, Sec. III-A), at least 1."""
    return max(1, math.ceil(budget / size) - 1)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) of one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Padded(nn.Module):
    """Applies TensorFlow-style padding, then ``layer`` and ``act``.

    Symmetric padding goes to the layer itself (``layer`` was built with it);
    asymmetric padding is an explicit ``F.pad`` in front, as a PyTorch user
    reproducing TensorFlow 'same' would write it.
    """

    def __init__(self, layer: nn.Module, pad: tuple[int, int] | None, act: nn.Module,
                 pad_value: float = 0.0) -> None:
        super().__init__()
        self.layer, self.act = layer, act
        self.pad = None if pad is None else (pad[0], pad[1], pad[0], pad[1])
        self.pad_value = pad_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = nn.functional.pad(x, self.pad, value=self.pad_value)
        return self.act(self.layer(x))


def spatial_padding(size: int, kernel: int, stride: int, padding: str) -> tuple[int, tuple[int, int] | None]:
    """(symmetric padding for the layer, explicit asymmetric pad or None)."""
    if padding == "valid":
        return 0, None
    before, after = same_padding(size, kernel, stride)
    return (before, None) if before == after else (0, (before, after))


def tensor(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """An input tensor of ``shape`` (values are filled in when it is materialized)."""
    return torch.empty(shape, device=device, dtype=dtype)
