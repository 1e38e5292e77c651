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
)

__all__ = ["Estimate", "Job", "Offering", "Progress", "estimate_remaining", "load_offerings", "network_step_time",
           "on_other_hardware",
           "pareto_front", "pareto_mask", "plot_pareto", "predict_configurations", "read_log",
           "roofline_step_time", "speed_ratio", "steps_per_epoch", "write_outputs"]
