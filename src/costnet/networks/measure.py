"""Measured time of a whole network, and of its layers timed one by one.

The whole pass and each layer are timed with the same discipline as collected
rows (``costnet.timing.measure``: warm-up, blocks, a device-aware clock). A
network's training step is forward, mean-squared-error loss against a fixed random
target, backward, optimizer update; a layer's is the collector's (forward, backward
from a given output gradient, update). Comparing the whole pass with the sum of its
layers shows what a layer-wise model cannot see (Lu et al. 2017): per-call overheads,
cache reuse between consecutive layers, and the update each separately timed layer
launches on its own.

A whole pass is timed in a fresh process (:func:`time_network_fresh`), as a user's script
repeats its step: on a CPU, whether a tensor of tens of MB comes from pages glibc's heap
already holds or from a fresh mapping that faults on every call depends on everything the
process allocated before. In the long-lived process that also timed the layers and other
networks, ResNet-50's forward pass at batch 32 measured 1.3 s in one run and 2.5 s in another;
in eight fresh processes, 1.8-2.1 s.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.networks.estimate import MODES, op_rows
from costnet.networks.zoo import build_network, example_input
from costnet.ops import get_op
from costnet.timing import TimingConfig, clock_for, make_workload, measure
from costnet.timing.workload import OptimizerFactory, fill_random, optimizer_factory


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


def _backend_flags() -> dict[str, bool]:
    """How this process runs float32 on CUDA (costnet.timing.workload.cuda_float32), for a child."""
    return {"matmul_tf32": torch.backends.cuda.matmul.allow_tf32, "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark}


def _time_in_child(network: str, batch: int, mode: str, optimizers: dict[str, Any], optimizer: str,
                   timing: TimingConfig, device: str, threads: int, flags: dict[str, bool]) -> dict[str, float]:
    """:func:`time_network` of a zoo network, run in the child of :func:`time_network_fresh`."""
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]
    torch.manual_seed(0)
    module, _ = build_network(network)
    return time_network(module, example_input(network, batch), mode, optimizer_factory(optimizers), optimizer,
                        timing, torch.device(device))


def time_network_fresh(network: str, batch: int, mode: str, optimizers: Mapping[str, Any], optimizer: str,
                       timing: TimingConfig, device: torch.device, processes: int = 1) -> dict[str, float]:
    """:func:`time_network` of the zoo network ``network`` at batch ``batch``, built and timed in
    ``processes`` fresh processes one after another (spawned: no heap, caches or CUDA context
    inherited) with this process's thread count and CUDA float32 settings; ``optimizers`` are the
    optimizer config nodes. The statistics of the process with the lowest median, plus
    ``processes`` and ``process_spread`` (slowest median / fastest): a disturbance only slows a
    pass down, and on the project's shared 2-core VM a whole process now and then ran a pass at
    1.4-2.2x the time the same command measured minutes later."""
    if processes < 1:
        raise CostnetError(f"processes must be >= 1, got {processes}")
    spawn = multiprocessing.get_context("spawn")
    runs = []
    for _ in range(processes):
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            runs.append(pool.submit(_time_in_child, network, batch, mode, dict(optimizers), optimizer, timing,
                                    str(device), torch.get_num_threads(), _backend_flags()).result())
    return fastest(runs)


def fastest(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The timing statistics of the run with the lowest ``time_median_ms``, plus ``processes``
    (how many runs) and ``process_spread`` (slowest median / fastest)."""
    medians = [float(run["time_median_ms"]) for run in runs]
    best = dict(runs[int(np.argmin(medians))])
    best.update(processes=float(len(runs)), process_spread=max(medians) / min(medians))
    return best


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
