"""Turn a sampled configuration into the callable that gets timed.

Forward mode runs the layer under ``torch.inference_mode`` (no autograd).
Training mode runs one step: forward, backward from a fixed random gradient of the
output, optimizer update. The output's gradient is given, as the next layer's backward
hands it on inside a network, where the one loss sits at the end and costs next to
nothing. (Until TRAIN_STEP 2 the step took a mean-squared-error loss of the output, as in
Justus et al. 2018; on the project's CPU that loss made a ReLU's training step over a
32 x 256 x 56 x 56 input 2.0x its cost, a batch norm's 1.7x, at batch 8 5.8x and 2.1x.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
from hydra.utils import instantiate
from torch import nn

from costnet.errors import CostnetError
from costnet.ops import Op
from costnet.ops.step import check_dtypes

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

OptimizerFactory = Callable[[str, list[nn.Parameter]], torch.optim.Optimizer]
# What a training row's step is; part of a collect run's key (costnet.collect.runner.run_key), so
# rows of one definition never resume a run of the other. 1: loss of the output; 2: given gradient.
TRAIN_STEP = 2


@dataclass
class Workload:
    """A zero-argument step to time, and the context to run it in."""

    step: Callable[[], object]
    context: Callable[[], ContextManager[object]]


def optimizer_factory(optimizers: Mapping[str, Any]) -> OptimizerFactory:
    """Build optimizers from their config nodes (``_target_`` plus arguments)."""
    def make(name: str, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if name not in optimizers:
            raise CostnetError(f"unknown optimizer {name!r}: choose from {sorted(optimizers)}")
        return instantiate(optimizers[name], params)
    return make


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype called ``name``."""
    check_dtypes([name])
    return DTYPES[name]


_POOL_SIZE = 1 << 20
_pools: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def cuda_float32(tf32: bool = False) -> None:
    """How CUDA runs float32: ``tf32=False`` keeps matrix products and convolutions in true
    fp32 (PyTorch lets cuDNN convolutions use TF32 tensor cores by default, matmuls not), as
    neusight2025 was measured (its README); ``True`` lets both use TF32. cuDNN autotuning is on
    either way (it picks each convolution's fastest algorithm during the warm-up)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def fill_random(t: torch.Tensor, scale: float = 1.0) -> None:
    """Fill ``t`` with uniform values in [-scale, scale) from a cached random pool.

    Drawing fresh random numbers for a large layer costs far more than timing it
    (tens of ms per 16M elements on one core); tiling a 1M-element pool costs a
    memory copy. Timing depends on shapes, not values, as long as the values are
    ordinary (no NaN, infinities or denormals): a pool of uniform values is.
    """
    key = (t.device, t.dtype)
    if key not in _pools:
        gen = torch.Generator().manual_seed(0)
        _pools[key] = (torch.rand(_POOL_SIZE, generator=gen) * 2 - 1).to(t.device, t.dtype)
    pool = _pools[key]
    contiguous = t.is_contiguous()
    dense = t.detach() if contiguous else torch.empty(t.shape, device=t.device, dtype=t.dtype)
    flat = dense.view(-1)
    n, full = flat.numel(), flat.numel() // _POOL_SIZE
    with torch.no_grad():
        if full:
            flat[: full * _POOL_SIZE].view(full, _POOL_SIZE).copy_(pool.expand(full, _POOL_SIZE))
        flat[full * _POOL_SIZE:].copy_(pool[: n - full * _POOL_SIZE])
        if scale != 1.0:
            flat.mul_(scale)
        if not contiguous:
            t.copy_(dense)


def materialize(module: nn.Module, inputs: tuple[torch.Tensor, ...], device: torch.device
                ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Allocate a ``meta`` module and inputs on ``device`` and fill them.

    Weights get small uniform values (scaled by 1/sqrt(fan-in) of a 2-D view, as
    PyTorch's default initializers do); buffers (e.g. running variances) get ones.
    Integer inputs are indices: they get seeded uniform random values in
    [0, ``module.index_high``), an attribute a module taking them must have.
    """
    module = module.to_empty(device=device)
    for p in module.parameters():
        fan_in = p[0].numel() if p.dim() > 1 else p.numel()
        fill_random(p, 1.0 / max(fan_in, 1) ** 0.5)
    with torch.no_grad():
        for b in module.buffers():
            b.fill_(1)
    real = []
    for x in inputs:
        if x.is_floating_point():
            y = torch.empty(x.shape, device=device, dtype=x.dtype)
            fill_random(y)
        else:
            seeded = torch.Generator().manual_seed(0)
            y = torch.randint(_index_high(module), x.shape, generator=seeded, dtype=x.dtype).to(device)
        real.append(y)
    return module, tuple(real)


def _index_high(module: nn.Module) -> int:
    high = getattr(module, "index_high", None)
    if not isinstance(high, int) or high < 1:
        raise CostnetError(f"{type(module).__name__} takes integer inputs but has no index_high "
                           "(the exclusive bound of their values)")
    return high


def make_workload(op: Op, cfg: Mapping[str, Any], device: torch.device,
                  make_optimizer: OptimizerFactory) -> Workload:
    """Build the layer of ``cfg`` on ``device`` and return its timed step."""
    meta = torch.device("meta")
    module, inputs = materialize(*op.build(cfg, meta, torch_dtype(cfg["dtype"])), device)
    if cfg["mode"] == "forward":
        module.eval()
        return Workload(lambda: module(*inputs), torch.inference_mode)
    if cfg["mode"] != "train":
        raise CostnetError(f"unknown mode {cfg['mode']!r}: choose from ['forward', 'train']")
    return _train_workload(module, inputs, bool(cfg["input_grad"]),
                           make_optimizer, str(cfg["optimizer"]))


def _train_workload(module: nn.Module, inputs: tuple[torch.Tensor, ...], input_grad: bool,
                    make_optimizer: OptimizerFactory, optimizer: str) -> Workload:
    module.train()
    # integer inputs (indices) never take a gradient
    grad_inputs = [x for x in inputs if x.is_floating_point()] if input_grad else []
    for x in grad_inputs:
        x.requires_grad_(True)
    params = [p for p in module.parameters() if p.requires_grad]
    if not params and not grad_inputs:
        raise CostnetError("training step has nothing to differentiate: no weights and no input gradient")
    opt = make_optimizer(optimizer, params) if params else None
    grad_out: list[torch.Tensor] = []  # made by the first (warm-up) call, once the output shape is known

    def step() -> None:
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        for x in grad_inputs:
            x.grad = None
        out = module(*inputs)
        if not grad_out:
            grad_out.append(torch.empty_like(out, requires_grad=False))
            fill_random(grad_out[0])
        out.backward(grad_out[0])
        if opt is not None:
            opt.step()

    return Workload(step, contextlib.nullcontext)
