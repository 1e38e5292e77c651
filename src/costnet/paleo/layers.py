"""PALEO layers: what each layer computes and moves, per training phase (PALEO Sec. 3.1).

A layer's work in a phase is its FLOPs and the tensors it reads and writes. Activation
terms are per sample (they scale with the batch); weight terms are per step. Shapes are
per sample, channels last like PALEO's NHWC tensors: ``(H, W, C)`` or ``(D,)``.

Phases follow PALEO's flops profiler (TalwalkarLab/paleo, paleo/profilers/flops_profiler.py,
GEMM path) and the gradient layers of paleo/layers/conv.py (``Conv2d.gradients``):

* ``forward``: read inputs (and weights), compute, write outputs. A convolution is the
  im2col GEMM, ``2 * out_elements * C_in * k_h * k_w / groups`` FLOPs; no cuDNN algorithm
  heuristics are applied.
* ``backward_data``: the gradient with respect to the layer's input. PALEO writes a
  convolution's as a stride-1 convolution with the transposed filters over the output
  gradient dilated by the stride (``stride - 1`` zeros between elements) and zero-padded to
  ``(H + k_h - 1) x (W + k_w - 1)``. It reads that padded tensor, costs one full dot
  product per *input* element (the zeros are not skipped, so a strided or shrinking
  convolution's data gradient costs more than its forward), and, when the stride left
  holes, 2 FLOPs per gradient element to place it. An inner product's is the GEMM with
  the transposed weights. Layers fed only by the network input skip it (PALEO Conv2d
  ``backprop=('data' not in parents)``; we apply the rule to every layer type).
* ``backward_weights``: the gradient with respect to the weights, a GEMM with the
  forward's FLOPs. A convolution's correlates the padded input with the output gradient
  (reads both), an inner product's multiplies the transposed input by it; both write the
  weights (PALEO leaves biases out of layer costs; the update counts them).

Pooling's data gradient costs the forward's FLOPs (PALEO ``_profile_pool2d`` repeats the
forward for the backward pass) and moves the same tensors, gradients in the other
direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from costnet.errors import CostnetError
from costnet.ops.base import output_size as tf_output_size
from costnet.ops.base import padding_total
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
    """Spatial output size as PALEO computes it (paleo/layers/conv.py).

    ``"SAME"``/``"VALID"`` follow TensorFlow's rules (costnet.ops' ``output_size``); an int
    pads both sides explicitly, PALEO's list padding: ``(size + 2 p - kernel) // stride + 1``.
    """
    if isinstance(padding, str):
        return tf_output_size(size, kernel, stride, padding.lower())
    return (size + 2 * int(padding) - kernel) // stride + 1


def _padded_size(size: int, kernel: int, stride: int, padding: str | int) -> int:
    """One spatial dimension of the input after the forward pass pads it (TensorFlow's SAME
    split, none for VALID, ``p`` on both sides for an int)."""
    if padding == "VALID":
        return size
    if padding == "SAME":
        return size + padding_total(size, kernel, stride, "same")
    return size + 2 * int(padding)


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


def conv2d(name: str, parents: Sequence[str], in_shape: Shape, kernel: tuple[int, int], channels_out: int,
           stride: tuple[int, int], padding: str | tuple[int, int], groups: int = 1, bias: bool = True,
           data_grad: bool = True) -> Layer:
    """2-D convolution: the im2col GEMM forward and PALEO's two gradient convolutions (module docstring)."""
    h, w, cin = _spatial(name, in_shape, "a convolution")
    (kh, kw), (sh, sw) = kernel, stride
    if cin % groups or channels_out % groups:
        raise CostnetError(f"layer {name!r}: groups {groups} must divide channels {cin} -> {channels_out}")
    pad_h, pad_w = (padding, padding) if isinstance(padding, str) else padding
    oh, ow = output_size(h, kh, sh, pad_h), output_size(w, kw, sw, pad_w)
    if oh < 1 or ow < 1:
        raise CostnetError(f"layer {name!r}: kernel {kh}x{kw} does not fit its {h}x{w} input")
    output = (oh, ow, channels_out)
    n_in, n_out = elements(in_shape), elements(output)
    weights = kh * kw * (cin // groups) * channels_out
    flops = 2.0 * n_out * (cin // groups) * kh * kw
    # data gradient: k_h k_w C_out/groups multiply-adds per input element over the dilated,
    # padded output gradient, plus placing each gradient element when the stride left holes
    holes = ((oh - 1) * sh + 1) * ((ow - 1) * sw + 1) > oh * ow
    data_flops = 2.0 * n_in * (channels_out // groups) * kh * kw + (2.0 * n_out if holes else 0.0)
    padded_input = _padded_size(h, kh, sh, pad_h) * _padded_size(w, kw, sw, pad_w) * cin
    return Layer(
        name, "conv", tuple(parents), output, weights + (channels_out if bias else 0),
        forward=Work(flops, n_in, n_out, weights_read=weights),
        backward_data=Work(data_flops, (h + kh - 1) * (w + kw - 1) * channels_out, n_in,
                           weights_read=weights) if data_grad else Work(),
        backward_weights=Work(flops, padded_input + n_out, 0.0, weights_written=weights),
    )


def inner_product(name: str, parents: Sequence[str], in_shape: Shape, num_outputs: int, bias: bool = True,
                  data_grad: bool = True) -> Layer:
    """Fully connected layer over the flattened input (PALEO ``InnerProduct``): ``2 D M`` FLOPs a pass."""
    d = elements(in_shape)
    weights = d * num_outputs
    flops = 2.0 * d * num_outputs
    return Layer(
        name, "fc", tuple(parents), (num_outputs,), weights + (num_outputs if bias else 0),
        forward=Work(flops, d, num_outputs, weights_read=weights),
        backward_data=Work(flops, num_outputs, d, weights_read=weights) if data_grad else Work(),
        backward_weights=Work(flops, d + num_outputs, 0.0, weights_written=weights),
    )


def pool2d(name: str, parents: Sequence[str], in_shape: Shape, kernel: tuple[int, int], stride: tuple[int, int],
           padding: str | tuple[int, int], costs: Costs, kind: str = "max") -> Layer:
    """Max or average pooling (PALEO ``_profile_pool2d``)."""
    h, w, c = _spatial(name, in_shape, "pooling")
    (kh, kw), (sh, sw) = kernel, stride
    pad_h, pad_w = (padding, padding) if isinstance(padding, str) else padding
    output = (output_size(h, kh, sh, pad_h), output_size(w, kw, sw, pad_w), c)
    if output[0] < 1 or output[1] < 1:
        raise CostnetError(f"layer {name!r}: window {kh}x{kw} does not fit its {h}x{w} input")
    return pooling(name, parents, in_shape, output, kh * kw, costs, kind)


def pooling(name: str, parents: Sequence[str], in_shape: Shape, output: Shape, window: int, costs: Costs,
            kind: str = "max") -> Layer:
    """A pooling layer of ``window`` elements per output: FLOPs per window element per output
    each way; forward reads the input and writes the output, backward the reverse."""
    fwd, bwd = costs.flops("pool")
    n_in, n_out = elements(in_shape), elements(output)
    return Layer(name, f"{kind}_pool", tuple(parents), tuple(output),
                 forward=Work(fwd * window * n_out, n_in, n_out),
                 backward_data=Work(bwd * window * n_out, n_out, n_in))


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
