"""Adaptive repeated timing with a clock that is honest about asynchronous devices.

The discipline follows ``torch.utils.benchmark.Timer.blocked_autorange``: calls
run in blocks long enough for the clock's resolution not to matter, each sample
being a block's time divided by its call count. After warm-up, samples are taken
until their relative spread (interquartile range / median by default) falls under
a threshold or the per-configuration budget is spent. On CUDA a block is bounded
by CUDA events after a device synchronization: a host clock around asynchronous
kernel launches would time the launches, not the work (Lu et al. 2017).

Between blocks the timer reads how long this process's threads waited for a CPU
(costnet.timing.interference): a block disturbed by other work is dropped and
re-timed, up to ``retries`` times per configuration; past that, every block is kept and
the measurement says so (``disturbed``). It says so too when other processes used more
than ``max_others`` cores over the last ``others_window_s`` seconds: a neighbour can slow
the timed threads without ever making them wait (a shared core's other hyperthread on a
virtual machine, shared caches, a lower all-core clock). No disturbed time passes as a
clean one.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, ContextManager, Protocol

import numpy as np
import torch

from costnet.errors import CostnetError
from costnet.timing.interference import Probe, disturbed


class Clock(Protocol):
    """Times ``number`` back-to-back calls of a function, in seconds."""

    def time_block(self, fn: Callable[[], object], number: int) -> float: ...


class HostClock:
    """``time.perf_counter`` around the calls: right for synchronous (CPU) work."""

    def time_block(self, fn: Callable[[], object], number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - start


class CudaEventClock:
    """CUDA events recorded on the current stream around the calls, after a sync."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time_block(self, fn: Callable[[], object], number: int) -> float:
        torch.cuda.synchronize(self.device)
        self.start.record()
        for _ in range(number):
            fn()
        self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1e3  # elapsed_time is in milliseconds


def clock_for(device: torch.device) -> Clock:
    """The right clock for ``device``."""
    if device.type == "cuda":
        return CudaEventClock(device)
    if device.type == "cpu":
        return HostClock()
    raise CostnetError(f"unsupported device {str(device)!r}: use cpu or cuda[:N]")


_FIELD_KINDS = {"int": (int, "an integer"), "float": ((int, float), "a number"), "str": (str, "a string"),
                "int | None": ((int, type(None)), "an integer or null")}


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to time one configuration (see conf/timing/)."""

    warmup_runs: int = 2  # calls before timing (allocations, kernel selection, caches)
    min_runs: int = 5  # samples always taken
    max_runs: int = 50  # samples never exceeded
    rel_spread: float = 0.05  # stop once spread / median is at most this
    spread: str = "iqr"  # "iqr" or "std"
    min_block_s: float = 1e-3  # a block lasts at least this long (sets calls per block)
    budget_s: float = 0.25  # stop once this much time was spent in timed blocks
    number: int | None = None  # fixed calls per block (None: chosen from min_block_s)
    max_wait: float = 0.02  # a block whose threads waited for a CPU longer than this share of it is disturbed
    retries: int = 20  # disturbed blocks re-timed per configuration before it is kept, flagged
    max_others: float = 0.25  # cores other processes may use while a configuration is timed before it is flagged
    others_window_s: float = 0.5  # over the last this many seconds (kernel CPU accounting is in 10 ms ticks)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kinds, what = _FIELD_KINDS[f.type]
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise CostnetError(f"timing.{f.name} must be {what}, got {value!r}")
        if self.warmup_runs < 0:
            raise CostnetError(f"timing.warmup_runs must be >= 0, got {self.warmup_runs}")
        if not 1 <= self.min_runs <= self.max_runs:
            raise CostnetError(f"timing needs 1 <= min_runs <= max_runs, got "
                               f"min_runs={self.min_runs}, max_runs={self.max_runs}")
        if self.spread not in ("iqr", "std"):
            raise CostnetError(f"timing.spread must be 'iqr' or 'std', got {self.spread!r}")
        if self.retries < 0:
            raise CostnetError(f"timing.retries must be >= 0, got {self.retries}")
        for key in ("rel_spread", "min_block_s", "budget_s", "max_wait", "max_others", "others_window_s"):
            if getattr(self, key) < 0:
                raise CostnetError(f"timing.{key} must be >= 0, got {getattr(self, key)}")
        if self.number is not None and self.number < 1:
            raise CostnetError(f"timing.number must be >= 1 or null, got {self.number}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TimingConfig:
        """From a conf/timing node; an unknown key is an error naming it."""
        if unknown := sorted(set(cfg) - {f.name for f in fields(cls)}):
            raise CostnetError(f"unknown timing option(s) {unknown}: choose from {[f.name for f in fields(cls)]}")
        return cls(**cfg)


@dataclass(frozen=True)
class Measurement:
    """Per-call times (seconds) of each sample, and how they were taken."""

    samples: tuple[float, ...]
    number: int  # calls per sample
    timed_s: float  # total time inside timed blocks, warm-up excluded
    warmup_s: float
    converged: bool  # spread reached the threshold
    retimed: int = 0  # disturbed blocks timed again
    disturbed: bool = False  # disturbed blocks are among the samples, or other processes were busy
    wait_share: float | None = None  # run-queue wait of this process's threads / timed time; None unknown
    others_cores: float = 0.0  # cores other processes used while timing

    def stats_ms(self) -> dict[str, float | int]:
        """Median, mean, min, max, std and IQR in milliseconds, and the sample count."""
        t = np.asarray(self.samples) * 1e3
        q1, q3 = np.percentile(t, [25, 75])
        return {
            "time_median_ms": float(np.median(t)),
            "time_mean_ms": float(t.mean()),
            "time_min_ms": float(t.min()),
            "time_max_ms": float(t.max()),
            "time_std_ms": float(t.std(ddof=1)) if len(t) > 1 else 0.0,
            "time_iqr_ms": float(q3 - q1),
            "n_runs": len(t),
            "n_inner": self.number,
            "retimed_blocks": self.retimed,
            "disturbed": self.disturbed,
            "wait_share": self.wait_share,
            "others_cores": self.others_cores,
        }


def relative_spread(samples: list[float], kind: str) -> float:
    """Spread of ``samples`` relative to their median (inf with fewer than 2)."""
    if len(samples) < 2:
        return math.inf
    t = np.asarray(samples)
    median = float(np.median(t))
    if median <= 0:
        return math.inf
    if kind == "iqr":
        q1, q3 = np.percentile(t, [25, 75])
        return float(q3 - q1) / median
    return float(t.std(ddof=1)) / median


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Keep Python's garbage collector out of timed regions (as timeit does)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def measure(fn: Callable[[], object], cfg: TimingConfig, clock: Clock,
            context: Callable[[], ContextManager[object]] = contextlib.nullcontext,
            probe: Probe | None = None) -> Measurement:
    """Warm ``fn`` up, then time it in blocks until spread or budget says stop.

    ``context`` (e.g. ``torch.inference_mode``) is entered once around all calls,
    so its cost stays out of the timed blocks. ``probe`` reads the scheduler's counters
    between blocks (one made here if not given; a caller timing many configurations passes
    one made with ``cfg.others_window_s``); disturbed blocks are re-timed.
    """
    with contextlib.ExitStack() as stack:
        if probe is None:
            probe = stack.enter_context(Probe(cfg.others_window_s))
        stack.enter_context(context())
        stack.enter_context(_gc_paused())
        result = _measure(fn, cfg, clock, probe)
    return result


def _measure(fn: Callable[[], object], cfg: TimingConfig, clock: Clock, probe: Probe) -> Measurement:
    """The timing loop of :func:`measure`, inside its contexts."""
    warmup_start = time.perf_counter()
    per_call = clock.time_block(fn, 1) if cfg.warmup_runs else 0.0
    if cfg.warmup_runs > 1:
        per_call = clock.time_block(fn, cfg.warmup_runs - 1) / (cfg.warmup_runs - 1)
    warmup_s = time.perf_counter() - warmup_start
    if cfg.number is not None:
        number = cfg.number
    else:
        if per_call <= 0:  # no warm-up: probe one call to size the blocks
            per_call = clock.time_block(fn, 1)
        number = max(1, math.ceil(cfg.min_block_s / max(per_call, 1e-9)))
    samples: list[float] = []
    timed = 0.0
    spread = math.inf
    first = before = probe.read()
    retimed, giving_up = 0, False
    while len(samples) < cfg.max_runs:
        block = clock.time_block(fn, number)
        after = probe.read()
        timed += block
        quiet, before = not disturbed(before, after, block, cfg.max_wait), after
        if not quiet and not giving_up:
            if retimed < cfg.retries and probe.others() <= cfg.max_others:
                retimed += 1
                continue
            # out of retries, or neighbours busy all along (the row will be flagged whatever
            # its blocks say): from here on every block is kept, and the measurement says so
            giving_up = True
        samples.append(block / number)
        if len(samples) >= cfg.min_runs:
            spread = relative_spread(samples, cfg.spread)
            if spread <= cfg.rel_spread or timed >= cfg.budget_s:
                break
    wait = None if first.wait_s is None or after.wait_s is None else (after.wait_s - first.wait_s) / max(timed, 1e-12)
    busy = probe.others()
    return Measurement(tuple(samples), number, timed, warmup_s, converged=spread <= cfg.rel_spread,
                       retimed=retimed, disturbed=giving_up or busy > cfg.max_others, wait_share=wait,
                       others_cores=busy)
