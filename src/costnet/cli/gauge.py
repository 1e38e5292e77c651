"""``costnet-gauge``: AI Gauge-style runtime and cost estimates (Hydra config conf/gauge.yaml).

``mode=online``: remaining time and ETA of a running job from its log; ``mode=offline``: runtime
and cost of a job on every configuration of the gauge catalog, with the Pareto-optimal ones.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import Any

from omegaconf import DictConfig, OmegaConf

from costnet.cli.common import artifact_arguments, run_hydra
from costnet.errors import CostnetError
from costnet.networks.estimate import Setting, read_predictors
from costnet.gauge.offline import (
    Job,
    load_offerings,
    pareto_front,
    StepTime,
    network_step_time,
    predict_configurations,
    roofline_step_time,
    write_outputs,
)
from costnet.gauge.online import (
    Estimate,
    estimate_remaining,
    on_other_hardware,
    read_log,
    speed_ratio,
    steps_per_epoch,
)

MODES = ("online", "offline")
PARETO_COLUMNS = ["gpu", "count", "link", "steps_per_epoch", "compute_ms", "comm_ms", "step_ms", "runtime_h",
                  "price_per_hour", "cost_usd"]


def _required(cfg: DictConfig, *keys: str) -> None:
    missing = [k for k in keys if cfg.get(k) is None]
    if missing:
        raise CostnetError(f"mode={cfg.mode} needs {', '.join(f'{k}=...' for k in missing)}")


def _integer(value: Any, name: str) -> int:
    """``value`` as an int; Hydra reads 1.28e6 as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise CostnetError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 60 else str(timedelta(seconds=round(seconds)))


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _remaining_lines(est: Estimate, band: tuple[float, ...]) -> list[str]:
    low, high = est.eta_band
    return [(f"{'remaining':<16}{_duration(est.remaining_s)}  [{_duration(est.remaining_low_s)}, "
             f"{_duration(est.remaining_high_s)}] (window's per-step-time quantiles {band[0]:g}, {band[1]:g})"),
            f"{'ETA':<16}{_when(est.eta)}  [{_when(low)}, {_when(high)}]"]


def _speed_ratio(cfg: DictConfig) -> float | None:
    """speed_ratio=X as given, or the cost model's ratio of the network's step on device and target."""
    if cfg.target is None:
        return None if cfg.speed_ratio is None else float(cfg.speed_ratio)
    if cfg.speed_ratio is not None:
        raise CostnetError("give either speed_ratio=X or target=DEVICE, not both")
    _required(cfg, "network")
    setting = Setting(str(cfg.step), str(cfg.optimizer), "float32", float(cfg.ppp), float(cfg.ppp), bool(cfg.compute_floor))
    step, _ = network_step_time(str(cfg.network), read_predictors([str(p) for p in cfg.models]), setting)
    batch = _integer(cfg.batch_size, "batch_size")
    here, there = step(str(cfg.device), batch), step(str(cfg.target), batch)
    print(f"predicted {cfg.network} step at batch {batch}: {here:.4g} ms on {cfg.device}, {there:.4g} ms on "
          f"{cfg.target}")
    return speed_ratio(here, there)


def _online(cfg: DictConfig) -> None:
    _required(cfg, "log")
    if (cfg.total_steps is None) == (cfg.total_epochs is None):
        raise CostnetError("mode=online needs one of total_steps=N or total_epochs=N")
    progress = read_log(str(cfg.log), cfg.time_column)
    if cfg.total_steps is not None:
        total = _integer(cfg.total_steps, "total_steps")
    else:
        per_epoch = (_integer(cfg.steps_per_epoch, "steps_per_epoch") if cfg.steps_per_epoch is not None
                     else steps_per_epoch(progress))
        total = round(float(cfg.total_epochs) * per_epoch)
    band = tuple(float(q) for q in cfg.band)
    if len(band) != 2:
        raise CostnetError(f"band must be two quantiles, e.g. band=[0.1,0.9]; got {list(band)}")
    est = estimate_remaining(progress, total, cfg.window, band)
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


def _offline_step(cfg: DictConfig, job: Job) -> tuple[StepTime, float, str]:
    """The step-time predictor, the gradient bytes and a line saying which model gives the step."""
    if cfg.network is not None:
        setting = Setting(str(cfg.step), str(cfg.optimizer), "float32", float(cfg.ppp), float(cfg.ppp), bool(cfg.compute_floor))
        predictors = read_predictors([str(p) for p in cfg.models])
        step, params = network_step_time(str(cfg.network), predictors, setting)
        ops = sorted({p.op for p in predictors})
        how = (f"{cfg.network} ({params / 1e6:.1f} M parameters), batch {job.batch_size} per GPU: layer-sum of "
               f"{'cost models for ' + ', '.join(ops) if ops else 'no cost models'}; other layers analytical "
               f"at ppp={float(cfg.ppp):g}")
        return step, params * float(cfg.bytes_per_param), how
    step = roofline_step_time(float(cfg.flops_per_sample), float(cfg.bytes_per_sample), float(cfg.ppp))
    return step, float(cfg.params) * float(cfg.bytes_per_param), f"roofline of the job's totals at ppp={float(cfg.ppp):g}"


def _offline(cfg: DictConfig) -> None:
    if cfg.network is None:
        _required(cfg, "flops_per_sample", "bytes_per_sample", "params", "dataset_size", "epochs")
    else:
        _required(cfg, "dataset_size", "epochs")
    offerings = load_offerings(cfg.catalog)
    if cfg.gpus is not None:
        wanted = [cfg.gpus] if isinstance(cfg.gpus, str) else list(OmegaConf.to_container(cfg.gpus))
        unknown = sorted(set(wanted) - {o.gpu for o in offerings})
        if unknown:
            raise CostnetError(f"gpus {unknown} are not in the gauge catalog {[o.gpu for o in offerings]}")
        offerings = [o for o in offerings if o.gpu in wanted]
    job = Job(_integer(cfg.batch_size, "batch_size"), _integer(cfg.dataset_size, "dataset_size"),
              float(cfg.epochs))
    predictor, gradient_bytes, how = _offline_step(cfg, job)
    print(f"step time: {how}")
    table = predict_configurations(predictor, gradient_bytes, job, offerings, str(cfg.comm_scheme),
                                   float(cfg.ppp_comm))
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
    sys.argv = artifact_arguments(sys.argv)
    run_hydra("gauge", _task)


if __name__ == "__main__":
    main()
