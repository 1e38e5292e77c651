"""AI Gauge-style runtime and cost estimates (Dube et al., SBAC-PAD 2019): online, from a
running job's log; offline, from a step-time model and a catalog of priced cloud configurations."""

from costnet.gauge.offline import (
    Job,
    Offering,
    load_offerings,
    network_step_time,
    pareto_front,
    pareto_mask,
    plot_pareto,
    predict_configurations,
    roofline_step_time,
    select_offerings,
    write_outputs,
)
from costnet.gauge.online import (
    Estimate,
    Progress,
    estimate_remaining,
    on_other_hardware,
    read_log,
    speed_ratio,
    steps_per_epoch,
    total_steps_of_epochs,
)
from costnet.gauge.step import JobStep, network_step, totals_step

__all__ = ["Estimate", "Job", "JobStep", "Offering", "Progress", "estimate_remaining", "load_offerings",
           "network_step", "network_step_time", "on_other_hardware", "pareto_front", "pareto_mask", "plot_pareto",
           "predict_configurations", "read_log", "roofline_step_time", "select_offerings", "speed_ratio",
           "steps_per_epoch", "total_steps_of_epochs", "totals_step", "write_outputs"]
