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
  (``/proc/stat``) less this process's own (schedstat), in cores. This also sees a neighbour
  that never makes our threads wait yet slows them, e.g. on the other hyperthread of a
  virtual machine's physical core, or through shared caches and memory bandwidth. The
  kernel accounts it in ticks (10 ms), so over a configuration's timing of a few hundred
  milliseconds it resolves a tenth of a core or so: enough for a busy neighbour.
"""

from __future__ import annotations

import os
import resource
import time
from collections import deque
from dataclasses import dataclass

import psutil

CPUS = float(psutil.cpu_count() or 1)


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of this process and the machine at one instant."""

    wait_s: float | None  # run-queue wait of all threads; None without schedstat
    involuntary: int  # involuntary context switches of all threads
    steal_s: float  # the machine's steal time
    busy_s: float  # the machine's busy CPU time, all cores
    own_s: float  # this process's CPU time, all threads
    at: float  # time.perf_counter() of the reading


class Probe:
    """Reads :class:`Counters` cheaply (tens of microseconds), between timed blocks, never
    inside one, and keeps the readings of the last ``window_s`` seconds for :meth:`others`.
    Keeps the counter files open; :meth:`close` (or ``with``) lets them go."""

    def __init__(self, window_s: float = 0.5) -> None:
        self.window_s = window_s
        self._history: deque[Counters] = deque()
        self._tasks = f"/proc/{os.getpid()}/task"
        self._fds: dict[str, int] = {}
        self._stat = _open("/proc/stat")
        self.has_schedstat = self._threads() is not None

    def _threads(self) -> tuple[float, float] | None:
        """CPU time and run-queue wait of all threads, s; None where the kernel does not say."""
        try:
            tids = os.listdir(self._tasks)
        except OSError:
            return None
        for tid in set(self._fds) - set(tids):  # threads that ended
            os.close(self._fds.pop(tid))
        ran = waited = 0
        for tid in tids:
            if tid not in self._fds and (fd := _open(f"{self._tasks}/{tid}/schedstat")) is not None:
                self._fds[tid] = fd
            try:
                fields = os.pread(self._fds[tid], 128, 0).split()
                ran, waited = ran + int(fields[0]), waited + int(fields[1])
            except (KeyError, OSError, IndexError, ValueError):
                if tid not in self._fds:  # the thread has no schedstat: no totals for anyone
                    return None
                os.close(self._fds.pop(tid))  # it ended between listing and reading
        return ran / 1e9, waited / 1e9

    def _machine(self) -> tuple[float, float]:
        """The machine's busy and steal time, s: /proc/stat's cpu line (proc(5): user, nice,
        system, idle, iowait, irq, softirq, steal, ...; guest time is inside user)."""
        if self._stat is None:
            t = psutil.cpu_times()
            return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq")), \
                getattr(t, "steal", 0.0)
        ticks = [int(v) for v in os.pread(self._stat, 256, 0).split(b"\n", 1)[0].split()[1:9]]
        ticks += [0] * (8 - len(ticks))
        hz = os.sysconf("SC_CLK_TCK")
        return (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / hz, ticks[7] / hz

    def read(self) -> Counters:
        threads = self._threads() if self.has_schedstat else None
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy, steal = self._machine()
        own = threads[0] if threads else usage.ru_utime + usage.ru_stime
        now = Counters(threads[1] if threads else None, usage.ru_nivcsw, steal, busy, own, time.perf_counter())
        self._history.append(now)  # the first kept reading is the newest one at least window_s old
        while len(self._history) > 2 and now.at - self._history[1].at >= self.window_s:
            self._history.popleft()
        return now

    def others(self) -> float:
        """Cores other processes used over the last ``window_s`` seconds of readings (or all of
        them, if they span less): a window long enough for the kernel's 10 ms ticks to resolve
        a fraction of a core, where one configuration's timing may last only milliseconds."""
        return others_cores(self._history[0], self._history[-1]) if self._history else 0.0

    def close(self) -> None:
        for fd in [*self._fds.values(), *([self._stat] if self._stat is not None else [])]:
            os.close(fd)
        self._fds.clear()
        self._stat = None

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a probe nobody closed still lets its files go
        if getattr(self, "_stat", None) is not None or getattr(self, "_fds", None):
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


def others_cores(before: Counters, after: Counters) -> float:
    """Cores other processes used between two readings: the machine's busy time less this
    process's, over the time between. The kernel accounts busy time in ticks (10 ms), so over
    a few hundred milliseconds this resolves about a tenth of a core; it is kept between 0 and
    the CPU count (tick accounting on a virtual machine can jump further)."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        return 0.0
    other = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    return min(max(other / elapsed, 0.0), CPUS)
