"""costnet-reproduce: provenance, results, the report, the CLI and quick runs of the experiments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from costnet.cli import reproduce as cli
from costnet.config import repo_root
from costnet.reproduce import provenance
from costnet.reproduce.justus import Trained, metric_table
from costnet.reproduce.provenance import MissingInput, data_hashes, git_state
from costnet.reproduce.registry import experiment_names, load_experiment, paper, runner
from costnet.reproduce.result import Result
from tests.conftest import run_cli

JUSTUS = repo_root().parent / "shared" / "datasets" / "justus2018"
needs_justus = pytest.mark.skipif(not JUSTUS.is_dir(), reason="needs ../shared/datasets/justus2018")


def reproduce(*args: str) -> subprocess.CompletedProcess:
    return run_cli("reproduce", *args)


def quick(name: str, out: Path, *subset: str) -> None:
    """Run one experiment in quick mode in-process, with extra ``subset`` overrides."""
    cfg = load_experiment(name, quick=True, out=out / name)
    if subset:
        cfg.subset = OmegaConf.merge(cfg.subset, {"all": [*cfg.subset.get("all", []), *subset]}) \
            if OmegaConf.is_dict(cfg.subset) else [*cfg.subset, *subset]
    runner(cfg)(cfg).write(out / name, OmegaConf.to_container(cfg, resolve=True), 0.0)


# ----------------------------------------------------------------- provenance


def test_git_commit_is_recorded_and_unknown_outside_a_checkout(tmp_path: Path, monkeypatch) -> None:
    state = git_state()
    assert len(state["commit"]) == 40 and all(c in "0123456789abcdef" for c in state["commit"])
    assert state["dirty"] in (True, False)
    monkeypatch.setattr(provenance, "repo_root", lambda: tmp_path)
    assert git_state() == {"commit": "unknown", "dirty": None}


def test_data_hash_changes_with_a_file_and_not_with_its_location(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.parquet").write_bytes(b"rows" * 1000)
        (tmp_path / folder / "y.parquet").write_bytes(b"more")
    first = data_hashes([tmp_path / "a" / "y.parquet", tmp_path / "a" / "x.parquet"])
    assert list(first["files"]) == ["x.parquet", "y.parquet"]
    assert data_hashes([tmp_path / "b" / "x.parquet", tmp_path / "b" / "y.parquet"])["sha256"] == first["sha256"]
    (tmp_path / "a" / "y.parquet").write_bytes(b"More")
    changed = data_hashes([tmp_path / "a" / "x.parquet", tmp_path / "a" / "y.parquet"])
    assert changed["sha256"] != first["sha256"] and changed["files"]["x.parquet"] == first["files"]["x.parquet"]


def test_result_records_config_commit_and_data(tmp_path: Path) -> None:
    data = tmp_path / "input.csv"
    data.write_text("a,b\n1,2\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f.png").write_bytes(b"png")
    result = Result("demo", "A demo", "what", "on what", "how", pd.DataFrame({"x": [1.0, np.nan]}), figures=["f.png"],
                    notes=["a note"], inputs=[data])
    config = {"seed": 3, "train": ["op=conv", "max_rows=10"], "quick": {"train": ["op=conv", "max_rows=10"]}}
    record = result.write(tmp_path / "out", config, 1.5)
    stored = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert stored["config"] == config and stored["commit"] == record["commit"] != ""
    assert stored["data"]["files"] == {"input.csv": provenance.file_sha256(data)} and stored["quick"] is True
    page = (tmp_path / "out" / "table.md").read_text()
    assert "# A demo" in page and "![demo: f.png](f.png)" in page and "- a note" in page
    assert "QUICK" in page and "max_rows=10" in page
    assert pd.read_csv(tmp_path / "out" / "table.csv")["x"].tolist()[0] == 1.0
    assert not result.write(tmp_path / "out", {"seed": 3}, 1.5)["quick"]
    assert "Full run" in (tmp_path / "out" / "table.md").read_text()


def test_result_records_the_code_state_from_the_start(tmp_path: Path) -> None:
    """Edits made while an experiment runs do not change the commit it records."""
    result = Result("demo", "A demo", "what", "on what", "how", pd.DataFrame({"x": [1.0]}))
    record = result.write(tmp_path, {"seed": 0}, 1.0, {"commit": "abc123", "dirty": False})
    assert (record["commit"], record["dirty"]) == ("abc123", False)
    assert "commit `abc123`;" in (tmp_path / "table.md").read_text()


# ----------------------------------------------------------------- configs and tables


def test_every_experiment_has_a_config_and_runner_and_quick_merges() -> None:
    names = experiment_names()
    assert names == ["justus_per_device", "justus_joint", "justus_lodo_fewshot", "aigauge_regressors",
                     "network_validation", "paleo_scaling", "unseen_gpus", "neusight_workloads", "measured_gpu"]
    for name in names:
        full, fast = load_experiment(name), load_experiment(name, quick=True)
        assert full.name == name and "quick" not in full and "quick" in fast and callable(runner(full))
    assert load_experiment("justus_joint", quick=True).subset.all[0] == "max_rows=300"
    assert load_experiment("aigauge_regressors", quick=True).models.random_forest.grid.min_samples_leaf == [1, 5]
    assert paper("justus_per_device", "rmse_ms", "conv")["V100"] == 1.73


def test_metric_table_puts_paper_numbers_beside_ours() -> None:
    rows = []
    for model, scale in (("mlp", 1.0), ("gbm", 2.0)):
        common = {"model": model, "device": "V100", "rmse_ms": scale}
        rows += [{**common, "run": "lodo", "k": None, "n": 10, "mre": 0.1 * scale},
                 {**common, "run": "fewshot", "k": 0, "n": 8, "mre": 0.2},
                 {**common, "run": "fewshot", "k": 10, "n": 8, "mre": 0.1}]
    trained = Trained(pd.DataFrame(rows), pd.DataFrame(), {}, [], "mlp")
    table = metric_table(trained, {"mre": {"lodo": {"V100": 0.396}}, "source": "test"})
    assert list(table.columns) == ["run", "device", "k", "test rows", "rmse_ms gbm", "rmse_ms mlp", "mre gbm",
                                   "mre mlp", "paper mre"]
    lodo = table[table["run"] == "lodo"].iloc[0]
    assert pd.isna(lodo["k"]) and lodo["paper mre"] == 0.396 and lodo["mre gbm"] == pytest.approx(0.2)
    assert table[table["run"] == "fewshot"]["paper mre"].isna().all() and len(table) == 3


# ----------------------------------------------------------------- the CLI


def test_quick_paleo_writes_its_result_and_the_report(tmp_path: Path) -> None:
    done = reproduce("--quick", "--only", "paleo_scaling", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "paleo_scaling"
    for name in ("table.md", "table.csv", "scaling.png", "provenance.json"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "provenance.json").read_text())
    assert record["quick"] is True and record["config"]["reference"] == "alexnet_k20"
    assert "alexnet_k20.yaml" in " ".join(record["data"]["files"])
    table = pd.read_csv(folder / "table.csv")
    assert table["workers"].tolist() == [1, 2, 4, 8] and "PALEO data-parallel hours" in table
    report = (tmp_path / "REPORT.md").read_text()
    assert "](paleo_scaling/scaling.png)" in report and "## PALEO" in report and "`justus_joint`: not run" in report


@pytest.mark.slow
def test_unknown_experiment_is_a_clear_error() -> None:
    done = reproduce("--only", "paleo_scaling", "bogus_experiment")
    assert done.returncode == 2 and "bogus_experiment" in done.stderr and "invalid choice" in done.stderr


def test_missing_input_is_skipped_with_its_reason(tmp_path: Path, monkeypatch) -> None:
    cfg = load_experiment("justus_joint", quick=True, out=tmp_path / "justus_joint")
    cfg.subset.all = [*cfg.subset.all, f"dataset.path={tmp_path / 'absent'}"]
    with pytest.raises(MissingInput, match="absent"):
        runner(cfg)(cfg)

    def absent(name: str, quick: bool, out: Path) -> float:
        raise MissingInput(f"no data for {name}")

    monkeypatch.setattr(cli, "run_one", absent)
    cli.main(["--only", "justus_joint", "--out", str(tmp_path)])
    assert "`justus_joint`: skipped: no data for justus_joint" in (tmp_path / "REPORT.md").read_text()


# ----------------------------------------------------------------- quick runs on the data


@needs_justus
def test_quick_justus_joint_on_a_tiny_subset(tmp_path: Path) -> None:
    quick("justus_joint", tmp_path, "max_rows=80")
    folder = tmp_path / "justus_joint"
    table = pd.read_csv(folder / "table.csv")
    assert set(table["device"]) == {"V100", "K80", "all"} and "paper rmse_ms" in table
    assert table.loc[table["device"] == "all", "paper rmse_ms"].tolist() == [3.88]
    assert {"rmse_ms mlp", "mre gbm", "mre linear_flops"} <= set(table.columns) and (table["test rows"] > 0).all()
    assert (folder / "conv_predicted_vs_measured.png").is_file()
    record = json.loads((folder / "provenance.json").read_text())
    assert set(record["data"]["files"]) == {"conv.parquet", "dense.parquet"}
    assert record["runs"]["conv"]["tracking"]["group"] == "justus_joint" and record["runs"]["conv"]["max_rows"] == 80


NEUSIGHT = repo_root().parent / "shared" / "datasets" / "neusight2025"


@needs_justus
@pytest.mark.skipif(not NEUSIGHT.is_dir(), reason="needs ../shared/datasets/neusight2025")
def test_quick_unseen_gpus_tabulates_targets_and_draws_each_gpu(tmp_path: Path) -> None:
    """Leave one GPU out on neusight2025 linear and justus2018 conv, few-shot and in distribution:
    every held-out GPU gets a row with its target, a scatter panel and an error-by-size entry."""
    quick("unseen_gpus", tmp_path, "max_rows=60")
    folder = tmp_path / "unseen_gpus"
    table = pd.read_csv(folder / "table.csv")
    assert list(dict.fromkeys(table["run"])) == ["linear_lodo", "conv_lodo", "linear_fewshot", "linear_in_dist"]
    lodo = table[table["run"] == "linear_lodo"]
    assert sorted(lodo["device"]) == ["P4", "T4", "V100"] and (lodo["target mre"] == 0.10).all()
    assert table.loc[table["run"] == "linear_in_dist", "target mre"].eq(0.05).all()
    assert table.loc[table["run"] == "linear_fewshot", "target mre"].isna().all()
    assert {"mre bounded", "mre gbm", "mre roofline"} <= set(table.columns)
    assert (table["met"].dropna().astype(str).isin(["True", "False"])).all()
    for figure in ("linear_lodo_predicted_vs_measured.png", "linear_fewshot_predicted_vs_measured.png",
                   "mre_per_gpu.png", "mre_by_size.png"):
        assert (folder / figure).is_file()
    sizes = pd.read_csv(folder / "error_by_size.csv")
    assert set(sizes["run"]) == set(table["run"]) and (sizes["rows"] > 0).all()
    assert {"V100 k=0", "V100 k=10"} <= set(sizes.loc[sizes["run"] == "linear_fewshot", "device"])


def test_node_sum_is_the_nodes_outside_the_block_plus_layers_times_the_block() -> None:
    from costnet.reproduce.workloads import node_sum_ms

    nodes = pd.DataFrame({"node": ["wte", "h_0_ln", "transformer_h_0_attn", "add_3", "transformer_h_0_mlp", "lm_head"],
                          "latency_ms": [1.0, 9.0, 2.0, 3.0, 4.0, 5.0]})
    # the block runs from the first to the last h_0 node (2 + 3 + 4: the unnamed add inside it counts)
    assert node_sum_ms(nodes, 24) == pytest.approx(1.0 + 9.0 + 5.0 + 24 * 9.0)
    assert np.isnan(node_sum_ms(nodes, float("nan"))) and np.isnan(node_sum_ms(nodes.iloc[[0, 5]], 24))


@pytest.mark.skipif(not NEUSIGHT.is_dir(), reason="needs ../shared/datasets/neusight2025")
def test_quick_workloads_predict_forward_passes_and_training_steps(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    quick("neusight_workloads", tmp_path)
    table = pd.read_csv(tmp_path / "neusight_workloads" / "table.csv")
    workloads = table[table["workload"].notna()]
    assert set(workloads["gpu"]) == {"P4", "T4", "V100"} and workloads["workload"].str.startswith("bert_large").all()
    assert (workloads["predicted_ms"] > 0).all() and workloads["skipped"].isna().all()
    summary = table[table["workload"].isna()].set_index("gpu")
    assert summary.loc["V100", "workloads"] == 4 and summary["mean_abs_error"].notna().all()
    assert (tmp_path / "neusight_workloads" / "workloads.png").is_file()


@needs_justus
@pytest.mark.slow
def test_justus_report_gathers_the_quick_runs(tmp_path: Path) -> None:
    from experiments import justus_report

    for name in ("justus_per_device", "justus_joint", "justus_lodo_fewshot"):
        quick(name, tmp_path, "max_rows=60")
    justus_report.main(["--results", str(tmp_path), "--out", str(tmp_path / "report.md")])
    page = (tmp_path / "report.md").read_text()
    for heading in ("conv, per_device", "dense, per_device", "conv, joint", "conv, lodo", "conv, lodo: where",
                    "conv, fewshot"):
        assert f"## {heading}" in page
    assert "MLP train s" in page and "median predicted / measured" in page and "paper rmse_ms" in page


@pytest.mark.parametrize("name, subset", [
    ("paleo_scaling", []),
    pytest.param("aigauge_regressors", ["max_rows=60"], marks=[needs_justus, pytest.mark.slow]),
])
def test_same_seed_same_table(tmp_path: Path, name: str, subset: list[str]) -> None:
    for run in ("first", "second"):
        quick(name, tmp_path / run, *subset)
    first, second = ((tmp_path / run / name / "table.csv").read_text() for run in ("first", "second"))
    assert first == second


@pytest.mark.slow
def test_quick_network_validation(tmp_path: Path) -> None:
    quick("network_validation", tmp_path)
    table = pd.read_csv(tmp_path / "network_validation" / "table.csv")
    assert table[["network", "batch", "mode"]].values.tolist() == [["resnet18", 1, "forward"]]
    assert (table[["whole_ms", "layer_sum_ms", "predicted_ms"]] > 0).all(axis=None)
