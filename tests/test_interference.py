"""The timer notices other work: disturbed blocks are re-timed, and a measurement that had
to keep them says so; datasets report and (by default) drop disturbed rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from costnet.data.info import disturbance
from costnet.errors import CostnetError
from costnet.sources.local import _disturbed
from costnet.timing import TimingConfig, measure
from costnet.timing.interference import CPUS, Counters, Probe, disturbed, others_cores


class Scripted:
    """A clock and probe pair: block i takes times[i] seconds, and its threads waited
    waits[i] seconds for a CPU."""

    def __init__(self, times: list[float], waits: list[float]) -> None:
        self.times, self.waits, self.block, self.wait = times, waits, -1, 0.0

    def time_block(self, fn, number: int) -> float:
        self.block += 1
        self.wait += self.waits[self.block]
        return self.times[self.block] * number

    def read(self) -> Counters:
        return Counters(self.wait, 0, 0.0, 0.0, 0.0, float(self.block))

    def others(self) -> float:
        return 0.0


def test_disturbed_blocks_are_retimed_and_never_sampled() -> None:
    # no warm-up, one call per block; blocks 1 and 3 were stalled (waited 8 ms of 9 ms)
    script = Scripted([1e-3, 9e-3, 1e-3, 9e-3, 1e-3, 1e-3, 1e-3], [0, 8e-3, 0, 8e-3, 0, 0, 0])
    cfg = TimingConfig(warmup_runs=0, min_runs=5, max_runs=5, number=1, retries=2)
    m = measure(lambda: None, cfg, script, probe=script)
    assert m.samples == (1e-3,) * 5 and m.retimed == 2 and not m.disturbed
    assert m.stats_ms()["retimed_blocks"] == 2 and m.stats_ms()["disturbed"] is False
    assert m.wait_share == pytest.approx(16e-3 / m.timed_s)


def test_out_of_retries_the_measurement_says_disturbed() -> None:
    script = Scripted([9e-3] * 6, [8e-3] * 6)
    cfg = TimingConfig(warmup_runs=0, min_runs=3, max_runs=3, number=1, retries=2)
    m = measure(lambda: None, cfg, script, probe=script)
    assert m.disturbed and m.retimed == 2 and m.samples == (9e-3,) * 3


def test_disturbance_rule() -> None:
    def at(wait: float | None, involuntary: int = 5, steal: float = 2.0) -> Counters:
        return Counters(wait, involuntary, steal, 0.0, 0.0, 0.0)

    quiet, waited = at(1.0), at(1.0 + 3e-3)
    assert not disturbed(quiet, quiet, 0.01, 0.02)
    assert disturbed(quiet, waited, 0.01, 0.02)  # 30 % of the block waiting
    assert not disturbed(quiet, waited, 1.0, 0.02)  # 0.3 % of a long block
    assert disturbed(quiet, at(1.0, steal=2.01), 0.01, 0.02)  # stolen by the hypervisor
    # without schedstat, any involuntary context switch marks the block
    assert disturbed(at(None), at(None, involuntary=6), 1.0, 0.02)
    assert not disturbed(at(None), at(None), 1.0, 0.02)


def test_others_cores_is_the_machines_busy_time_less_ours() -> None:
    start = Counters(0.0, 0, 0.0, busy_s=10.0, own_s=4.0, at=100.0)
    # in 2 s the machine was busy 3 s, 2 of them ours: another process used half a core
    assert others_cores(start, Counters(0.0, 0, 0.0, 13.0, 6.0, 102.0)) == pytest.approx(0.5)
    assert others_cores(start, Counters(0.0, 0, 0.0, 10.0, 6.0, 102.0)) == 0.0  # tick rounding below 0
    assert others_cores(start, Counters(0.0, 0, 0.0, 500.0, 4.0, 101.0)) == CPUS  # a jump in the accounting


def test_busy_neighbours_flag_the_measurement() -> None:
    class Crowded(Scripted):  # no waits at all, but the machine is busy beside us
        def others(self) -> float:
            return 1.0

    cfg = TimingConfig(warmup_runs=0, min_runs=3, max_runs=3, number=1)
    script = Crowded([1e-3] * 3, [0.0] * 3)
    m = measure(lambda: None, cfg, script, probe=script)
    assert m.retimed == 0 and m.others_cores == pytest.approx(1.0) and m.disturbed
    # with neighbours busy all along, a disturbed block is not re-timed: the row is flagged anyway
    script = Crowded([9e-3] * 3, [8e-3] * 3)
    m = measure(lambda: None, cfg, script, probe=script)
    assert m.retimed == 0 and m.disturbed and m.samples == (9e-3,) * 3


def test_probe_reads_this_process_and_closes_its_files() -> None:
    with Probe() as probe:
        first, second = probe.read(), probe.read()
        assert second.involuntary >= first.involuntary and second.steal_s >= first.steal_s
        if probe.has_schedstat:
            assert second.wait_s >= first.wait_s >= 0
        assert probe._fds or not probe.has_schedstat
        assert second.own_s >= first.own_s and second.busy_s >= first.busy_s and second.at > first.at
        assert 0 <= others_cores(first, second) <= CPUS and 0 <= probe.others() <= CPUS
    assert not probe._fds


def test_the_probe_keeps_one_reading_older_than_its_window(monkeypatch) -> None:
    clock = iter(range(100))
    monkeypatch.setattr("costnet.timing.interference.time.perf_counter", lambda: float(next(clock)))
    with Probe(window_s=3) as probe:
        for _ in range(10):
            probe.read()
        assert [c.at for c in probe._history][:2] in ([6.0, 7.0], [7.0, 8.0]) and probe._history[-1].at == 9.0
        assert probe._history[-1].at - probe._history[0].at >= 3


def test_datasets_report_and_drop_disturbed_rows(capsys) -> None:
    frame = pd.DataFrame({"status": ["ok"] * 4 + ["error"], "disturbed": [False, True, None, False, None]})
    line = disturbance(frame)
    assert "1 of 4 timed rows (33.3 %)" in line and "1 rows were collected without interference checks" in line
    kept = _disturbed(frame, "drop")
    assert len(kept) == 4 and not kept["disturbed"].fillna(False).any()
    assert "dropped 1 of 5 rows" in capsys.readouterr().err
    assert len(_disturbed(frame, "keep")) == 5
    with pytest.raises(CostnetError, match="all 2 rows were disturbed"):
        _disturbed(pd.DataFrame({"disturbed": [True, True]}), "drop")
    with pytest.raises(CostnetError, match="'maybe'"):
        _disturbed(frame, "maybe")


def test_a_collection_reports_its_disturbed_share(tmp_path: Path) -> None:
    from costnet.collect.runner import collect
    from costnet.config import compose

    cfg = compose("collect", ["space=dense", "n=4", f"out={tmp_path}", "measure_peaks=false", "progress=false",
                              "timing.budget_s=0.01"])
    summary = collect(cfg)
    assert any(line.startswith("disturbed    ") and "of 4 timed rows" in line for line in summary.lines())
    from costnet.data import load_dataset

    rows = load_dataset(tmp_path)
    assert rows["disturbed"].notna().all() and (rows["retimed_blocks"] >= 0).all()
    assert summary.disturbed == int(rows["disturbed"].sum())
