"""A job's step for the gauge: a per-GPU step-time predictor and the gradient bytes each
step all-reduces, from a classic network and its cost models (AI Gauge's learned step) or
from the job's FLOP and byte totals (a roofline)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from costnet.gauge.offline import StepTime, network_step_time, roofline_step_time
from costnet.networks.estimate import Setting, read_predictors


@dataclass(frozen=True)
class JobStep:
    """How long a job's step takes on one GPU and what it all-reduces."""

    time_ms: StepTime  # (gpu name, per-GPU batch) -> ms
    params: float  # parameters, whose gradients every step all-reduces
    gradient_bytes: float
    ops: tuple[str, ...] | None  # ops the cost models cover; None for a roofline of totals


def network_step(network: str, models: Iterable[str], setting: Setting, bytes_per_param: float) -> JobStep:
    """The layer sum of ``network`` (costnet.networks.zoo) from the cost models at ``models``
    (artifacts or costnet-train run directories), analytical where no model covers a layer."""
    predictors = read_predictors(models)
    step, params = network_step_time(network, predictors, setting)
    return JobStep(step, params, params * bytes_per_param, tuple(sorted({p.op for p in predictors})))


def totals_step(flops_per_sample: float, bytes_per_sample: float, params: float, bytes_per_param: float,
                ppp: float) -> JobStep:
    """The roofline of the job's totals per sample (:func:`roofline_step_time`)."""
    return JobStep(roofline_step_time(flops_per_sample, bytes_per_sample, ppp), params, params * bytes_per_param,
                   None)
