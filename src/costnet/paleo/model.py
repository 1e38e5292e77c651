"""PALEO's time model of one worker (Qi, Sparks & Talwalkar, ICLR 2017, Sec. 3.1).

Each layer phase takes ``T = R + C + W``: reading its inputs from device memory, computing,
and writing its outputs, with

* ``C = FLOPs / (peak FLOP/s * PPP_comp)``,
* ``R = bytes read / (memory bandwidth * PPP_mem)``, ``W`` likewise for bytes written,

computed by costnet.roofline.

PALEO scales memory traffic by the same platform percent of peak as compute
(flops_profiler._estimate_comm_time divides by ``ppp_comp`` unless told otherwise), so
``ppp_memory`` defaults to ``ppp_comp``; ``fit_ppp`` can fit the two apart.

A pass sums its layers (the upper bound). Layers on parallel branches (Inception
modules) may run concurrently; with perfect concurrency a pass takes the critical path
through the graph, the lower bound (PALEO simulation._sum_with_parallel takes the max over
branches and the sum along each).

The weight update of SGD, ``w -= lr * g``, is 2 FLOPs a parameter and reads the weights
and gradients and writes the weights (PALEO profile_apply_updates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from costnet.errors import CostnetError
from costnet.paleo.layers import PHASES, Layer
from costnet.paleo.presets import Costs, Device, load_costs
from costnet.paleo.spec import Net
from costnet.roofline import compute_ms, memory_ms


@dataclass(frozen=True)
class Platform:
    """A device and how close to its peaks the software runs."""

    device: Device
    ppp_comp: float = 1.0
    ppp_memory: float | None = None  # None: PALEO's choice, the same as ppp_comp
    costs: Costs | None = None

    def __post_init__(self) -> None:
        for name in ("ppp_comp", "ppp_memory"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise CostnetError(f"{name} must be positive, got {value!r}")

    @property
    def memory_efficiency(self) -> float:
        return self.ppp_comp if self.ppp_memory is None else self.ppp_memory

    @property
    def constants(self) -> Costs:
        return self.costs or load_costs()

    def compute_ms(self, flops: float) -> float:
        """``C``: FLOPs at ``peak * PPP_comp``."""
        return compute_ms(flops, self.device.peak_gflops, self.ppp_comp)

    def memory_ms(self, n_elements: float) -> float:
        """``R`` or ``W``: elements moved at ``bandwidth * PPP_mem``."""
        costs = self.constants
        return memory_ms(n_elements * costs.bytes_per_element, self.device.memory_gbs, self.memory_efficiency,
                         costs.memory_gb_bytes)


def phase_times(layer: Layer, phase: str, batch: int, platform: Platform) -> tuple[float, float, float]:
    """``(R, C, W)`` in ms of one layer phase at ``batch`` samples."""
    flops, read, written = layer.work(phase).totals(batch)
    return platform.memory_ms(read), platform.compute_ms(flops), platform.memory_ms(written)


def layer_table(net: Net, batch: int, platform: Platform) -> pd.DataFrame:
    """One row per layer and phase: FLOPs, bytes and the ``R``, ``C``, ``W`` times."""
    width = platform.constants.bytes_per_element
    rows = []
    for layer in net.layers:
        for phase in PHASES:
            flops, read, written = layer.work(phase).totals(batch)
            r, c, w = phase_times(layer, phase, batch, platform)
            rows.append({"layer": layer.name, "type": layer.type, "phase": phase,
                         "output": "x".join(map(str, (batch, *layer.output))), "params": layer.params,
                         "flops": flops, "bytes_read": read * width, "bytes_written": written * width,
                         "read_ms": r, "compute_ms": c, "write_ms": w, "time_ms": r + c + w})
    return pd.DataFrame(rows)


def _critical_path(net: Net, times: dict[str, float]) -> float:
    longest: dict[str, float] = {}
    for layer in net.layers:  # topological order
        longest[layer.name] = times[layer.name] + max((longest[p] for p in layer.parents), default=0.0)
    return max(longest.values(), default=0.0)


@dataclass(frozen=True)
class PassTimes:
    """Forward, backward and update times of one step on one worker, in ms."""

    forward_ms: float
    backward_ms: float
    update_ms: float
    forward_lower_ms: float  # critical path: parallel branches run concurrently
    backward_lower_ms: float

    @property
    def compute_ms(self) -> float:
        return self.forward_ms + self.backward_ms + self.update_ms


def update_ms(params: int, platform: Platform) -> float:
    """SGD update of ``params`` weights: 2 FLOPs each, read weights and gradients, write weights."""
    return platform.compute_ms(2.0 * params) + platform.memory_ms(3.0 * params)


def pass_times(net: Net, batch: int, platform: Platform) -> PassTimes:
    """Times of a training step of ``net`` at ``batch`` samples on one worker."""
    if batch < 1:
        raise CostnetError(f"batch size must be positive, got {batch}")

    def total(layer: Layer, phases: tuple[str, ...]) -> float:
        return sum(sum(phase_times(layer, p, batch, platform)) for p in phases)

    fwd = {layer.name: total(layer, ("forward",)) for layer in net.layers}
    bwd = {layer.name: total(layer, ("backward_data", "backward_weights")) for layer in net.layers}
    # The backward pass walks the same graph in reverse: its critical path has the same length.
    return PassTimes(sum(fwd.values()), sum(bwd.values()), update_ms(net.params, platform),
                     _critical_path(net, fwd), _critical_path(net, bwd))


FIT_COLUMNS: tuple[str, ...] = ("flops", "bytes", "time_ms")


@dataclass(frozen=True)
class PPPFit:
    """Fitted platform percents of peak and the fit's error."""

    ppp_comp: float
    ppp_memory: float
    rmse_ms: float
    rows: int


def fit_ppp(rows: pd.DataFrame, device: Device, shared: bool = False, relative: bool = False,
            costs: Costs | None = None) -> PPPFit:
    """Fit PPP_comp and PPP_mem to measured times by non-negative least squares.

    ``rows`` is any frame with the columns ``flops`` (FLOPs of the measured work),
    ``bytes`` (bytes it moves through device memory) and ``time_ms`` (measured time), one
    row per measurement (a layer phase, a whole pass, ...). The model is
    ``time_ms = a * C_peak + b * M_peak``, where ``C_peak`` and ``M_peak`` are the
    compute and memory times at ``device``'s peaks; ``PPP_comp = 1 / a`` and
    ``PPP_mem = 1 / b``. With ``shared`` one coefficient scales both, as PALEO's single
    PPP does. ``relative`` weights rows by ``1 / time_ms`` (fits relative errors, so that
    long layers do not dominate).
    """
    missing = [c for c in FIT_COLUMNS if c not in rows.columns]
    if missing:
        raise CostnetError(f"fit_ppp needs columns {', '.join(FIT_COLUMNS)}; missing: {', '.join(missing)}")
    data = rows[list(FIT_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if len(data) < (1 if shared else 2) or not np.isfinite(data).all() or (data < 0).any() or \
            (data[:, 2] <= 0).any():
        raise CostnetError(f"fit_ppp needs at least {1 if shared else 2} rows of finite, non-negative flops and "
                           "bytes and positive time_ms")
    compute = compute_ms(data[:, 0], device.peak_gflops)
    memory = memory_ms(data[:, 1], device.memory_gbs, gb_bytes=(costs or load_costs()).memory_gb_bytes)
    design = compute[:, None] + memory[:, None] if shared else np.column_stack([compute, memory])
    weight = 1.0 / data[:, 2] if relative else np.ones(len(data))
    coef, _ = nnls(design * weight[:, None], data[:, 2] * weight)
    if shared:
        coef = np.array([coef[0], coef[0]])
    for value, what in zip(coef, ("ppp_comp (no compute signal)", "ppp_memory (no memory signal)")):
        if value <= 0:
            raise CostnetError(f"the rows do not determine {what}: its fitted coefficient is 0")
    residual = np.column_stack([compute, memory]) @ coef - data[:, 2]
    return PPPFit(float(1.0 / coef[0]), float(1.0 / coef[1]), float(np.sqrt(np.mean(residual**2))), len(data))
