"""Seeing other work on the machine while timing.

On a machine whose cores are all in the timed OpenMP team, any other runnable thread
stalls the team, and a sample can read several times the layer's time (often multiples
of the scheduler's slice). Two views reveal it:

- per timed block, how long this process's threads were runnable but waiting for a CPU:
  the second field of ``/proc/<pid>/task/<tid>/schedstat`` ("time spent waiting on a
  runqueue", Linux Documentation/scheduler/sched-stats.rst), summed over threads. Where
  that file is missing (not Linux, schedstats off), involuntary context switches from
  ``getrusage`` stand in (any one marks the block). Steal time (``/proc/stat``, time the
  hypervisor ran someone else on our virtual CPU) counts as waiting too;
- over a stretch of time, the CPU time of other processes: the machine's busy time
  (``psutil.cpu_times``) less this process's own, in cores.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of this process (and the machine's steal time) at one instant."""

    wait_s: float | None  # run-queue wait of all threads; None without schedstat
    involuntary: int  # involuntary context switches of all threads
    steal_s: float  # the machine's steal time


class Probe:
    """Reads :class:`Counters` cheaply (tens of microseconds), between timed blocks, never
    inside one. Keeps the counter files open; :meth:`close` (or ``with``) lets them go."""

    def __init__(self) -> None:
        self._tasks = f"/proc/{os.getpid()}/task"
        self._fds: dict[str, int] = {}
        self._stat = _open("/proc/stat")
        self.has_schedstat = self._wait() is not None

    def _wait(self) -> float | None:
        """Run-queue wait of all threads, s; None where the kernel does not report it."""
        try:
            tids = os.listdir(self._tasks)
        except OSError:
            return None
        for tid in set(self._fds) - set(tids):  # threads that ended
            os.close(self._fds.pop(tid))
        total = 0
        for tid in tids:
            if tid not in self._fds and (fd := _open(f"{self._tasks}/{tid}/schedstat")) is not None:
                self._fds[tid] = fd
            try:
                total += int(os.pread(self._fds[tid], 128, 0).split()[1])
            except (KeyError, OSError, IndexError, ValueError):
                if tid not in self._fds:  # the thread has no schedstat: no wait for anyone
                    return None
                os.close(self._fds.pop(tid))  # it ended between listing and reading
        return total / 1e9

    def _steal(self) -> float:
        """The machine's steal time, s (the 8th value of /proc/stat's cpu line, in USER_HZ ticks)."""
        if self._stat is None:
            return 0.0
        fields = os.pread(self._stat, 256, 0).split(b"\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0

    def read(self) -> Counters:
        wait = self._wait() if self.has_schedstat else None
        return Counters(wait, resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw, self._steal())

    def close(self) -> None:
        for fd in [*self._fds.values(), *([self._stat] if self._stat is not None else [])]:
            os.close(fd)
        self._fds.clear()
        self._stat = None

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def disturbed(before: Counters, after: Counters, wall_s: float, max_wait: float) -> bool:
    """Whether a block of ``wall_s`` seconds between two readings was disturbed: its threads
    waited for a CPU (or had it stolen) longer than ``max_wait`` of the block's time; without
    schedstat, any involuntary context switch."""
    steal = after.steal_s - before.steal_s
    if before.wait_s is None or after.wait_s is None:
        return after.involuntary > before.involuntary or steal > 0
    return (after.wait_s - before.wait_s) + steal > max_wait * wall_s


class OthersMeter:
    """CPU cores used by other processes since the last :meth:`cores` call (or creation)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._last = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float]:
        machine = psutil.cpu_times()
        # busy time; guest time is already inside user time (proc(5)), idle, iowait and steal are not busy
        busy = sum(getattr(machine, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
        own = self._process.cpu_times()
        return busy, own.user + own.system, time.perf_counter()

    def cores(self) -> float:
        now = self._snapshot()
        busy, own, at = (a - b for a, b in zip(now, self._last))
        self._last = now
        return max(0.0, busy - own) / at if at > 0 else 0.0


def others_now(seconds: float = 0.5) -> float:
    """Cores other processes use, averaged over ``seconds`` from now."""
    meter = OthersMeter()
    time.sleep(seconds)
    return meter.cores()
