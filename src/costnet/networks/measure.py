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

from costnet.networks.estimate import op_rows
from costnet.ops import get_op
from costnet.timing import TimingConfig, clock_for, make_workload, measure
from costnet.timing.workload import OptimizerFactory, fill_random


def _network_step(module: nn.Module, x: torch.Tensor, mode: str, optimizer: torch.optim.Optimizer | None
                  ) -> Callable[[], object]:
    if mode == "forward":
        return lambda: module(x)
    target: list[torch.Tensor] = []

    def step() -> None:
        assert optimizer is not None
        optimizer.zero_grad(set_to_none=True)
        out = module(x)
        if not target:
            target.append(torch.empty_like(out).detach())
            fill_random(target[0])
        nn.functional.mse_loss(out, target[0]).backward()
        optimizer.step()
    return step


def time_network(module: nn.Module, x: torch.Tensor, mode: str, make_optimizer: OptimizerFactory,
                 optimizer: str, timing: TimingConfig, device: torch.device) -> dict[str, float]:
    """Timing statistics (ms) of a forward pass (eval mode, no autograd) or one training step."""
    module, x = module.to(device), x.to(device)
    module.train(mode == "train")
    opt = make_optimizer(optimizer, list(module.parameters())) if mode == "train" else None
    context = torch.inference_mode if mode == "forward" else torch.enable_grad
    result = measure(_network_step(module, x, mode, opt), timing, clock_for(device), context)
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
