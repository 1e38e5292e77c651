"""The neusight2025 source: NeuSight's layout mapped onto costnet's ops, on tiny directories of
that layout (made-up GPUs) and, where present, on ../shared/datasets/neusight2025."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costnet.config import compose, repo_root
from costnet.errors import CostnetError
from costnet.features.analytical import analytical_features
from costnet.protocols import evaluate
from costnet.protocols.evaluate import run_evaluation
from costnet.sources import load_source, neusight2025, source
from tests.conftest import run_main

NEUSIGHT = repo_root().parent / "shared" / "datasets" / "neusight2025"
needs_neusight = pytest.mark.skipif(not NEUSIGHT.is_dir(), reason="needs ../shared/datasets/neusight2025")

# A made-up GPU, and one whose short name is P4 (for p4_linear); README's devices.* fields.
GPUS = [{"gpu": "Acme X1 24GB", "gpu_short": "X1", "dev_mem_gb": 24, "mem_bw_gbps": 600, "num_sm": 60,
         "cores_per_sm": 128, "freq_mhz": 1700, "fp32_peak_gflops": 26112, "l2_cache_mb": 48},
        {"gpu": "Tesla P4", "gpu_short": "P4", "dev_mem_gb": 8, "mem_bw_gbps": 192, "num_sm": 40,
         "cores_per_sm": 64, "freq_mhz": 1113, "fp32_peak_gflops": 5699, "l2_cache_mb": 2}]
LAUNCH = {"kernel_name": "sgemm", "kernels": "sgemm", "grid_x": 2, "grid_y": 1, "grid_z": 1, "block_x": 128,
          "block_y": 1, "block_z": 1, "blocks_per_sm": 0.05, "warps_per_sm": 0.2}
SHAPES = {"linear": [dict(b=1, m=3, n=5, k=7), dict(b=1, m=40, n=6, k=8), dict(b=1, m=2, n=900, k=3)],
          "bmm": [dict(b=3, m=4, n=5, k=6)],
          "conv": [dict(b=2, in_channels=3, out_channels=5, kernel_size=3, input_size=9, stride=1, padding=1)],
          "ln": [dict(b=4, h=300)], "softmax": [dict(b=4, h=30)],
          "add": [dict(b=2, h=10), dict(b=4, h=33)], "addu": [dict(b=2, h=10)], "relu": [dict(b=3, h=7)]}


def write_op(root: Path, op: str, shapes: Iterable[dict] | None = None, gpus: Iterable[str] = ("Acme X1 24GB",)
             ) -> pd.DataFrame:
    """``<op>.parquet`` in ``root``: each shape on each GPU, with launch columns as NeuSight's."""
    rows = [{"gpu": gpu, "op": op, **shape, "latency_ms": 0.01 * (i + 1), **LAUNCH, "dtype": "float32",
             "source_file": f"collect/{op}/{gpu}.csv"}
            for i, (gpu, shape) in enumerate((g, s) for g in gpus for s in (shapes or SHAPES[op]))]
    frame = pd.DataFrame(rows)
    root.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / f"{op}.parquet")
    return frame


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """linear and add rows on both GPUs, their spec sheets as devices.json."""
    root = tmp_path / "tiny"
    for op in ("linear", "add"):
        write_op(root, op, gpus=[g["gpu"] for g in GPUS])
    (root / "devices.json").write_text(json.dumps(GPUS))
    return root


def load(root: Path, op: str, **options: str) -> pd.DataFrame:
    return load_source({"name": "neusight2025", "path": str(root), **options}, op)


def test_rows_of_an_unseen_gpu_get_costnet_columns_and_its_spec_sheet(tiny: Path) -> None:
    frame = load(tiny, "linear")
    x1 = frame[frame["hardware_id"] == "Acme X1 24GB"].iloc[1]
    assert (x1["op"], x1["batch"], x1["in_features"], x1["out_features"], x1["bias"], x1["activation"]) == \
        ("dense", 40, 6, 8, True, "none")
    assert (x1["device"], x1["mode"], x1["dtype"], x1["status"], x1["time_median_ms"]) == \
        ("X1", "forward", "float32", "ok", 0.02)
    assert (x1["hw_peak_gflops"], x1["hw_bandwidth_gbs"], x1["hw_cores"], x1["hw_clock_mhz"], x1["hw_memory_gb"],
            x1["hw_sm_count"], x1["hw_l2_mb"]) == (26112, 600, 60 * 128, 1700, 24, 60, 48)
    # launch columns are known only after running: kept aside, under names no feature set uses
    assert {f"aux_{c}" for c in LAUNCH} <= set(frame) and not set(LAUNCH) & set(frame)
    assert not {"b", "m", "latency_ms", "gpu"} & set(frame)  # NeuSight's m, n, k mean other things than costnet's
    assert set(frame["device"]) == {"X1", "P4"}


def test_devices_parquet_serves_when_there_is_no_json(tiny: Path) -> None:
    pd.DataFrame(GPUS).to_parquet(tiny / "devices.parquet")
    from_json = load(tiny, "add")
    (tiny / "devices.json").unlink()
    pd.testing.assert_frame_equal(load(tiny, "add"), from_json)


def test_dataset_and_costnet_op_names_load_the_same_rows(tiny: Path) -> None:
    for ours, theirs in (("dense", "linear"), ("elementwise", "add")):
        pd.testing.assert_frame_equal(load(tiny, ours), load(tiny, theirs))
    write_op(tiny, "addu")
    both = load(tiny, "elementwise")  # every element-wise file the directory has
    assert both["fn"].tolist() == ["add"] * 4 + ["addu"] and set(both["op"]) == {"elementwise"}


@pytest.mark.parametrize("op", sorted(SHAPES))
def test_flops_and_bytes_follow_the_readme(tmp_path: Path, op: str) -> None:
    write_op(tmp_path, op)
    (tmp_path / "devices.json").write_text(json.dumps(GPUS))
    frame = load(tmp_path, op)
    s = SHAPES[op][0]
    f = analytical_features(frame).iloc[0]
    if op in ("bmm", "linear"):  # README: n is the reduction dimension, FLOPs 2·b·m·n·k
        b, m, n, k = s["b"], s["m"], s["n"], s["k"]
        bias = b * m * k if op == "linear" else 0  # costnet also counts the bias add
        assert f["flops_fwd"] == 2 * b * m * n * k + bias
        assert f["bytes"] == 4 * (b * m * n + (n * k + k if op == "linear" else b * n * k) + b * m * k)
        return
    if op == "conv":  # 3x3, stride 1, padding 1: the output is as large as the input
        out = s["b"] * s["out_channels"] * s["input_size"] ** 2
        assert frame["padding"].iloc[0] == "same"
        assert f["flops_fwd"] == 2 * out * s["in_channels"] * 9 and f["out_size"] == s["input_size"]
        return
    n = s["b"] * s["h"]
    per, reads = {"ln": (8, 1), "softmax": (5, 1), "add": (1, 2), "addu": (1, 1), "relu": (1, 1)}[op]
    assert f["flops_fwd"] == per * n
    assert f["bytes_in"] == 4 * reads * n and f["bytes_out"] == 4 * n


def test_p4_linear_rows_can_be_dropped(tiny: Path) -> None:
    kept, dropped = load(tiny, "linear"), load(tiny, "linear", p4_linear="drop")
    assert set(kept["device"]) == {"X1", "P4"} and set(dropped["device"]) == {"X1"}
    assert len(load(tiny, "add", p4_linear="drop")) == 4  # only linear rows
    with pytest.raises(CostnetError, match="p4_linear must be one of"):
        load(tiny, "linear", p4_linear="maybe")


def test_original_columns_come_back_for_any_row(tiny: Path) -> None:
    write_op(tiny, "relu")
    cfg = {"name": "neusight2025", "path": str(tiny)}
    frame = load(tiny, "elementwise").sample(frac=1.0, random_state=0).iloc[:4]
    original = source(cfg).original(cfg, "elementwise", frame)
    assert original["op"].tolist() == frame["fn"].tolist() and original["h"].tolist() == frame["features"].tolist()
    assert original["latency_ms"].tolist() == frame["time_median_ms"].tolist() and "kernel_name" in original


@pytest.mark.parametrize("change, op, message", [
    (lambda root: root.rename(root.with_name("gone")), "linear", "dataset directory .* not found"),
    (lambda root: None, "bmm", r"no bmm.parquet in .*; its ops are \['linear', 'add'\]"),
    (lambda root: None, "lstm", "neusight2025 has no op 'lstm'"),
    (lambda root: write_op(root, "conv", [{**SHAPES["conv"][0], "padding": 2}]), "conv",
     "conv padding 2 .* is neither TensorFlow 'same' nor 'valid'"),
    (lambda root: (root / "devices.json").unlink(), "add", "no devices.json or devices.parquet"),
    (lambda root: (root / "devices.json").write_text(json.dumps(GPUS[:1])), "add",
     r"has no spec sheet of GPU\(s\) \['Tesla P4'\]"),
    (lambda root: (root / "devices.json").write_text(json.dumps([GPUS[0], {**GPUS[1], "num_sm": "many"}])),
     "add", "num_sm of 'Tesla P4' must be a positive number, got 'many'"),
])
def test_errors_name_what_is_wrong_in_one_line(tiny: Path, change, op: str, message: str) -> None:
    change(tiny)
    with pytest.raises(CostnetError, match=message) as caught:
        load(tiny, op)
    assert "\n" not in str(caught.value)


def test_files_are_the_op_files_and_spec_sheets(tiny: Path) -> None:
    assert [f.name for f in neusight2025.files({"path": str(tiny)})] == ["linear.parquet", "add.parquet",
                                                                       "devices.json"]


def test_train_then_evaluate_on_another_directory(tiny: Path, tmp_path: Path) -> None:
    """costnet-train on one directory, costnet-evaluate on another whose GPU no model has seen."""
    train_dir, other = tmp_path / "train", tmp_path / "other"
    shapes = [dict(b=1, m=m, n=64 * m, k=32) for m in range(1, 21)]
    write_op(train_dir, "linear", shapes, gpus=[g["gpu"] for g in GPUS])
    (train_dir / "devices.json").write_text(json.dumps(GPUS))
    write_op(other, "linear", shapes[:5], gpus=["Zeta 9"])
    pd.DataFrame([{**GPUS[0], "gpu": "Zeta 9", "gpu_short": "Z9"}]).to_parquet(other / "devices.parquet")
    run = tmp_path / "run"
    code, err = run_main("train", "dataset=neusight2025", f"dataset.path={train_dir}", "op=linear",
                         "protocol=lodo", "estimator=linear_flops", "baselines=[]", f"out={run}", "plots=false",
                         "tracking.wandb=disabled")
    assert code == 0, err[-2000:]
    artifact = run / json.loads((run / "manifest.json").read_text())["artifacts"][0]["path"]
    scores, preds = tmp_path / "scores.json", tmp_path / "pred.parquet"
    code, err = run_main("evaluate", f"model={artifact}", "dataset=neusight2025", f"dataset.path={other}",
                         f"out={scores}", f"predictions={preds}")
    assert code == 0, err[-2000:]
    assert json.loads(scores.read_text())["Z9"]["n"] == 5
    rows = pd.read_parquet(preds)
    assert {"gpu", "b", "m", "n", "k", "latency_ms", "kernel_name", "predicted_ms"} <= set(rows)
    assert (rows["gpu"] == "Zeta 9").all() and (rows["predicted_ms"] > 0).all()


def test_evaluate_scores_the_dataset_op_asked_for(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    """A model of elementwise rows scores every element-wise file, or only op=add's."""

    class Model:
        op = "elementwise"

        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.ones(len(frame))

    write_op(tiny, "relu")
    monkeypatch.setattr(evaluate, "load_predictor", lambda path: Model())
    preds = tmp_path / "pred.parquet"
    for op, ops in ((None, {"add", "relu"}), ("add", {"add"})):
        run_evaluation(compose("evaluate", ["model=m", "dataset=neusight2025", f"dataset.path={tiny}",
                                            f"predictions={preds}", f"op={op or 'null'}"]))
        assert set(pd.read_parquet(preds)["op"]) == ops


# The real dataset: README, "Rows per op and GPU" and "What each op computes".
FIVE = {"P4", "T4", "P100", "V100", "A100-40GB"}


@needs_neusight
def test_every_op_of_the_dataset_loads_with_readme_flops() -> None:
    devices = set()
    for op, target in neusight2025.OPS.items():
        frame = load(NEUSIGHT, op)
        times = frame["time_median_ms"].to_numpy()
        assert (frame["op"] == target).all() and np.isfinite(times).all() and (times > 0).all(), op
        devices |= set(frame["device"])
        raw = pd.read_parquet(NEUSIGHT / f"{op}.parquet")
        flops = analytical_features(frame)["flops_fwd"].to_numpy()
        if op in ("bmm", "linear"):
            expected = 2.0 * raw["b"] * raw["m"] * raw["n"] * raw["k"] + (raw["b"] * raw["m"] * raw["k"]
                                                                         if op == "linear" else 0)
        elif op == "conv":
            expected = 2.0 * raw["b"] * raw["out_channels"] * raw["input_size"] ** 2 * raw["in_channels"] * 9
        else:
            expected = 1.0 * raw["b"] * raw["h"] * {"ln": 8, "softmax": 5, "gelu": 9, "tanh": 5, "pow": 11,
                                                    "powu": 11}.get(op, 1)
        np.testing.assert_array_equal(flops, expected.to_numpy(), err_msg=op)
    assert devices == FIVE


@needs_neusight
def test_the_real_p4_linear_rows_are_the_ones_dropped() -> None:
    kept, dropped = load(NEUSIGHT, "linear"), load(NEUSIGHT, "linear", p4_linear="drop")
    assert len(kept) - len(dropped) == 6423 and set(dropped["device"]) == FIVE - {"P4"}  # README's P4 linear rows
