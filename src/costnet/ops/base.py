"""The interface every timed layer type implements, and the rules they share.

The shape rules (TensorFlow's output size and padding, alignment) work on one
configuration's ints and on NumPy arrays of many rows alike, so sampling,
building, the analytical features and network extraction use the same ones.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.ops.params import Params
from costnet.ops.traced import Call

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
# Elementwise FLOPs per output element of each activation (forward).
ACTIVATION_FLOPS = {"none": 0, "relu": 1, "tanh": 5, "sigmoid": 4}
PADDINGS = ("same", "valid")

PerRow = Union[np.ndarray, float]  # one value per row, or one value for all rows


@dataclass(frozen=True)
class Elements:
    """Element counts of a layer's tensors, for the memory guard."""

    inputs: int
    params: int
    outputs: int


@dataclass(frozen=True)
class Analytical:
    """An op's forward work and shape facts over a frame of its rows (one value per row).

    FLOPs count a multiply-add as 2. ``mm`` is matrix-product work (the backward
    pass repeats it per gradient), ``ew`` elementwise work. Quantities an op
    lacks are 0 (e.g. ``out_size`` of a dense layer).
    """

    mm: PerRow  # forward matrix-product FLOPs
    ew: PerRow  # forward elementwise FLOPs
    inputs: PerRow  # elements of the inputs
    params: PerRow  # elements of the weights
    outputs: PerRow  # elements of the output
    out_size: PerRow = 0.0  # spatial output size
    pad_total: PerRow = 0.0  # TensorFlow padding of one spatial dimension
    pad_odd: PerRow = 0.0  # 1 where that padding is asymmetric
    align_in: PerRow = 0.0  # alignment (see :func:`alignment`) of the input's inner size
    align_out: PerRow = 0.0  # and of the output's
    gemm: tuple[PerRow, PerRow, PerRow] = (0.0, 0.0, 0.0)  # M, N, K where the op is one GEMM
    gemms: PerRow = 1.0  # independent GEMMs of that shape (the matrices of a batched product, conv groups)
    input_grad_mm: float = 1.0  # input-gradient products per forward product
    ew_bwd: PerRow | None = None  # backward elementwise FLOPs (None: twice the forward's)
    input_width: float | None = None  # bytes per input element (None: the dtype's)
    differentiable: float = 1.0  # 0 where the inputs can never take a gradient


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class, as ``Op.module_paths`` names them."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Op(ABC):
    """A layer type: how to sample, build, size and cost one configuration, and which
    traced calls it covers.

    Subclasses declare the parameters their spaces must give (``ranges`` are
    integer ranges, ``choices`` are lists, ``allowed`` restricts choice values,
    ``settings`` are positive numbers; ``optional`` integer parameters may be left out,
    which draws their default) and the config columns a sampled
    configuration has (``columns``). ``has_params`` is False for layers without
    weights, whose training step can only differentiate their inputs. Network
    extraction maps calls to ``modules`` (or subclasses) with :meth:`from_module`
    and calls of the torch functions or tensor methods named in ``functions``
    with :meth:`from_function`.
    """

    name: ClassVar[str]
    ranges: ClassVar[tuple[str, ...]] = ()
    choices: ClassVar[tuple[str, ...]] = ()
    allowed: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    settings: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    columns: ClassVar[tuple[str, ...]]
    has_params: ClassVar[bool] = True
    # Leading dimensions whose rows the op treats independently (a softmax's or layer norm's rows):
    # a call larger than any a model was trained on is predicted as equal chunks of them
    # (costnet.nets.predictor.Predictor.chunked). Empty: never split.
    row_dims: ClassVar[tuple[str, ...]] = ()
    modules: ClassVar[tuple[type[nn.Module], ...]] = ()
    # modules of other libraries, by qualified class name (matched without importing them)
    module_paths: ClassVar[tuple[str, ...]] = ()
    functions: ClassVar[tuple[str, ...]] = ()

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
    def analytical(self, rows: pd.DataFrame) -> Analytical:
        """Forward work and shape facts of ``rows`` (this op's config columns, plus
        ``mode`` for ops whose forward pass differs in training)."""

    def fast_algorithm_factor(self, rows: pd.DataFrame) -> np.ndarray:
        """Per row, how many times fewer operations than its counted FLOPs the fastest known
        algorithm for it needs (1: none): the compute floor of whole-network prediction
        divides by it, so no floor sits above what a library can actually reach."""
        return np.ones(len(rows))

    def elements(self, cfg: Mapping[str, Any]) -> Elements:
        """Element counts of the inputs, parameters and outputs one configuration's
        step holds: those of :meth:`analytical` unless an op keeps more. ``cfg`` may
        lack ``mode``: counts do not depend on it."""
        a = self.analytical(pd.DataFrame([{"mode": "forward", **cfg}]))
        return Elements(*(int(np.ravel(v)[0]) for v in (a.inputs, a.params, a.outputs)))

    def from_module(self, module: nn.Module, call: Call) -> dict[str, Any]:
        """This op's config columns (and ``approx``, a note where the mapping is
        approximate) of ``call`` to ``module``, one of ``modules``; raises
        :class:`costnet.ops.traced.Uncovered` when the call falls outside the op."""
        raise NotImplementedError(f"op {self.name!r} maps no module calls")

    def from_function(self, name: str, call: Call) -> dict[str, Any]:
        """As :meth:`from_module`, for a call of the function ``name``, one of ``functions``."""
        raise NotImplementedError(f"op {self.name!r} maps no function calls")


def activation(name: str) -> nn.Module:
    """The activation module called ``name``."""
    if name not in ACTIVATIONS:
        raise CostnetError(f"unknown activation {name!r}: choose from {list(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def lookup(values: pd.Series, table: Mapping[Any, float], default: float) -> np.ndarray:
    """``table[value]`` for each of ``values`` (``default`` for missing or unknown ones) as floats;
    one dictionary lookup per distinct value (``Series.map`` looks up every row)."""
    codes, uniques = pd.factorize(values)
    mapped = np.array([table.get(u, default) for u in uniques] + [default], dtype=float)
    return mapped[codes]  # code -1 (missing) picks the trailing default


def activation_flops(rows: pd.DataFrame) -> PerRow:
    """Forward FLOPs per output element of each row's activation (0 without one)."""
    return lookup(rows["activation"], ACTIVATION_FLOPS, 0) if "activation" in rows else 0


def column(rows: pd.DataFrame, name: str, default: float = 0.0) -> np.ndarray:
    """Column ``name`` of ``rows`` as floats, ``default`` where it is missing or empty."""
    if name not in rows:
        return np.full(len(rows), default, dtype=float)
    return rows[name].astype(float).fillna(default).to_numpy()


def _scalar_or_array(value: np.ndarray) -> Any:
    return int(value) if value.ndim == 0 else value


def output_size(size: Any, kernel: Any, stride: Any, padding: Any) -> Any:
    """Spatial output size under TensorFlow's padding rules (as in Justus et al.).

    'same': ceil(size / stride); 'valid': ceil((size - kernel + 1) / stride).
    Source: tf.nn.convolution documentation, "padding" section. Ints give an
    int; NumPy arrays (``padding`` an array or Series of 'same'/'valid') give
    a float array, one size per row.
    """
    rule = np.asarray(padding)
    known = np.isin(rule, PADDINGS)
    if not known.all():
        raise CostnetError(f"unknown padding {rule[~known].ravel().tolist()[0]!r}: choose from {list(PADDINGS)}")
    same = np.ceil(np.divide(size, stride))
    valid = np.ceil(np.divide(np.subtract(size, kernel) + 1, stride))
    return _scalar_or_array(np.where(rule == "same", same, valid))


def tf_padding(size: int, kernel: int, stride: int, out: int) -> tuple[str, str]:
    """TensorFlow's padding rule that gives ``out`` ('same' first), and a note if none does
    (then the nearest rule)."""
    for rule in PADDINGS:
        if out == output_size(size, kernel, stride, rule):
            return rule, ""
    nearest = min(PADDINGS, key=lambda r: abs(output_size(size, kernel, stride, r) - out))
    return nearest, f"output {out} timed as TensorFlow '{nearest}' ({output_size(size, kernel, stride, nearest)})"


def padding_total(size: Any, kernel: Any, stride: Any, padding: Any) -> Any:
    """Total padding TensorFlow adds to one spatial dimension: under 'same', what
    ``out`` windows need, max((out - 1) * stride + kernel - size, 0); under 'valid', none.
    Ints or NumPy arrays, as :func:`output_size`."""
    out = output_size(size, kernel, stride, "same")
    total = np.maximum(np.multiply(np.subtract(out, 1), stride) + kernel - size, 0)
    return _scalar_or_array(np.where(np.asarray(padding) == "same", total, 0))


def padding_amounts(size: np.ndarray, kernel: np.ndarray, stride: np.ndarray,
                    padding: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Total padding of one dimension and whether it is odd (asymmetric, so TensorFlow
    and costnet pad explicitly before the layer: an extra copy of the input)."""
    total = padding_total(size, kernel, stride, padding)
    return total, (total % 2).astype(float)


def alignment(x: np.ndarray, cap: int = 64) -> np.ndarray:
    """Largest power of two dividing ``x`` (at most ``cap``): GPU and SIMD kernels tile
    channels and features by 8, 16, 32..., so aligned sizes run differently."""
    n = np.maximum(x, 1).astype(np.int64)
    return np.minimum(n & -n, cap).astype(float)


def multiple_of(count: int, multiple: int) -> int:
    """``count`` (channels, features) rounded down to a multiple of ``multiple``; counts below it
    stay as drawn. Networks use sizes such as 64, 192 or 4096, which vectorized kernels split into
    whole blocks (oneDNN's 8 or 16 channels), and log-uniform draws almost never give them: a model
    that saw none extrapolates its alignment features (:func:`alignment`) on every real layer."""
    return count if count < multiple else count // multiple * multiple


def channel_cap(budget: float, size: int) -> int:
    """Largest channel count below ``budget / size`` (Justus et al. 2018, Sec. III-A), at least 1."""
    return max(1, math.ceil(budget / size) - 1)


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
    """(symmetric padding for the layer, explicit asymmetric pad (before, after) or None)."""
    total = padding_total(size, kernel, stride, padding)
    before, after = total // 2, total - total // 2
    return (before, None) if before == after else (0, (before, after))


def tensor(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """An input tensor of ``shape`` (values are filled in when it is materialized)."""
    return torch.empty(shape, device=device, dtype=dtype)


def feature_maps(cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The [batch, channels_in, size, size] input of a layer over square feature maps."""
    return tensor((cfg["batch"], cfg["channels_in"], cfg["size"], cfg["size"]), device, dtype)
