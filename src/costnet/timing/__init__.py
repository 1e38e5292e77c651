"""Measuring layer time: the timed step of a configuration and the timer that runs it."""

from costnet.timing.timer import (Clock, CudaEventClock, HostClock, Measurement, TimingConfig,
                                  clock_for, measure)
from costnet.timing.workload import Workload, make_workload, torch_dtype

__all__ = ["Clock", "CudaEventClock", "HostClock", "Measurement", "TimingConfig", "Workload",
           "clock_for", "make_workload", "measure", "torch_dtype"]
