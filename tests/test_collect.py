"""Collection end to end: rows, failures, resume (also after SIGKILL), CLI errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig

from costnet.collect.runner import collect
from costnet.config import compose, conf_dir
from costnet.data import load_dataset
from costnet.data.info import info
from costnet.errors import CostnetError
from tests import fake_slurm
from tests.conftest import FAST, TINY_DENSE, run_cli


def run(out: Path, *overrides: str):
    return collect(compose("collect", [*TINY_DENSE, *FAST, f"out={out}", *overrides]))


def test_collect_writes_complete_rows(tmp_path: Path) -> None:
    summary = run(tmp_path, "n=12", "flush_every=5")
    assert summary.written == 12 and summary.errors == 0 and 0 < summary.efficiency <= 1
    frame = load_dataset(tmp_path, with_hardware=True)
    assert len(frame) == 12 and frame["row_id"].is_unique
    assert (frame["time_median_ms"] > 0).all() and (frame["time_min_ms"] <= frame["time_median_ms"]).all()
    assert (frame["time_median_ms"] <= frame["time_max_ms"]).all() and (frame["n_runs"] >= 2).all()
    assert set(frame["mode"]) == {"forward", "train"}
    assert frame["hw_physical_cores"].notna().all() and frame["torch_version"].notna().all()
    assert len(list(tmp_path.glob("*.parquet"))) == 3  # 5 + 5 + 2
    text = info(tmp_path)
    assert "dense" in text and "forward" in text and "failures: none" in text


def test_a_dataset_directory_is_a_plain_parquet_dataset(tmp_path: Path) -> None:
    """Side records start with _ (Parquet readers skip them): pandas and pyarrow.dataset read the
    directory as it is; a directory in the old layout (hardware/, runs/) still loads."""
    import pyarrow.dataset as ds

    run(tmp_path, "n=6")
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == {"_hardware", "_runs"}
    frame = load_dataset(tmp_path, with_hardware=True)
    assert len(pd.read_parquet(tmp_path)) == 6 == ds.dataset(tmp_path, format="parquet").count_rows()
    (tmp_path / "_hardware").rename(tmp_path / "hardware")
    (tmp_path / "_runs").rename(tmp_path / "runs")
    old = load_dataset(tmp_path, with_hardware=True)
    assert old["hw_physical_cores"].tolist() == frame["hw_physical_cores"].tolist()


QUIET = ["measure_peaks=false", "progress=false"]
SLICE_COLUMNS = ["index", "batch", "in_features", "out_features", "bias", "activation", "mode", "optimizer", "dtype"]


def collect_in_slices(tmp_path: Path, *launcher: str, n: int, shard: str = "shard=0,1") -> pd.DataFrame:
    """``costnet-collect --multirun LAUNCHER space=dense n=N seed=0 shards=2 SHARD`` into
    ``tmp_path/sliced``: each job writes its own shard files, and together they hold exactly the
    configurations of one process with the same seed and n (``tmp_path/single``). The sliced rows."""
    done = run_cli("collect", "--multirun", *launcher, "space=dense", f"n={n}", "seed=0", "shards=2", shard,
                   f"out={tmp_path / 'sliced'}", *QUIET)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert sorted(p.name.split("-")[2] for p in (tmp_path / "sliced").glob("*.parquet")) == ["0of2", "1of2"]
    collect(compose("collect", ["space=dense", f"n={n}", "seed=0", f"out={tmp_path / 'single'}", *QUIET]))
    rows = load_dataset(tmp_path / "sliced", include_failed=True)
    sliced, single = (frame[SLICE_COLUMNS].sort_values("index").reset_index(drop=True)
                      for frame in (rows, load_dataset(tmp_path / "single", include_failed=True)))
    assert sliced["index"].tolist() == list(range(n))
    pd.testing.assert_frame_equal(sliced, single)
    return rows


def test_joblib_slices_are_exactly_the_single_process_runs_configurations(tmp_path: Path) -> None:
    """The issue's command: two joblib jobs, each its own slice (j mod 2) in its own files; their
    union is the configurations of one process with the same seed and n."""
    collect_in_slices(tmp_path, "hydra/launcher=joblib", n=40)
    merged = run_cli("data", "merge", str(tmp_path / "sliced"), str(tmp_path / "single"), f"out={tmp_path / 'all'}")
    assert merged.returncode == 0, merged.stderr
    # the same configurations on the same hardware id are one measurement; joblib's workers run
    # one thread, so their hardware id differs from the single process's
    machines = {h for name in ("sliced", "single") for h in load_dataset(tmp_path / name, include_failed=True)["hardware_id"]}
    assert len(load_dataset(tmp_path / "all", include_failed=True)) == 40 * len(machines)
    with pytest.raises(CostnetError, match=r"shard must be in \[0, shards\), got shard=2 with shards=2"):
        run(tmp_path / "bad", "shards=2", "shard=2")


def launcher_config(*overrides: str) -> DictConfig:
    """``hydra.launcher`` as ``costnet-collect OVERRIDES out=/data/x`` composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose("collect", overrides=[*overrides, "out=/data/x"], return_hydra_config=True)
    assert cfg.threads is None and cfg.device == "cpu"  # a launcher config leaves the job's settings alone
    return cfg.hydra.launcher


def test_slurm_launcher_configs_compose() -> None:
    """The plugin's own name and conf/hydra/launcher/slurm{,_gpu}.yaml: one task per job, its
    torch threads from --cpus-per-task, one GPU per GPU job, submitit's files beside the sweep."""
    slurm_target = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    plain = launcher_config("hydra/launcher=submitit_slurm")
    assert plain._target_ == slurm_target and plain.submitit_folder == "/data/x/_multirun/.submitit/%j"
    local = launcher_config("hydra/launcher=submitit_local")
    assert local._target_.endswith("submitit_launcher.LocalLauncher")
    cpu = launcher_config("hydra/launcher=slurm")
    assert cpu._target_ == slurm_target and cpu.submitit_folder == plain.submitit_folder
    assert (cpu.nodes, cpu.tasks_per_node, cpu.cpus_per_task, cpu.gpus_per_node) == (1, 1, 8, None)
    assert cpu.partition is None and cpu.mem_gb >= 8 and cpu.timeout_min > 60 and cpu.name == "costnet-collect"
    assert "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK" in cpu.setup
    assert "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK" in cpu.setup
    gpu = launcher_config("hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu")
    assert (gpu._target_, gpu.gpus_per_node, gpu.tasks_per_node, gpu.partition) == (slurm_target, 1, 1, "gpu")
    assert list(gpu.setup) == list(cpu.setup)
    # the README's sweep over eight shards
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for sweep in ("shard=range(8)", "shard=range(0,8)"):
        assert list(OverridesParser.create().parse_override(sweep).sweep_iterator()) == list(range(8))


def test_ray_launcher_configs_compose() -> None:
    """``hydra/launcher=ray`` (a local Ray) and conf/hydra/launcher/ray_cluster.yaml (the running
    cluster, num_cpus cores per job). The Ray launcher is in the `cluster` extra, not `test`."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    ray_target = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    plain = launcher_config("hydra/launcher=ray")
    assert plain._target_ == ray_target and plain.ray.init.address is None
    cluster = launcher_config("hydra/launcher=ray_cluster", "hydra.launcher.ray.remote.num_gpus=1")
    assert cluster._target_ == ray_target and cluster.ray.init.address == "auto"
    assert (cluster.ray.remote.num_cpus, cluster.ray.remote.num_gpus) == (8, 1)


@pytest.mark.slow  # ~20 s: three processes import torch; the SLURM test below covers submitit by default
def test_submitit_local_slices_are_the_single_process_runs_configurations(tmp_path: Path) -> None:
    """Two jobs through submitit's local executor: their union is the single process's
    configurations; submitit's logs and results stay under DIR/_multirun."""
    collect_in_slices(tmp_path, "hydra/launcher=submitit_local", n=8)
    assert len(list((tmp_path / "sliced" / "_multirun" / ".submitit").glob("*/*_result.pkl"))) == 2


def test_slurm_config_through_submitits_slurm_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hydra/launcher=slurm end to end on a stand-in for sbatch/srun (tests/fake_slurm.py): one
    array of two tasks whose torch threads are --cpus-per-task (1 here, torch's default is more
    wherever there are 2+ cores), with the README's shard=range(N) sweep."""
    bin_dir = fake_slurm.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    rows = collect_in_slices(tmp_path, "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", n=8,
                             shard="shard=range(2)")
    assert set(rows["threads"]) == {1}
    script = (bin_dir / "sbatch.log").read_text()
    assert script.count("#!/bin/bash") == 1  # one submission: a job array
    for line in ("#SBATCH --array=0-1%2", "#SBATCH --cpus-per-task=1", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --job-name=costnet-collect", "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK"):
        assert line in script
    assert "--gpus-per-node" not in script


@pytest.mark.slow
def test_ray_slices_are_the_single_process_runs_configurations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """conf/hydra/launcher/ray_cluster.yaml on a local Ray instance of 2 CPUs, one per job: the
    jobs' torch threads are their num_cpus."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    rows = collect_in_slices(tmp_path, "hydra/launcher=ray_cluster", "hydra.launcher.ray.init.address=null",
                             "+hydra.launcher.ray.init.num_cpus=2", "hydra.launcher.ray.remote.num_cpus=1", n=8)
    assert set(rows["threads"]) == {1}


def test_rerun_continues_without_duplicates(tmp_path: Path) -> None:
    run(tmp_path, "n=6")
    again = run(tmp_path, "n=6")
    assert again.written == 0 and again.already_done == 6
    more = run(tmp_path, "n=10")
    assert more.written == 4
    frame = load_dataset(tmp_path)
    assert sorted(frame["index"]) == list(range(10))
    other_seed = run(tmp_path, "n=3", "seed=1")
    assert other_seed.written == 3 and len(load_dataset(tmp_path)) == 13


def test_memory_guard_and_failures_are_recorded(tmp_path: Path) -> None:
    summary = run(tmp_path, "n=6", "memory_budget_gb=1e-7")  # ~107 bytes: nothing fits
    assert summary.skipped == 6 and summary.written == 6
    frame = load_dataset(tmp_path, include_failed=True)
    assert (frame["status"] == "skipped").all() and frame["error"].str.contains("memory guard").all()
    assert frame["time_median_ms"].isna().all() and (frame["est_bytes"] > 107).all()
    failing = run(tmp_path / "fail", "n=4", "dtypes=[float16]", "modes.forward=0")
    frame = load_dataset(tmp_path / "fail", include_failed=True)
    assert len(frame) == 4 and failing.written == 4  # whatever fp16 does here, every row is recorded
    assert set(frame["status"]) <= {"ok", "error"}
    assert frame.loc[frame["status"] == "error", "error"].str.len().gt(0).all()


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "costnet.cli.collect", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = [*TINY_DENSE, *FAST, f"out={out}", "n=400", "flush_every=3", "timing.budget_s=0.02",
            "timing.min_runs=5", "timing.max_runs=5"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "costnet.cli.collect", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.parquet"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = load_dataset(out, include_failed=True)
    assert 0 < len(before) < 400, "kill the run mid-way"
    done = _cli(*args, "n=400")
    assert done.returncode == 0, done.stderr
    after = load_dataset(out, include_failed=True)
    assert len(after) == 400 and after["row_id"].is_unique and sorted(after["index"]) == list(range(400))
    kept = after.set_index("row_id").loc[before["row_id"], "time_median_ms"]
    assert (kept.to_numpy() == before["time_median_ms"].to_numpy()).all()  # finished rows untouched


@pytest.mark.parametrize("args, message", [
    (["space=conv9d"], "Could not find 'space/conv9d'"),
    (["space.params.batch.low=-3"], "batch: range [-3, 32] must satisfy 1 <= low <= high"),
    (["out=/proc/costnet-test"], "output directory '/proc/costnet-test' is not writable"),
    (["n=-1"], "n must be a non-negative integer, got -1"),
    (["device=cuda:7"], "device 'cuda:7' requested but CUDA is not available here"),
])
def test_cli_bad_input_is_one_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    if "cuda" in args[0] and __import__("torch").cuda.is_available():
        pytest.skip("CUDA is available here")
    result = _cli("space=dense", *FAST, f"out={tmp_path / 'x'}", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_corrupt_shard_stops_before_writing(tmp_path: Path) -> None:
    run(tmp_path, "n=3")
    shard = sorted(tmp_path.glob("*.parquet"))[0]
    shard.write_bytes(b"garbage")
    result = _cli(*TINY_DENSE, *FAST, f"out={tmp_path}", "n=6")
    assert result.returncode == 2 and f"corrupt shard '{shard}'" in result.stderr
    assert shard.read_bytes() == b"garbage" and len(list(tmp_path.glob("*.parquet"))) == 1


def test_data_info_cli(tmp_path: Path) -> None:
    run(tmp_path, "n=4")
    ok = subprocess.run([sys.executable, "-m", "costnet.cli.data", "info", str(tmp_path)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "rows per device, op and mode" in ok.stdout
    missing = subprocess.run([sys.executable, "-m", "costnet.cli.data", "info", str(tmp_path / "no")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_use_optimizers_restricts_the_draws(tmp_path: Path) -> None:
    run(tmp_path, "n=12", "use_optimizers=[sgd]", "modes.forward=0")
    assert set(load_dataset(tmp_path)["optimizer"]) == {"sgd"}
    with pytest.raises(Exception, match="lamb"):
        run(tmp_path / "bad", "n=1", "use_optimizers=[lamb]")


@pytest.mark.parametrize("override, message", [
    ("threads=0", "threads must be null or a positive integer, got 0"),
    ("threads=2.5", "threads must be null or a positive integer, got 2.5"),
    ("memory_budget_gb=-1", "memory_budget_gb must be a positive number, got -1"),
    ("memory_budget_gb=null", "memory_budget_gb must be a positive number, got None"),
    ("dtypes=[float32,int3]", "unknown dtype 'int3': choose from ['float32', 'float64', 'float16', 'bfloat16']"),
])
def test_bad_collect_settings_stop_before_anything_is_timed(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(CostnetError, match=re.escape(message)):
        run(tmp_path / "data", "n=2", override)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").glob("*.parquet"))


def test_cuda_runs_are_keyed_by_tf32_and_cpu_keys_stay() -> None:
    from omegaconf import OmegaConf

    from costnet.collect.runner import run_key
    from costnet.config import compose

    cpu = compose("collect", [])
    assert run_key(cpu, "hw") == run_key(OmegaConf.merge(cpu, {"tf32": True}), "hw")  # no TF32 on a CPU
    gpu = OmegaConf.merge(cpu, {"device": "cuda"})
    assert run_key(gpu, "hw") != run_key(OmegaConf.merge(gpu, {"tf32": True}), "hw")
    assert run_key(gpu, "hw") != run_key(cpu, "hw")


def test_runs_with_training_rows_are_keyed_by_the_training_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    from costnet.collect import runner
    from costnet.config import compose

    both = compose("collect", [])
    forward = OmegaConf.merge(both, {"modes": {"forward": 1.0, "train": 0.0}})
    keys = (runner.run_key(both, "hw"), runner.run_key(forward, "hw"))
    monkeypatch.setattr(runner, "TRAIN_STEP", runner.TRAIN_STEP + 1)
    # another training step never resumes a run with training rows; forward-only runs keep their key
    assert runner.run_key(both, "hw") != keys[0] and runner.run_key(forward, "hw") == keys[1]


@pytest.mark.parametrize("tf32", [False, True])
def test_cuda_float32_sets_both_tf32_switches(tf32: bool) -> None:
    import torch

    from costnet.timing.workload import cuda_float32

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
             torch.get_float32_matmul_precision())
    try:
        cuda_float32(tf32)
        assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved[:3]
        torch.set_float32_matmul_precision(saved[3])
