"""``costnet-gauge``: AI Gauge-style runtime and cost estimates (Hydra config conf/gauge.yaml).

``mode=online``: remaining time and ETA of a running job from its log; ``mode=offline``: runtime
and cost of a job on every configuration of the gauge catalog, with the Pareto-optimal ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from costnet.cli.common import path_list, run_hydra
from costnet.config import float_option, int_option
from costnet.data.store import ensure_writable
from costnet.errors import CostnetError
from costnet.gauge.offline import (
    Job,
    load_offerings,
    pareto_front,
    predict_configurations,
    select_offerings,
    write_outputs,
)
from costnet.gauge.online import (
    Estimate,
    estimate_remaining,
    on_other_hardware,
    read_log,
    speed_ratio,
    total_steps_of_epochs,
)
from costnet.gauge.step import JobStep, network_step, totals_step
from costnet.networks.estimate import Setting

MODES = ("online", "offline")
PARETO_COLUMNS = ["gpu", "count", "link", "steps_per_epoch", "compute_ms", "comm_ms", "step_ms", "runtime_h",
                  "price_per_hour", "cost_usd"]


def _required(cfg: DictConfig, *keys: str) -> None:
    missing = [k for k in keys if cfg.get(k) is None]
    if missing:
        raise CostnetError(f"mode={cfg.mode} needs {', '.join(f'{k}=...' for k in missing)}")


def _duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 60 else str(timedelta(seconds=round(seconds)))


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _remaining_lines(est: Estimate, band: tuple[float, ...]) -> list[str]:
    low, high = est.eta_band
    return [(f"{'remaining':<16}{_duration(est.remaining_s)}  [{_duration(est.remaining_low_s)}, "
             f"{_duration(est.remaining_high_s)}] (window's per-step-time quantiles {band[0]:g}, {band[1]:g})"),
            f"{'ETA':<16}{_when(est.eta)}  [{_when(low)}, {_when(high)}]"]


def _network_step(cfg: DictConfig) -> JobStep:
    """The layer sum of ``cfg.network`` from the cost models ``cfg.model``."""
    ppp = float_option(cfg, "ppp")
    setting = Setting(str(cfg.step), str(cfg.optimizer), "float32", ppp, ppp, bool(cfg.compute_floor))
    return network_step(str(cfg.network), path_list(cfg.model), setting, float_option(cfg, "bytes_per_param"))


def _speed_ratio(cfg: DictConfig) -> float | None:
    """speed_ratio=X as given, or the cost model's ratio of the network's step on device and target."""
    if cfg.target is None:
        return float_option(cfg, "speed_ratio", optional=True)
    if cfg.speed_ratio is not None:
        raise CostnetError("give either speed_ratio=X or target=DEVICE, not both")
    _required(cfg, "network")
    step = _network_step(cfg).time_ms
    batch = int_option(cfg, "batch_size")
    here, there = step(str(cfg.hardware), batch), step(str(cfg.target), batch)
    print(f"predicted {cfg.network} step at batch {batch}: {here:.4g} ms on {cfg.hardware}, {there:.4g} ms on "
          f"{cfg.target}")
    return speed_ratio(here, there)


def _band(value: Any) -> tuple[float, float]:
    """``band=[low,high]``: two quantiles as numbers (their range is checked by the estimate)."""
    items = list(value) if isinstance(value, ListConfig) else [value]
    if len(items) != 2 or any(isinstance(q, bool) or not isinstance(q, (int, float)) for q in items):
        raise CostnetError(f"band must be two quantiles, e.g. band=[0.1,0.9]; got {value!r}")
    return float(items[0]), float(items[1])


def _online(cfg: DictConfig) -> None:
    _required(cfg, "log")
    if (cfg.total_steps is None) == (cfg.total_epochs is None):
        raise CostnetError("mode=online needs one of total_steps=N or total_epochs=N")
    progress = read_log(str(cfg.log), cfg.time_column)
    if cfg.total_steps is not None:
        total = int_option(cfg, "total_steps")
    else:
        total = total_steps_of_epochs(progress, float_option(cfg, "total_epochs"),
                                      int_option(cfg, "steps_per_epoch", optional=True))
    band = _band(cfg.band)
    est = estimate_remaining(progress, total, int_option(cfg, "window"), band)
    lines = [(f"{'log':<16}{cfg.log}: {len(progress.steps)} records, steps {int(progress.steps[0])}.."
              f"{est.steps_done}"),
             (f"{'elapsed':<16}{_duration(est.elapsed_s)} at step {est.steps_done} of {est.total_steps} "
              f"({100 * est.steps_done / est.total_steps:.1f}%), last record {_when(est.last_record_at)}"),
             (f"{'rate':<16}{est.rate_steps_per_s:.4g} steps/s ({1e3 * est.step_time_s:.4g} ms/step, moving "
              f"average over the last {est.window} log intervals)"),
             *_remaining_lines(est, band)]
    ratio = _speed_ratio(cfg)
    if ratio is not None:
        other = on_other_hardware(est, ratio)
        where = f"on {cfg.target}" if cfg.target is not None else "on hardware"
        lines += [f"{where} {ratio:.3g}x as fast (rest of the run):",
                  f"{'rate':<16}{other.rate_steps_per_s:.4g} steps/s ({1e3 * other.step_time_s:.4g} ms/step)",
                  *_remaining_lines(other, band)]
    print("\n".join(lines))


def _step_source(cfg: DictConfig, step: JobStep, batch: int) -> str:
    """Which model gives the step, in words."""
    if step.ops is None:
        return f"roofline of the job's totals at ppp={float_option(cfg, 'ppp'):g}"
    models = "cost models for " + ", ".join(step.ops) if step.ops else "no cost models"
    return (f"{cfg.network} ({step.params / 1e6:.1f} M parameters), batch {batch} per GPU: layer-sum of {models}; "
            f"other layers analytical at ppp={float_option(cfg, 'ppp'):g}")


def _offline(cfg: DictConfig) -> None:
    if cfg.out:
        ensure_writable(Path(str(cfg.out)))
    if cfg.network is None:
        _required(cfg, "flops_per_sample", "bytes_per_sample", "params", "dataset_size", "epochs")
    else:
        _required(cfg, "dataset_size", "epochs")
    gpus = None if cfg.gpus is None else [cfg.gpus] if isinstance(cfg.gpus, str) else list(cfg.gpus)
    offerings = select_offerings(load_offerings(cfg.catalog), gpus)
    job = Job(int_option(cfg, "batch_size"), int_option(cfg, "dataset_size"), float_option(cfg, "epochs"))
    step = (_network_step(cfg) if cfg.network is not None else
            totals_step(*(float_option(cfg, k) for k in ("flops_per_sample", "bytes_per_sample", "params",
                                                          "bytes_per_param", "ppp"))))
    print(f"step time: {_step_source(cfg, step, job.batch_size)}")
    table = predict_configurations(step.time_ms, step.gradient_bytes, job, offerings, str(cfg.comm_scheme),
                                   float_option(cfg, "ppp_comm"))
    front = pareto_front(table)
    print(f"{len(table)} configurations, {len(front)} Pareto-optimal (runtime and cost both minimal):")
    print(front[PARETO_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if cfg.out:
        for path in write_outputs(table, str(cfg.out)):
            print(f"wrote {path}")


def _task(cfg: DictConfig) -> None:
    if cfg.mode not in MODES:
        raise CostnetError(f"unknown mode {cfg.mode!r}; known: {', '.join(MODES)}")
    (_online if cfg.mode == "online" else _offline)(cfg)


def main() -> None:
    run_hydra("gauge", _task)


if __name__ == "__main__":
    main()
