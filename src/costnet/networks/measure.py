"""Measured time of a whole network, and of its layers timed one by one.

The whole pass and each layer are timed with the same discipline as collected
rows (``costnet.timing.measure``: warm-up, blocks, a device-aware clock), and a
training step is the same in both: forward, mean-squared-error loss against a
fixed random target, backward, optimizer update. Comparing the whole pass with
the sum of its layers shows what a layer-wise model cannot see (Lu et al. 2017):
per-call overheads, cache reuse between consecutive layers, and the loss and
update each separately timed layer repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.networks.estimate import MODES, op_rows
from costnet.ops import get_op
from costnet.timing import TimingConfig, clock_for, make_workload, measure
from costnet.timing.workload import OptimizerFactory, fill_random


def first_tensor(out: object) -> torch.Tensor:
    """The tensor a step's loss is taken of: the output itself, else the first tensor of a
    tuple or of a Hugging Face ``ModelOutput`` (its logits or last hidden state)."""
    if isinstance(out, torch.Tensor):
        return out
    items = out.values() if isinstance(out, Mapping) else out if isinstance(out, (tuple, list)) else ()
    for item in items:
        if isinstance(item, torch.Tensor) and item.is_floating_point():
            return item
    raise TypeError(f"the network returned {type(out).__name__}, which holds no floating-point tensor to take a "
                    "loss of")


def _network_step(module: nn.Module, inputs: tuple[torch.Tensor, ...], mode: str,
                  optimizer: torch.optim.Optimizer | None) -> Callable[[], object]:
    if mode == "forward":
        return lambda: module(*inputs)
    target: list[torch.Tensor] = []

    def step() -> None:
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        else:
            module.zero_grad(set_to_none=True)
        out = first_tensor(module(*inputs))
        if not target:
            target.append(torch.empty_like(out).detach())
            fill_random(target[0])
        nn.functional.mse_loss(out, target[0]).backward()
        if optimizer is not None:
            optimizer.step()
    return step


def time_network(module: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...], mode: str,
                 make_optimizer: OptimizerFactory, optimizer: str, timing: TimingConfig, device: torch.device
                 ) -> dict[str, float]:
    """Timing statistics (ms) of one step of ``module`` on ``inputs``: ``forward`` (eval mode,
    no autograd), ``forward_backward`` (train mode; forward, mean-squared-error loss against a
    fixed random target, backward) or ``train`` (that and the optimizer update)."""
    if mode not in MODES:
        raise CostnetError(f"mode must be one of {list(MODES)}, got {mode!r}")
    module = module.to(device)
    inputs = tuple(x.to(device) for x in (inputs if isinstance(inputs, tuple) else (inputs,)))
    module.train(mode != "forward")
    opt = make_optimizer(optimizer, list(module.parameters())) if mode == "train" else None
    context = torch.inference_mode if mode == "forward" else torch.enable_grad
    result = measure(_network_step(module, inputs, mode, opt), timing, clock_for(device), context)
    return dict(result.stats_ms())


def time_layers(layers: pd.DataFrame, mode: str, make_optimizer: OptimizerFactory, optimizer: str,
                timing: TimingConfig, device: torch.device, dtype: str = "float32",
                progress: Callable[[Any], Any] = lambda it: it) -> np.ndarray:
    """Median time (ms) of each covered layer of ``layers`` built and timed on its own
    exactly as the collector times a row; NaN for free and uncovered rows."""
    times = np.full(len(layers), np.nan)
    context: Mapping[str, Any] = {"mode": mode, "dtype": dtype,
                                  "optimizer": optimizer if mode == "train" else "none"}
    covered = np.flatnonzero((layers["kind"] == "layer").to_numpy())
    for i in progress(covered):
        row = layers.iloc[[i]]
        cfg = op_rows(row, str(row["op"].iloc[0]), context).iloc[0].to_dict()
        torch.manual_seed(i)
        work = make_workload(get_op(str(cfg["op"])), cfg, device, make_optimizer)
        times[i] = measure(work.step, timing, clock_for(device), work.context).stats_ms()["time_median_ms"]
        del work
    return times
