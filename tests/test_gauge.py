"""AI Gauge-style estimates: online remaining time from logs, offline runtime, cost and Pareto front."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costnet.errors import CostnetError
from costnet.networks.estimate import Setting
from costnet.gauge import (
    Job,
    Offering,
    estimate_remaining,
    load_offerings,
    network_step_time,
    on_other_hardware,
    pareto_front,
    pareto_mask,
    predict_configurations,
    network_step,
    read_log,
    roofline_step_time,
    select_offerings,
    speed_ratio,
    steps_per_epoch,
    total_steps_of_epochs,
    totals_step,
)
from costnet.hardware import load_catalog
from tests.conftest import run_cli
from tests.test_networks import ConstantConv

# ----------------------------------------------------------------- online


def write_plain(path: Path, steps: list[int], times: list[float]) -> Path:
    pd.DataFrame({"step": steps, "time": times}).to_csv(path, index=False)
    return path


def test_constant_rate_is_exact(tmp_path: Path) -> None:
    steps = list(range(0, 1001, 10))
    log = write_plain(tmp_path / "log.csv", steps, [0.25 * s for s in steps])
    est = estimate_remaining(read_log(log), total_steps=5000, window=50)
    assert est.steps_done == 1000 and est.window == 50
    assert est.step_time_s == pytest.approx(0.25, rel=1e-12)
    assert est.rate_steps_per_s == pytest.approx(4.0, rel=1e-12)
    assert est.remaining_s == pytest.approx(1000.0, rel=1e-12)
    assert est.remaining_low_s == pytest.approx(1000.0, rel=1e-12)
    assert est.remaining_high_s == pytest.approx(1000.0, rel=1e-12)
    assert est.elapsed_s == pytest.approx(250.0)


def test_window_follows_a_rate_change(tmp_path: Path) -> None:
    steps = list(range(0, 1001, 10))  # 0.2 s/step up to step 500, then 0.05 s/step
    times = [0.2 * s if s <= 500 else 100 + 0.05 * (s - 500) for s in steps]
    progress = read_log(write_plain(tmp_path / "log.csv", steps, times))
    recent = estimate_remaining(progress, total_steps=2000, window=20)
    assert recent.step_time_s == pytest.approx(0.05, rel=1e-12)
    assert recent.remaining_s == pytest.approx(1000 * 0.05, rel=1e-12)
    whole = estimate_remaining(progress, total_steps=2000, window=1000)  # clipped to the 100 intervals
    assert whole.window == 100
    assert whole.step_time_s == pytest.approx(0.125, rel=1e-12)
    assert whole.remaining_low_s == pytest.approx(1000 * 0.05, rel=1e-12)
    assert whole.remaining_high_s == pytest.approx(1000 * 0.2, rel=1e-12)


def test_plain_csv_relative_times_and_eta(tmp_path: Path) -> None:
    log = write_plain(tmp_path / "log.csv", [100, 200, 300], [12.0, 22.0, 32.0])
    os.utime(log, (1.8e9, 1.8e9))  # the log was last written with its last record
    progress = read_log(log)
    assert list(progress.steps) == [100, 200, 300] and progress.epochs is None
    assert progress.elapsed_s == 32.0  # seconds since the start, not since the first record
    assert progress.last_record_at == datetime.fromtimestamp(1.8e9, tz=timezone.utc)
    est = estimate_remaining(progress, total_steps=400, window=50)
    assert est.remaining_s == pytest.approx(10.0)
    assert (est.eta - est.last_record_at).total_seconds() == pytest.approx(10.0)


LIGHTNING = """epoch,loss_epoch,loss_step,step,time
0,,,1,1795491142.0
0,,,2,1795491142.5
0,,0.28,1,
0,,,3,1795491143.0
0,,,4,1795491143.5
0,0.44,,3,
0,,,4,1795491143.6
1,,,5,1795491144.0
1,,,6,1795491144.5
1,,0.19,5,
"""


def test_lightning_metrics_csv(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text(LIGHTNING)
    progress = read_log(log)
    assert list(progress.steps) == [1, 2, 3, 4, 5, 6]  # metric rows skipped, step 4 counted once
    assert progress.times_s[3] == 1795491143.6  # with its last time
    assert list(progress.epochs) == [0, 0, 0, 0, 1, 1]
    assert progress.elapsed_s == pytest.approx(2.5)  # UNIX times: from the first record
    assert progress.last_record_at == datetime.fromtimestamp(1795491144.5, tz=timezone.utc)
    assert steps_per_epoch(progress) == 4
    assert total_steps_of_epochs(progress, 2.5) == 10 and total_steps_of_epochs(progress, 2.5, per_epoch=7) == 18
    est = estimate_remaining(progress, total_steps=3 * steps_per_epoch(progress), window=2)
    assert est.step_time_s == pytest.approx(0.45)  # (144.5 - 143.6) / 2
    assert est.remaining_s == pytest.approx(6 * 0.45)


def test_iso_created_at_column(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text("step,epoch,created_at\n10,0,2026-01-01T00:00:00Z\n20,0,2026-01-01T00:00:05Z\n"
                   "30,0,2026-01-01T00:00:10Z\n")
    est = estimate_remaining(read_log(log), total_steps=40, window=5)
    assert est.step_time_s == pytest.approx(0.5)
    assert est.eta == datetime(2026, 1, 1, 0, 0, 15, tzinfo=timezone.utc)


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("step,time\n", "no rows"),
    ("iteration,time\n1,1.0\n2,2.0\n", "no 'step' column"),
    ("epoch,loss,step\n0,0.5,1\n0,0.4,2\n", "Lightning's CSVLogger writes none"),
    ("step,time\n1,5.0\n2,4.0\n", "non-monotonic time"),
    ("step,time\n2,1.0\n1,2.0\n", "non-monotonic step"),
    ("step,time\n1,abc\n2,xyz\n", "neither numbers nor ISO date-times"),
    ("step,time\n0,0\n10,1\n20,inf\n30,3\n", "line 4: time 'inf' is not a finite number >= 0"),
    ("step,time\n0,0\n10,nan\n20,2\n", "line 3: time 'nan' is not a finite number >= 0"),
    ("step,time\n0,-5\n10,1\n", "line 2: time '-5' is not a finite number >= 0"),
    ("step,time\n0,0\ninf,1\n", "line 3: step 'inf' is not a finite number >= 0"),
    ("step,time\n-10,0\n0,1\n", "line 2: step '-10' is not a finite number >= 0"),
    ("step,time\n0,0\n1,1\nx,2\n", "line 4: step 'x' is not a finite number >= 0"),
    ("step,created_at\n1,2026-01-01T00:00:00Z\n2,nan\n", "line 3: created_at 'nan' is not a finite number"),
])
def test_malformed_logs(tmp_path: Path, text: str, message: str) -> None:
    log = tmp_path / "log.csv"
    log.write_text(text)
    with pytest.raises(CostnetError, match=message):
        read_log(log)


@pytest.mark.parametrize("data", [bytes(range(256)), b"step,time\n0,0\n\x00\x00\n", "step,time\n".encode("utf-16")],
                         ids=["bytes", "nul", "utf16"])
def test_binary_log_is_refused_naming_the_file(tmp_path: Path, data: bytes) -> None:
    log = tmp_path / "log.csv"
    log.write_bytes(data)
    with pytest.raises(CostnetError, match=f"log '{log}' is not (UTF-8 )?text"):
        read_log(log)


def test_estimate_errors(tmp_path: Path) -> None:
    with pytest.raises(CostnetError, match="not found"):
        read_log(tmp_path / "missing.csv")
    one = read_log(write_plain(tmp_path / "one.csv", [5, 5], [1.0, 2.0]))
    with pytest.raises(CostnetError, match="at least two records"):
        estimate_remaining(one, total_steps=10, window=5)
    progress = read_log(write_plain(tmp_path / "log.csv", [0, 10, 20], [0.0, 1.0, 2.0]))
    with pytest.raises(CostnetError, match="no smaller than the 20 steps"):
        estimate_remaining(progress, total_steps=10, window=5)
    with pytest.raises(CostnetError, match="window"):
        estimate_remaining(progress, total_steps=30, window=0)
    with pytest.raises(CostnetError, match="no epoch column"):
        steps_per_epoch(progress)


def test_other_hardware_scales_by_the_speed_ratio(tmp_path: Path) -> None:
    steps = list(range(0, 101, 10))
    est = estimate_remaining(read_log(write_plain(tmp_path / "log.csv", steps, [0.1 * s for s in steps])),
                             total_steps=300, window=10)
    ratio = speed_ratio(current_step_ms=200.0, target_step_ms=50.0)
    assert ratio == 4.0
    fast = on_other_hardware(est, ratio)
    assert fast.remaining_s == pytest.approx(est.remaining_s / 4)
    assert fast.rate_steps_per_s == pytest.approx(4 * est.rate_steps_per_s)
    assert fast.eta < est.eta
    with pytest.raises(CostnetError, match="positive"):
        speed_ratio(0.0, 10.0)
    with pytest.raises(CostnetError, match="positive"):
        on_other_hardware(est, -1.0)


# ----------------------------------------------------------------- offline


def test_pareto_with_ties_and_dominated_points() -> None:
    #                A    B    C (=B) D    E (=A) F    G
    times = np.array([1.0, 2.0, 2.0, 3.0, 1.0, 4.0, 1.5])
    costs = np.array([10., 5.0, 5.0, 5.0, 10., 1.0, 12.])
    # D: as cheap as B but slower; G: slower and dearer than A; equal points keep each other
    assert pareto_mask(times, costs).tolist() == [True, True, True, False, True, True, False]


def test_runtime_and_cost_arithmetic() -> None:
    offer = Offering("V100", (1, 2), 3.6, "test", 10.0, "")

    def step_time_ms(gpu: str, per_gpu_batch: int) -> float:
        assert (gpu, per_gpu_batch) == ("V100", 10)
        return 100.0

    table = predict_configurations(step_time_ms, 1e9, Job(10, 1000, 2), [offer], "ring_allreduce", 1.0)
    one, two = table.to_dict("records")
    # 1 GPU: 100 steps an epoch x 2 epochs x 0.1 s = 20 s at $3.6/h
    assert one["steps_per_epoch"] == 100 and one["comm_ms"] == 0.0
    assert one["runtime_h"] == pytest.approx(20 / 3600) and one["cost_usd"] == pytest.approx(0.02)
    # 2 GPUs: ring all-reduce of 1 GB at 10 GB/s moves 2 (K-1)/K |D| = 1 GB: 100 ms a step;
    # 50 steps x 2 epochs x 0.2 s = 20 s at $7.2/h
    assert two["steps_per_epoch"] == 50 and two["comm_ms"] == pytest.approx(100.0)
    assert two["step_ms"] == pytest.approx(200.0)
    assert two["runtime_h"] == pytest.approx(20 / 3600) and two["cost_usd"] == pytest.approx(0.04)
    assert table["pareto"].tolist() == [True, False]  # as fast, half the price
    odd = predict_configurations(step_time_ms, 1e9, Job(10, 1001, 1), [offer], "ring_allreduce", 1.0)
    assert odd["steps_per_epoch"].tolist() == [101, 51]  # the last partial batch is a step


def test_roofline_step_time() -> None:
    specs = {"X": {"peak_fp32_gflops": 1000.0, "memory_bandwidth_gbs": 100.0}}
    compute_bound = roofline_step_time(2e9, 1e8, 1.0, specs)  # 2 ms compute vs 1 ms memory per sample
    assert compute_bound("X", 4) == pytest.approx(8.0)
    memory_bound = roofline_step_time(2e9, 5e8, 0.5, specs)  # 4 ms compute vs 10 ms memory at ppp 0.5
    assert memory_bound("X", 4) == pytest.approx(40.0)
    with pytest.raises(CostnetError, match="unknown GPU"):
        compute_bound("Y", 4)
    with pytest.raises(CostnetError, match="ppp"):
        roofline_step_time(1.0, 1.0, 0.0, specs)


class _PerGpuConv(ConstantConv):
    """A stand-in conv2d predictor trained on one GPU: a constant time per layer."""

    def __init__(self, gpu: str, ms: float) -> None:
        super().__init__(ms)
        self.meta = {**self.meta, "train_devices": [gpu]}

    def predict(self, rows: pd.DataFrame, enriched: pd.DataFrame | None = None) -> np.ndarray:
        assert rows["mode"].eq("train").all()
        return super().predict(rows)


def test_network_step_time_uses_each_gpus_own_model() -> None:
    predictors = [_PerGpuConv("V100", 1.0), _PerGpuConv("K80", 5.0)]
    step, params = network_step_time("resnet18", predictors, Setting("train", "sgd", ppp_comp=0.5, ppp_mem=0.5))
    assert params == 11_689_512  # torchvision's resnet18
    convs = 20  # resnet18: stem, 16 in the blocks, 3 downsampling shortcuts
    v100, k80 = step("V100", 8), step("K80", 8)
    # the other layers (batch norm, pooling, adds, dense) are analytical on each GPU's peaks
    rest_v100, rest_k80 = v100 - convs * 1.0, k80 - convs * 5.0
    assert 0 < rest_v100 < rest_k80 < 0.5 * convs
    assert step("V100", 16) > v100  # layers re-extracted at the larger batch


def test_job_steps_all_reduce_their_parameters() -> None:
    totals = totals_step(2.3e10, 1.5e9, 25.6e6, 2, 0.5)
    assert totals.ops is None and totals.params == 25.6e6 and totals.gradient_bytes == 2 * 25.6e6
    assert totals.time_ms("V100", 64) == roofline_step_time(2.3e10, 1.5e9, 0.5)("V100", 64)
    network = network_step("resnet18", [], Setting("train", "sgd"), 4)
    assert network.ops == () and network.params == 11_689_512 and network.gradient_bytes == 4 * 11_689_512


def test_select_offerings() -> None:
    offerings = load_offerings()
    assert select_offerings(offerings, None) == offerings
    assert [o.gpu for o in select_offerings(offerings, ["A100", "K80"])] == ["K80", "A100"]  # catalog order
    with pytest.raises(CostnetError, match=r"gpus \['XX'\] are not in the gauge catalog"):
        select_offerings(offerings, ["V100", "XX"])


def test_catalog_and_multi_gpu_communication() -> None:
    offerings = load_offerings()
    assert {o.gpu for o in offerings} >= {"K80", "P100", "V100", "T4", "A100", "L4", "H100"}
    assert {o.gpu for o in offerings} <= set(load_catalog())
    table = predict_configurations(roofline_step_time(2.3e10, 1.5e9, 0.5), 25.6e6 * 4, Job(64, 1281167, 90),
                                   offerings, "ring_allreduce", 0.75)
    assert len(table) == sum(len(o.counts) for o in offerings)
    single, multi = table[table["count"] == 1], table[table["count"] > 1]
    assert (single["comm_ms"] == 0).all() and (multi["comm_ms"] > 0).all()
    assert np.allclose(table["step_ms"], table["compute_ms"] + table["comm_ms"])
    front = pareto_front(table)
    assert len(front) >= 1 and front["runtime_h"].is_monotonic_increasing
    assert front["cost_usd"].is_monotonic_decreasing


def test_bad_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("links: {pcie: {bandwidth_gbs: 16}}\n"
                    "offerings: [{gpu: V900, counts: [1], price_per_gpu_hour: 1.0, link: pcie}]\n")
    with pytest.raises(CostnetError, match="V900"):
        load_offerings(path)
    path.write_text("links: {pcie: {bandwidth_gbs: 16}}\n"
                    "offerings: [{gpu: V100, counts: [1], price_per_gpu_hour: 1.0, link: nvlink}]\n")
    with pytest.raises(CostnetError, match="link 'nvlink'"):
        load_offerings(path)
    path.write_bytes(b"links: \xff\xfe")
    with pytest.raises(CostnetError, match=f"gauge catalog '{path}' is not UTF-8 text"):
        load_offerings(path)


# ----------------------------------------------------------------- CLI


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli("gauge", *args)


@pytest.mark.slow
def test_cli_offline_writes_its_files(tmp_path: Path) -> None:
    out = tmp_path / "gauge"
    done = cli("mode=offline", "flops_per_sample=2.3e10", "bytes_per_sample=1.5e9", "params=25.6e6",
               "batch_size=64", "dataset_size=1281167", "epochs=90", f"out={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Pareto-optimal" in done.stdout
    table = pd.read_csv(out / "configurations.csv")
    front = pd.read_csv(out / "pareto.csv")
    assert len(front) == table["pareto"].sum() >= 1
    assert (out / "pareto.png").stat().st_size > 0


@pytest.mark.slow
def test_cli_online(tmp_path: Path) -> None:
    steps = list(range(0, 1001, 10))
    log = write_plain(tmp_path / "log.csv", steps, [0.25 * s for s in steps])
    done = cli("mode=online", f"log={log}", "total_steps=5000", "window=50", "speed_ratio=2")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("rate") and "4 steps/s" in line for line in lines)
    assert [line.split()[1] for line in lines if line.startswith("remaining")] == ["0:16:40", "0:08:20"]
    assert sum(line.startswith("ETA") for line in lines) == 2


@pytest.mark.slow
def test_cli_online_on_a_target_device_and_offline_for_a_network(tmp_path: Path) -> None:
    steps = list(range(0, 1001, 10))
    log = write_plain(tmp_path / "log.csv", steps, [0.25 * s for s in steps])
    done = cli("mode=online", f"log={log}", "total_steps=5000", "network=alexnet", "batch_size=8",
               "hardware=K80", "target=V100")
    assert done.returncode == 0, done.stderr[-3000:]
    ratio = float(next(line for line in done.stdout.splitlines() if line.startswith("on V100")).split()[2][:-1])
    assert 1.5 < ratio < 10  # a V100 has 3.2x a K80's fp32 peak and 1.9x its bandwidth (catalog)
    both = cli("mode=online", f"log={log}", "total_steps=5000", "network=alexnet", "target=V100", "speed_ratio=2")
    assert both.returncode == 2 and "not both" in both.stderr
    out = tmp_path / "gauge"
    offline = cli("mode=offline", "network=alexnet", "batch_size=8", "dataset_size=10000", "epochs=1",
                  "gpus=[V100,T4]", f"out={out}")
    assert offline.returncode == 0, offline.stderr[-3000:]
    assert "alexnet (61.1 M parameters)" in offline.stdout
    assert set(pd.read_csv(out / "configurations.csv")["gpu"]) == {"V100", "T4"}


def test_cli_errors_are_one_line() -> None:
    done = cli("mode=offline", "flops_per_sample=1e9")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "costnet: error: mode=offline needs bytes_per_sample=..., params=..., dataset_size=..., epochs=..."]
