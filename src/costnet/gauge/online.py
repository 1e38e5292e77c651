"""Remaining time of a running training job from its log (AI Gauge's online estimate).

Dube et al., "AI Gauge: Runtime Estimation for Deep Learning in the Cloud", SBAC-PAD 2019,
estimate a running job's remaining time from its progress so far: the time per iteration
over a window of the most recent iterations (a window-based moving average), times the
iterations left; they report under 10% relative error. This module does that from a log
of (step, wall-clock time) records.

Logs read by :func:`read_log`:

* a plain CSV with columns ``step,time``: ``step`` counts the optimizer steps completed at
  ``time``, which is seconds since the start or a UNIX timestamp (an ISO date-time works too);
* a Lightning ``CSVLogger`` ``metrics.csv`` (columns ``step``, ``epoch`` and the metrics).
  Lightning writes no wall-clock column, so the run must log one named ``time``,
  ``timestamp`` or ``created_at``. Log it through the logger, not ``self.log`` (which
  stores float32: a UNIX time would lose two minutes), e.g. with this callback::

      class WallClock(lightning.pytorch.Callback):
          def on_train_batch_end(self, trainer, *args):
              trainer.logger.log_metrics({"time": time.time(), "epoch": trainer.current_epoch},
                                         step=trainer.global_step)

  Rows without a time (the metrics rows) are skipped; several rows at one step count once,
  with the last time.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from costnet.errors import CostnetError
from costnet.files import read_text

TIME_COLUMNS: tuple[str, ...] = ("time", "timestamp", "created_at")
# Numeric times above this are UNIX timestamps (1e9 s is 2001-09-09); smaller ones count seconds
# since the start (no run lasts 31 years).
UNIX_TIME_MIN_S = 1e9


@dataclass(frozen=True)
class Progress:
    """A job's progress: completed steps against wall-clock seconds, both increasing."""

    steps: np.ndarray
    times_s: np.ndarray
    epochs: np.ndarray | None  # the epoch of each record, where the log has them
    elapsed_s: float  # from the start (relative times) or from the first record (UNIX times)
    last_record_at: datetime  # wall clock of the last record


@dataclass(frozen=True)
class Estimate:
    """Remaining time from a moving average of recent step times, with a band."""

    steps_done: int
    total_steps: int
    elapsed_s: float
    step_time_s: float  # moving average over the window
    remaining_s: float
    remaining_low_s: float
    remaining_high_s: float
    window: int  # log intervals averaged
    last_record_at: datetime

    @property
    def rate_steps_per_s(self) -> float:
        return 1.0 / self.step_time_s

    @property
    def eta(self) -> datetime:
        return self.last_record_at + timedelta(seconds=self.remaining_s)

    @property
    def eta_band(self) -> tuple[datetime, datetime]:
        return (self.last_record_at + timedelta(seconds=self.remaining_low_s),
                self.last_record_at + timedelta(seconds=self.remaining_high_s))


def _time_column(columns: list[str], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise CostnetError(f"log {str(path)!r} has no time column {wanted!r}; its columns: {columns}")
        return wanted
    for name in TIME_COLUMNS:
        if name in columns:
            return name
    raise CostnetError(
        f"log {str(path)!r} has no wall-clock column ({', '.join(TIME_COLUMNS)}); its columns: {columns}. "
        "Lightning's CSVLogger writes none by default: log one, e.g. trainer.logger.log_metrics("
        "{'time': time.time()}, step=trainer.global_step) in a callback's on_train_batch_end")


def _seconds(values: pd.Series, column: str, path: Path) -> np.ndarray:
    """Times as float seconds: numbers as they are, date-time strings as UNIX seconds; NaN
    where a value is neither (the caller names its line)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().any():
        return numeric.to_numpy(dtype=float)
    stamps = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    if stamps.isna().all():
        raise CostnetError(f"log {str(path)!r}: column {column!r} holds values that are neither numbers nor "
                           f"ISO date-times, e.g. {str(values.iloc[0])!r}")
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)


def _non_monotonic(values: np.ndarray) -> int | None:
    """Index of the first value smaller than the one before it, or None."""
    drops = np.flatnonzero(np.diff(values) < 0)
    return int(drops[0]) + 1 if drops.size else None


def _refuse_bad_values(values: np.ndarray, raw: pd.Series, name: str, lines: np.ndarray, path: Path) -> None:
    """Stop at the first value that is not a finite number >= 0, naming its line."""
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        raise CostnetError(f"log {str(path)!r}: line {lines[bad[0]]}: {name} {str(raw.iloc[bad[0]])!r} is not a "
                           "finite number >= 0")


def read_log(path: str | Path, time_column: str | None = None) -> Progress:
    """The (step, time) records of a ``step,time`` CSV or a Lightning ``metrics.csv``."""
    path = Path(path)
    text = read_text(path, "log")
    try:  # only empty cells are missing: a written nan is a bad value, not a skipped row
        frame = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as exc:
        raise CostnetError(f"log {str(path)!r} is empty") from exc
    except pd.errors.ParserError as exc:
        raise CostnetError(f"log {str(path)!r} cannot be read as CSV: {exc}") from exc
    columns = [str(c) for c in frame.columns]
    if "step" not in columns:
        raise CostnetError(f"log {str(path)!r} has no 'step' column; its columns: {columns}")
    column = _time_column(columns, time_column, path)
    frame = frame[frame[column].notna() & frame["step"].notna()]
    if frame.empty:
        raise CostnetError(f"log {str(path)!r} has no rows with both a step and a {column!r}")
    lines = frame.index.to_numpy() + 2  # read_csv numbers data rows from 0; line 1 is the header
    steps = pd.to_numeric(frame["step"], errors="coerce").to_numpy(dtype=float)
    times = _seconds(frame[column], column, path)
    _refuse_bad_values(steps, frame["step"], "step", lines, path)
    _refuse_bad_values(times, frame[column], column, lines, path)
    for name, values in (("time", times), ("step", steps)):
        if (row := _non_monotonic(values)) is not None:
            raise CostnetError(f"log {str(path)!r}: non-monotonic {name} at line {lines[row]}: "
                               f"{float(values[row])!r} after {float(values[row - 1])!r} (one run per log, please)")
    # several rows at one step (train and validation metrics) count once, with the last time
    last = np.append(steps[1:] != steps[:-1], True)
    epochs = pd.to_numeric(frame["epoch"], errors="coerce").to_numpy()[last] if "epoch" in columns else None
    steps, times = steps[last], times[last]
    absolute = times[0] > UNIX_TIME_MIN_S or not pd.api.types.is_numeric_dtype(frame[column])
    if absolute:
        last_at = datetime.fromtimestamp(times[-1], tz=timezone.utc)
        elapsed = times[-1] - times[0]
    else:  # relative times: the log file was last written with its last record
        last_at = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        elapsed = times[-1]
    return Progress(steps, times, epochs, float(elapsed), last_at)


def steps_per_epoch(progress: Progress) -> int:
    """Steps per epoch from the log's ``epoch`` column: the last step of the completed epochs
    over their number (exact when the time rows are written at every step, as by the
    callback in this module's docstring; otherwise off by up to the logging interval)."""
    if progress.epochs is None or np.isnan(progress.epochs).all():
        raise CostnetError("the log has no epoch column: give steps_per_epoch to count total_epochs")
    epochs = progress.epochs
    current = int(np.nanmax(epochs))
    if current < 1:
        raise CostnetError("the log has not completed an epoch yet: give steps_per_epoch to count total_epochs")
    completed = epochs < current
    if not completed.any():
        raise CostnetError("the log has no timed records in completed epochs: give steps_per_epoch to count "
                           "total_epochs")
    return round(float(progress.steps[completed].max()) / current)



def total_steps_of_epochs(progress: Progress, epochs: float, per_epoch: int | None = None) -> int:
    """A job's total steps from its epochs: ``epochs`` x ``per_epoch`` steps, or x the steps
    per epoch of its log (:func:`steps_per_epoch`) when ``per_epoch`` is None."""
    return round(float(epochs) * (steps_per_epoch(progress) if per_epoch is None else per_epoch))

def estimate_remaining(progress: Progress, total_steps: int, window: int,
                       band: tuple[float, float] = (0.1, 0.9)) -> Estimate:
    """Remaining time to ``total_steps`` from the last ``window`` log intervals.

    The step time is the window's time over its steps (the moving average of the per-step
    durations, weighted by the steps each interval covers; Dube et al. 2019). The band
    multiplies the remaining steps by the ``band`` quantiles of the window's per-step
    durations: the pace of its slower and faster stretches.
    """
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise CostnetError(f"window must be a positive number of log intervals, got {window!r}")
    low_q, high_q = band
    if not 0 <= low_q <= high_q <= 1:
        raise CostnetError(f"band must be two quantiles 0 <= low <= high <= 1, got {band!r}")
    if len(progress.steps) < 2:
        raise CostnetError("the log needs at least two records with distinct steps to measure a rate")
    done = int(progress.steps[-1])
    if isinstance(total_steps, bool) or int(total_steps) != total_steps or total_steps < done:
        raise CostnetError(f"total_steps must be an integer no smaller than the {done} steps already done, "
                           f"got {total_steps!r}")
    window = min(int(window), len(progress.steps) - 1)
    d_steps = np.diff(progress.steps[-window - 1:])
    d_times = np.diff(progress.times_s[-window - 1:])
    if d_times.sum() <= 0:
        raise CostnetError(f"no time passed over the last {window} log intervals: cannot measure a rate")
    step_time = float(d_times.sum() / d_steps.sum())
    per_step = d_times / d_steps
    remaining = int(total_steps) - done
    return Estimate(done, int(total_steps), progress.elapsed_s, step_time, remaining * step_time,
                    remaining * float(np.quantile(per_step, low_q)), remaining * float(np.quantile(per_step, high_q)),
                    window, progress.last_record_at)


def speed_ratio(current_step_ms: float, target_step_ms: float) -> float:
    """How many times faster the target runs a step, from two predicted step times."""
    for name, value in (("current_step_ms", current_step_ms), ("target_step_ms", target_step_ms)):
        if not math.isfinite(value) or value <= 0:
            raise CostnetError(f"{name} must be a positive time, got {value!r}")
    return current_step_ms / target_step_ms


def on_other_hardware(estimate: Estimate, ratio: float) -> Estimate:
    """``estimate`` if the remaining steps ran ``ratio`` times faster (a :func:`speed_ratio`)."""
    if not math.isfinite(ratio) or ratio <= 0:
        raise CostnetError(f"speed ratio must be positive, got {ratio!r}")
    return replace(estimate, step_time_s=estimate.step_time_s / ratio, remaining_s=estimate.remaining_s / ratio,
                   remaining_low_s=estimate.remaining_low_s / ratio,
                   remaining_high_s=estimate.remaining_high_s / ratio)
