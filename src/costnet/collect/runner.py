"""Collect a dataset: draw configurations, time each on one device, store rows.

A run is identified by ``run_key``, a hash of everything that defines it except
its size ``n``; starting the same run again skips the configurations already
stored and continues up to ``n``.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from costnet.collect.memory import estimate_bytes
from costnet.config import float_option, int_option
from costnet.data.store import HARDWARE_DIR, RUNS_DIR, DatasetStore, ensure_writable
from costnet.errors import CostnetError
from costnet.hardware import fingerprint, software_versions
from costnet.sampling.space import Plan, load_space
from costnet.timing import TimingConfig, clock_for, make_workload, measure, torch_dtype
from costnet.timing.interference import Probe, others_cores
from costnet.timing.workload import TRAIN_STEP, OptimizerFactory, cuda_float32, optimizer_factory


@dataclass
class Summary:
    """What a collection run did."""

    out: Path
    run_key: str
    hardware_id: str
    requested: int
    already_done: int
    written: int = 0
    errors: int = 0
    skipped: int = 0
    timed_s: float = 0.0
    loop_s: float = 0.0
    startup_s: float = 0.0
    disturbed: int = 0  # rows whose samples include blocks other work disturbed
    retimed: int = 0  # disturbed blocks dropped and timed again
    others_cores: float = 0.0  # the most cores other processes used in one check
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def efficiency(self) -> float:
        """Time inside timed regions / wall time of the collection loop."""
        return self.timed_s / self.loop_s if self.loop_s > 0 else 0.0

    def lines(self) -> list[str]:
        rate = 60 * self.written / self.loop_s if self.loop_s > 0 else 0.0
        timed = self.written - self.errors - self.skipped
        lines = [
            f"dataset      {self.out}",
            f"run          {self.run_key} on {self.hardware_id}",
            f"rows written {self.written} this run ({self.already_done} already stored, "
            f"{self.requested} requested)",
            f"failures     {self.errors} errors, {self.skipped} skipped by the memory guard",
            f"disturbed    {self.disturbed} of {timed} timed rows ({100 * self.disturbed / max(timed, 1):.1f} %) "
            f"flagged disturbed=true; {self.retimed} disturbed blocks re-timed; other processes used up to "
            f"{self.others_cores:.2f} cores",
            f"rate         {rate:.1f} configurations/min",
            f"efficiency   {self.efficiency:.3f} (timed {self.timed_s:.1f} s / loop wall "
            f"{self.loop_s:.1f} s; start-up {self.startup_s:.1f} s not counted)",
        ]
        lines += [f"  {count:5d} x {kind}" for kind, count in
                  sorted(self.error_kinds.items(), key=lambda kv: -kv[1])[:5]]
        return lines


def resolve_device(name: str) -> torch.device:
    """The torch device called ``name``, checked to exist."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise CostnetError(f"unknown device {name!r}: use cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CostnetError(f"device {name!r} requested but CUDA is not available here")
    if device.type not in ("cpu", "cuda"):
        raise CostnetError(f"unsupported device {name!r}: use cpu or cuda[:N]")
    return device


def drawn_optimizers(cfg: DictConfig) -> tuple[str, ...]:
    """The optimizers a run draws from: ``use_optimizers`` if given, else all configured."""
    names = tuple(cfg.get("use_optimizers") or cfg.optimizers)
    if unknown := [n for n in names if n not in cfg.optimizers]:
        raise CostnetError(f"use_optimizers names unknown optimizers {unknown}: choose from {list(cfg.optimizers)}")
    return names


def _slice(cfg: DictConfig) -> tuple[int, int]:
    """(shards, shard): this job collects the run's configurations j with j mod shards == shard
    (the same configurations, keys and row ids as the single-process run)."""
    slices = int_option(cfg, "shards", minimum=1)
    part = int_option(cfg, "shard", minimum=0)
    if part >= slices:
        raise CostnetError(f"shard must be in [0, shards), got shard={part} with shards={slices}")
    return slices, part


def run_key(cfg: DictConfig, hardware_id: str) -> str:
    """Hash of what defines a run: space, timing, mix, dtypes, seed, guard, machine."""
    keyed = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
             for k in ("space", "timing", "modes", "optimizers", "dtypes", "seed", "memory_budget_gb")}
    keyed["hardware_id"] = hardware_id
    if (keyed["modes"] or {}).get("train", 0) > 0:  # runs with training rows only: forward-only keys stay valid
        keyed["train_step"] = TRAIN_STEP
    if cfg.get("use_optimizers"):  # only when set, so the keys of earlier runs stay valid
        keyed["use_optimizers"] = list(cfg.use_optimizers)
    if str(cfg.device).startswith("cuda"):  # CUDA runs only, so the keys of CPU runs stay valid:
        keyed["tf32"] = bool(cfg.get("tf32", False))  # TF32 rows never resume a true-fp32 run
    return hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so buffered rows get flushed on the way out."""
    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Neighbours:
    """Warns (once per episode) when other processes compete for the cores while collecting."""

    def __init__(self, limit: float, write: Callable[[str], None]) -> None:
        self.limit, self.write, self.warned, self.peak = limit, write, False, 0.0
        self.probe = Probe()
        self.last = self.probe.read()

    def check(self, when: str) -> None:
        now = self.probe.read()
        cores, self.last = others_cores(self.last, now), now
        self.peak = max(self.peak, cores)
        if cores > self.limit and not self.warned:
            self.write(f"costnet: warning: other processes used {cores:.2f} of {psutil.cpu_count()} cores {when}; "
                       f"timings will be disturbed (re-timed or flagged disturbed=true); run costnet-collect "
                       f"on an idle machine")
        self.warned = cores > self.limit


def collect(cfg: DictConfig) -> Summary:
    """Run one collection as configured (see conf/collect.yaml)."""
    started = time.perf_counter()
    neighbours = Neighbours(float(cfg.others_warning), lambda line: tqdm.write(line, file=sys.stderr))
    out = Path(str(cfg.out)).expanduser()
    n, seed = int_option(cfg, "n", minimum=0), int_option(cfg, "seed", minimum=0)
    flush_every, flush_seconds = int_option(cfg, "flush_every"), float_option(cfg, "flush_seconds")
    threads = int_option(cfg, "threads", optional=True) or torch.get_num_threads()
    budget = float_option(cfg, "memory_budget_gb") * 2**30
    ensure_writable(out)
    space = load_space(cfg.space)
    plan = Plan(space, seed, dict(cfg.modes), drawn_optimizers(cfg), tuple(cfg.dtypes))
    timing = TimingConfig.from_config(OmegaConf.to_container(cfg.timing, resolve=True))
    device = resolve_device(str(cfg.device))
    if device.type == "cuda":
        cuda_float32(tf32=bool(cfg.get("tf32", False)))
    torch.set_num_threads(threads)
    hardware = fingerprint(device, threads, measure=bool(cfg.measure_peaks))
    key = run_key(cfg, hardware["hardware_id"])
    slices, part = _slice(cfg)
    store = DatasetStore(out, space.name, key, f"{part}of{slices}" if slices > 1 else "")
    common = {"run_key": key, "seed": seed, "device": str(device),
              "hardware_id": hardware["hardware_id"], "threads": threads, **software_versions()}
    make_optimizer = optimizer_factory(cfg.optimizers)
    clock = clock_for(device)

    with store.locked(), _sigterm_as_exit(), Probe(timing.others_window_s) as probe:
        store.write_json(f"{HARDWARE_DIR}/{hardware['hardware_id']}.json", hardware)
        store.write_json(f"{RUNS_DIR}/{key}.json", OmegaConf.to_container(cfg, resolve=True))
        done = store.finished()
        mine = range(part, n, slices)
        todo = [i for i in mine if i not in done]
        summary = Summary(out, key, hardware["hardware_id"], len(mine), len(done & set(mine)))
        summary.startup_s = time.perf_counter() - started
        neighbours.check("while costnet-collect started")
        loop_start = time.perf_counter()
        buffer: list[dict[str, Any]] = []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal last_flush
            if buffer:
                store.append(buffer, space.op.columns)
                summary.written += len(buffer)
                buffer.clear()
            last_flush = time.monotonic()
            neighbours.check("in the last stretch of timing")

        bar = tqdm(todo, desc=f"collect {space.name}", unit="cfg", disable=not cfg.progress,
                   dynamic_ncols=True)
        try:
            for index in bar:
                row = time_configuration(plan.config(index), plan, timing, device, clock,
                                         make_optimizer, budget, probe)
                row.update(common, row_id=f"{key}-{index}")
                buffer.append(row)
                summary.timed_s += row.pop("_timed_s")
                summary.disturbed += bool(row.get("disturbed"))
                summary.retimed += int(row.get("retimed_blocks") or 0)
                if row["status"] != "ok":
                    summary.errors += row["status"] == "error"
                    summary.skipped += row["status"] == "skipped"
                    kind = row["error"].split(":", 1)[0]
                    summary.error_kinds[kind] = summary.error_kinds.get(kind, 0) + 1
                    bar.set_postfix(failed=summary.errors + summary.skipped, refresh=False)
                if len(buffer) >= flush_every or time.monotonic() - last_flush >= flush_seconds:
                    flush()
        finally:
            bar.close()
            flush()
            summary.loop_s = time.perf_counter() - loop_start
            summary.others_cores = neighbours.peak
    return summary


def time_configuration(cfg: dict[str, Any], plan: Plan, timing: TimingConfig, device: torch.device,
                       clock: Any, make_optimizer: OptimizerFactory, budget_bytes: float,
                       probe: Probe | None = None) -> dict[str, Any]:
    """Time one configuration; failures become rows with status and error."""
    start = time.perf_counter()
    op = plan.space.op
    row: dict[str, Any] = dict(cfg, status="ok", error=None, _timed_s=0.0)
    try:
        dtype = torch_dtype(cfg["dtype"])
        row["est_bytes"] = estimate_bytes(op, cfg, dtype)
        if row["est_bytes"] > budget_bytes:
            row.update(status="skipped", error=f"memory guard: needs ~{row['est_bytes'] / 2**30:.2f} GiB "
                       f"> budget {budget_bytes / 2**30:.2f} GiB")
        else:
            torch.manual_seed(cfg["index"])
            workload = make_workload(op, cfg, device, make_optimizer)
            result = measure(workload.step, timing, clock, workload.context, probe)
            del workload
            row.update(result.stats_ms(), converged=result.converged, timed_s=result.timed_s)
            row["_timed_s"] = result.timed_s
    except CostnetError:
        raise
    except Exception as exc:  # a failing configuration is data, not a crash
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        row.update(status="error", error=f"{type(exc).__name__}: {message}"[:500])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row["wall_s"] = time.perf_counter() - start
    row["timestamp"] = datetime.now(timezone.utc)
    return row
