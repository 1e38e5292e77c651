"""PALEO layers: what each layer computes and moves, per training phase (PALEO Sec. 3.1).

A layer's work in a phase is its FLOPs and the tensors it reads and writes. Activation
terms are per sample (they scale with the batch); weight terms are per step. Shapes are
per sample, channels last like PALEO's NHWC tensors: ``(H, W, C)`` or ``(D,)``.

Phases follow PALEO's flops profiler (paleo/profilers/flops_profiler.py):

* ``forward``: read inputs (and weights), compute, write outputs.
* ``backward_data``: the gradient with respect to the layer's input. For convolution and
  inner products it is again a GEMM with the forward's FLOPs; PALEO builds it as an
  equivalent convolution over the (dilated) output gradient, whose hole-discounted FLOPs
  equal the forward's. Layers fed only by the network input skip it (PALEO Conv2d
  ``backprop=('data' not in parents)``).
* ``backward_weights``: the gradient with respect to the weights, the same GEMM FLOPs,
  reading inputs and output gradients and writing the weight gradients.

Convolution FLOPs are those of the im2col GEMM, ``2 * out_elements * C_in * k_h * k_w /
groups`` (PALEO ``_profile_conv2d_gemm``); no cuDNN algorithm heuristics are applied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from costnet.errors import CostnetError
from costnet.paleo.presets import Costs

Shape = tuple[int, ...]
PHASES: tuple[str, ...] = ("forward", "backward_data", "backward_weights")


@dataclass(frozen=True)
class Work:
    """One phase of a layer: per-sample FLOPs and activation elements, per-step weight elements."""

    flops: float = 0.0
    read: float = 0.0
    written: float = 0.0
    weights_read: float = 0.0
    weights_written: float = 0.0

    def totals(self, batch: int) -> tuple[float, float, float]:
        """(FLOPs, elements read, elements written) for a batch of ``batch`` samples."""
        return (batch * self.flops, batch * self.read + self.weights_read,
                batch * self.written + self.weights_written)


@dataclass(frozen=True)
class Layer:
    """A layer of the network graph and its work in each phase."""

    name: str
    type: str
    parents: tuple[str, ...]
    output: Shape
    params: int = 0
    forward: Work = field(default_factory=Work)
    backward_data: Work = field(default_factory=Work)
    backward_weights: Work = field(default_factory=Work)

    def work(self, phase: str) -> Work:
        """The layer's work in ``phase`` (one of PHASES)."""
        if phase not in PHASES:
            raise CostnetError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
        return getattr(self, phase)


def elements(shape: Sequence[int]) -> int:
    """Number of elements in a per-sample shape."""
    return math.prod(shape)


def output_size(size: int, kernel: int, stride: int, padding: str | int) -> int:
    """Spatial output size, by TensorFlow's rules as PALEO uses them (paleo/layers/conv.py).

    ``VALID``: ``ceil((size - kernel + 1) / stride)``; ``SAME``: ``ceil(size / stride)``;
    an int pads both sides explicitly: ``(size + 2 p - kernel) // stride + 1``.
    """
    if padding == "VALID":
        return math.ceil((size - kernel + 1) / stride)
    if padding == "SAME":
        return math.ceil(size / stride)
    return (size + 2 * int(padding) - kernel) // stride + 1


def _spatial(name: str, shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise CostnetError(f"layer {name!r}: {what} needs an (H, W, C) input, got per-sample shape {list(shape)}")
    return shape[0], shape[1], shape[2]


def input_layer(name: str, shape: Shape) -> Layer:
    """The network input: no work."""
    return Layer(name, "input", (), tuple(shape))


def free_layer(name: str, parents: Sequence[str], shape: Shape) -> Layer:
    """A view or reshape that moves no data."""
    return Layer(name, "free", tuple(parents), tuple(shape))


def _gemm_layer(name: str, kind: str, parents: Sequence[str], n_in: int, output: Shape, flops: float,
                weights: int, params: int, data_grad: bool) -> Layer:
    n_out = elements(output)
    return Layer(
        name, kind, tuple(parents), output, params,
        forward=Work(flops, n_in, n_out, weights_read=weights),
        backward_data=Work(flops, n_out, n_in, weights_read=weights) if data_grad else Work(),
        backward_weights=Work(flops, n_in + n_out, 0.0, weights_written=params),
    )


def conv2d(name: str, parents: Sequence[str], in_shape: Shape, kernel: tuple[int, int], channels_out: int,
           stride: tuple[int, int], padding: str | tuple[int, int], groups: int = 1, bias: bool = True,
           data_grad: bool = True) -> Layer:
    """2-D convolution as an im2col GEMM (PALEO ``_profile_conv2d_gemm``)."""
    h, w, cin = _spatial(name, in_shape, "a convolution")
    (kh, kw), (sh, sw) = kernel, stride
    if cin % groups or channels_out % groups:
        raise CostnetError(f"layer {name!r}: groups {groups} must divide channels {cin} -> {channels_out}")
    pad_h, pad_w = (padding, padding) if isinstance(padding, str) else padding
    oh, ow = output_size(h, kh, sh, pad_h), output_size(w, kw, sw, pad_w)
    if oh < 1 or ow < 1:
        raise CostnetError(f"layer {name!r}: kernel {kh}x{kw} does not fit its {h}x{w} input")
    output = (oh, ow, channels_out)
    weights = kh * kw * (cin // groups) * channels_out
    flops = 2.0 * elements(output) * (cin // groups) * kh * kw
    return _gemm_layer(name, "conv", parents, elements(in_shape), output, flops, weights,
                       weights + (channels_out if bias else 0), data_grad)


def inner_product(name: str, parents: Sequence[str], in_shape: Shape, num_outputs: int, bias: bool = True,
                  data_grad: bool = True) -> Layer:
    """Fully connected layer over the flattened input (PALEO ``InnerProduct``): ``2 D M`` FLOPs."""
    d = elements(in_shape)
    weights = d * num_outputs
    return _gemm_layer(name, "fc", parents, d, (num_outputs,), 2.0 * d * num_outputs, weights,
                       weights + (num_outputs if bias else 0), data_grad)


def pool2d(name: str, parents: Sequence[str], in_shape: Shape, kernel: tuple[int, int], stride: tuple[int, int],
           padding: str | tuple[int, int], costs: Costs, kind: str = "max") -> Layer:
    """Max or average pooling (PALEO ``_profile_pool2d``): FLOPs per window element per output."""
    h, w, c = _spatial(name, in_shape, "pooling")
    (kh, kw), (sh, sw) = kernel, stride
    pad_h, pad_w = (padding, padding) if isinstance(padding, str) else padding
    output = (output_size(h, kh, sh, pad_h), output_size(w, kw, sw, pad_w), c)
    if output[0] < 1 or output[1] < 1:
        raise CostnetError(f"layer {name!r}: window {kh}x{kw} does not fit its {h}x{w} input")
    fwd, bwd = costs.flops("pool")
    n_in, n_out = elements(in_shape), elements(output)
    return Layer(name, f"{kind}_pool", tuple(parents), output,
                 forward=Work(fwd * kh * kw * n_out, n_in, n_out),
                 backward_data=Work(bwd * kh * kw * n_out, n_out, n_in))


def pointwise(name: str, parents: Sequence[str], in_shapes: Sequence[Shape], output: Shape, kind: str,
              costs: Costs, params: int = 0, data_grad: bool = True) -> Layer:
    """A memory-bound layer applied element by element (activation, dropout, softmax, norms, add).

    Forward reads every input and writes the output; the data gradient reads the output
    gradient and the saved activation and writes one gradient per input; layers with
    parameters (batch norm's scale and shift) also reduce their weight gradients.
    """
    fwd, bwd = costs.flops(kind)
    n_in, n_out = sum(elements(s) for s in in_shapes), elements(output)
    extra_inputs = max(len(in_shapes) - 1, 1) if kind == "add" else 1
    return Layer(
        name, kind, tuple(parents), tuple(output), params,
        forward=Work(fwd * n_out * extra_inputs, n_in, n_out, weights_read=params),
        backward_data=Work(bwd * n_out, 2 * n_out, n_in, weights_read=params) if data_grad else Work(),
        backward_weights=Work(2.0 * n_out, 2 * n_out, 0.0, weights_written=params) if params else Work(),
    )


def concat(name: str, parents: Sequence[str], in_shapes: Sequence[Shape], axis: int) -> Layer:
    """Concatenation along per-sample ``axis``: a copy forward, a split backward."""
    first = in_shapes[0]
    if not -len(first) <= axis < len(first):
        raise CostnetError(f"layer {name!r}: concatenation axis {axis} out of range for shape {list(first)}")
    axis %= len(first)
    for shape in in_shapes:
        if len(shape) != len(first) or any(a != b for i, (a, b) in enumerate(zip(shape, first)) if i != axis):
            raise CostnetError(f"layer {name!r}: inputs {[list(s) for s in in_shapes]} differ off axis {axis}")
    output = tuple(sum(s[axis] for s in in_shapes) if i == axis else d for i, d in enumerate(first))
    n = elements(output)
    return Layer(name, "concat", tuple(parents), output, forward=Work(0.0, n, n), backward_data=Work(0.0, n, n))
