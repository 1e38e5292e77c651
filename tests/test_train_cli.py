"""costnet-train and costnet-evaluate end to end, on justus2018 (if present) and a local collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from costnet.collect.runner import collect
from costnet.config import compose, repo_root
from costnet.nets.predictor import load_predictor
from tests.conftest import FAST, TINY_DENSE, needs_justus, run_cli
from tests.wandb_offline import read_run

JUSTUS = repo_root().parent / "shared" / "datasets" / "justus2018"
QUICK = ["estimator.max_epochs=3", "estimator.width=32", "estimator.depth=2", "tracking.wandb=disabled", "plots=true",
         "baselines=[gbm,linear_flops,paleo]", "estimator.batch_size=128",
         "estimator.patience=3"]


cli = run_cli


@pytest.mark.skipif(not JUSTUS.is_dir(), reason="needs ../shared/datasets/justus2018")
@pytest.mark.parametrize("protocol", ["per_device", *(pytest.param(p, marks=pytest.mark.slow)
                                                     for p in ("joint", "lodo", "fewshot"))])
def test_train_then_evaluate_on_justus(tmp_path: Path, protocol: str) -> None:
    run = tmp_path / "run"
    extra = ["protocol.ks=[5,20]"] if protocol == "fewshot" else []
    done = cli("train", "dataset=justus2018", f"dataset.path={JUSTUS}", "op=dense", f"protocol={protocol}",
               f"out={run}", "max_rows=150", "devices=[V100,K80]", "seed=0",
               "dataset.max_batchsize=32", *QUICK, *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())["artifacts"]
    metrics = pd.read_csv(run / "metrics.csv")
    assert set(metrics["model"]) == {"mlp", "gbm", "linear_flops", "paleo"}
    assert (metrics["mre"] >= 0).all() and (metrics["n"] > 0).all()
    expected_folds = {"per_device": 2, "joint": 1, "lodo": 2, "fewshot": 2}[protocol]
    plain = [a for a in manifest if a["k"] is None]
    assert len(plain) == expected_folds and all(a["op"] == "dense" for a in manifest)
    if protocol == "lodo":
        assert all(set(a["train_devices"]).isdisjoint(a["test_devices"]) for a in plain)
    if protocol == "fewshot":
        assert sorted(metrics["k"].dropna().unique().tolist()) == [0, 5, 20]
    assert list((run / "plots").glob("*.png")) and (run / "logs").is_dir()

    artifact = run / plain[0]["path"]
    # the fastest share of peak its training rows reached, per mode: the compute floor of
    # whole-network prediction (costnet.features.roof)
    shares = load_predictor(artifact).meta["peak_share"]
    assert set(shares) == {"forward", "train"} and all(0 < v < 1 for v in shares.values())
    scores, preds = tmp_path / "scores.json", tmp_path / "pred.parquet"
    done = cli("evaluate", f"model={artifact}", "dataset=justus2018", f"dataset.path={JUSTUS}",
               "devices=[V100,K80]", f"out={scores}", f"predictions={preds}")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(scores.read_text())
    assert set(result) == {"V100", "K80"} and {"rmse_ms", "mre", "r2", "spearman"} <= set(result["V100"])
    rows = pd.read_parquet(preds)
    assert {"gpu", "dim_input", "time_median_ms", "predicted_ms"} <= set(rows.columns)  # original columns kept
    assert len(rows) == result["V100"]["n"] + result["K80"]["n"] and (rows["predicted_ms"] > 0).all()


@pytest.mark.slow
def test_train_on_a_local_collection(tmp_path: Path) -> None:
    data = tmp_path / "data"
    collect(compose("collect", [*TINY_DENSE, *FAST, f"out={data}", "n=60", "measure_peaks=true"]))
    run = tmp_path / "run"
    done = cli("train", "dataset=local", f"dataset.path={data}", "op=dense", "features=hardware",
               f"out={run}", *QUICK)
    assert done.returncode == 0, done.stderr[-3000:]
    artifact = run / json.loads((run / "manifest.json").read_text())["artifacts"][0]["path"]
    done = cli("evaluate", f"model={artifact}", "dataset=local", f"dataset.path={data}", f"out={tmp_path / 's.json'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads((tmp_path / "s.json").read_text())) == 1


@pytest.mark.parametrize("args, message", [
    (["protocol=crossval"], "Could not find 'protocol/crossval'"),
    (["dataset.path=/nonexistent"], "'/nonexistent/dense.parquet' not found"),
    pytest.param(["baselines=[xgb]"], "unknown baseline 'xgb'", marks=[needs_justus, pytest.mark.slow]),  # checked after the rows load
    pytest.param(["estimator.loss=cubic"], "unknown loss 'cubic'", marks=[needs_justus, pytest.mark.slow]),
])
def test_train_bad_input_is_one_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    done = cli("train", "dataset=justus2018", "op=dense", f"out={tmp_path}", "max_rows=50", *QUICK, *args)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


def test_evaluate_missing_artifact(tmp_path: Path) -> None:
    done = cli("evaluate", f"model={tmp_path / 'none.safetensors'}")
    assert done.returncode == 2 and "not found" in done.stderr


@pytest.mark.slow
def test_offline_wandb_runs_hold_what_the_dashboard_needs(tmp_path: Path) -> None:
    """One offline W&B run per model and fold: grouped, typed, with config, test metrics,
    the per-device table and the predicted-vs-measured plot (WANDB_MODE=offline: no network)."""
    data = tmp_path / "data"
    collect(compose("collect", [*TINY_DENSE, *FAST, f"out={data}", "n=40"]))
    run = tmp_path / "run"
    quick = [a for a in QUICK if not a.startswith(("tracking.", "baselines="))]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run([sys.executable, "-m", "costnet.cli.train", "dataset=local", f"dataset.path={data}",
                           "op=dense", f"out={run}", "baselines=[gbm]", "tracking.wandb=offline",
                           "dataset.disturbed=keep",  # W&B's background service from earlier tests may disturb the timing
                           "tracking.group=dashboard-test", *quick], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {r.job_type: r for r in map(read_run, sorted((run / "wandb").glob("offline-run-*")))}
    assert set(runs) == {"mlp", "gbm"}
    for model, logged in runs.items():
        assert logged.group == "dashboard-test" and logged.name.endswith(f"-{model}")
        assert logged.config["op"] == "dense" and logged.config["protocol"]["name"] == "per_device"
        assert 0 <= logged.summary["test/mre"] and logged.summary["test/n"] == 4
        for key in ("test/per_device", "test/predicted_vs_measured"):
            assert any(k.startswith(key) for k in logged.history_keys), (key, logged.history_keys)
        assert {p.suffix for p in logged.media} == {".png", ".json"}
    assert "val_loss" in runs["mlp"].history_keys  # the MLP's training curve


def test_a_dataset_recommends_its_model_unless_the_command_line_chooses() -> None:
    from costnet.cli.train import recommended
    from costnet.config import compose

    def chosen(*given: str) -> tuple[str, str]:
        cfg = recommended(compose("train", list(given)), list(given))
        return str(cfg.estimator.get("name") or cfg.estimator.get("model") or cfg.estimator.kind), str(cfg.features.name)

    assert chosen("dataset=neusight2025", "protocol=lodo", "estimator.max_epochs=3") == ("bounded_ensemble", "gpu")
    assert chosen("dataset=neusight2025", "estimator=gbm") == ("gbm", "gpu")
    assert chosen("dataset=neusight2025", "features=hardware") == ("bounded_ensemble", "hardware")
    assert chosen("dataset=justus2018", "protocol=lodo") == ("mlp", "hardware")  # no recommendation
