"""Measuring a GPU no dataset holds and predicting it from its spec sheet: the whole-model and
operator timers (run here on the CPU where they allow it), the Hugging Face build in an explicit
dtype on a real device, and the measured_gpu experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from costnet.config import compose
from costnet.errors import CostnetError
from costnet.networks.measure import first_tensor, time_network, time_network_fresh
from costnet.timing import TimingConfig
from costnet.timing.workload import optimizer_factory
from experiments.measure_neusight_ops import SHAPES, _call, sample_shapes, time_shapes
from experiments.measure_workloads import measure_workload, parse_workload
from tests.test_reproduce import NEUSIGHT, quick

FAST = TimingConfig(warmup_runs=1, min_runs=2, max_runs=2, rel_spread=0.0, spread="iqr", min_block_s=0.0,
                    budget_s=0.0, number=1)
OPTIMIZERS = compose("collect").optimizers
TINY_BF16_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 1, "n_embd": 32,
                  "n_head": 2, "n_positions": 64, "vocab_size": 100, "torch_dtype": "bfloat16"}


def test_first_tensor_takes_the_output_or_its_first_float_tensor() -> None:
    x, mask = torch.ones(2), torch.ones(2, dtype=torch.long)
    assert first_tensor(x) is x
    assert first_tensor((mask, x)) is x
    assert first_tensor({"mask": mask, "logits": x}) is x
    with pytest.raises(TypeError, match="no floating-point tensor"):
        first_tensor((mask, "text"))


@pytest.mark.parametrize("mode", ["forward", "forward_backward", "train"])
def test_a_network_step_of_each_kind_is_timed_and_only_train_updates(mode: str) -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    before = [p.detach().clone() for p in module.parameters()]
    stats = time_network(module, (torch.rand(4, 8),), mode, optimizer_factory(OPTIMIZERS), "sgd", FAST,
                         torch.device("cpu"))
    assert stats["time_median_ms"] > 0 and stats["n_runs"] == 2
    updated = any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    assert updated == (mode == "train")
    grads = [p.grad for p in module.parameters()]
    assert all(g is None for g in grads) if mode == "forward" else all(g is not None for g in grads)


def test_an_unknown_step_kind_is_refused() -> None:
    with pytest.raises(CostnetError, match="'backward'"):
        time_network(nn.Linear(2, 2), torch.rand(1, 2), "backward", optimizer_factory(OPTIMIZERS), "sgd", FAST,
                     torch.device("cpu"))


def test_a_zoo_network_is_timed_in_a_fresh_process_and_its_errors_come_back() -> None:
    stats = time_network_fresh("transformer_block", 1, "forward", OPTIMIZERS, "sgd", FAST, torch.device("cpu"), 2)
    assert stats["time_median_ms"] > 0 and stats["n_runs"] == 2
    assert stats["processes"] == 2 and stats["process_spread"] >= 1  # the faster process's statistics
    with pytest.raises(CostnetError, match="processes must be >= 1, got 0"):
        time_network_fresh("transformer_block", 1, "forward", OPTIMIZERS, "sgd", FAST, torch.device("cpu"), 0)
    with pytest.raises(CostnetError, match="'backward'"):
        time_network_fresh("transformer_block", 1, "backward", OPTIMIZERS, "sgd", FAST, torch.device("cpu"))


@pytest.mark.parametrize("name, parsed", [
    ("bert_large-inf-512-8", ("bert_large", "inf", 512, 8)),
    ("gpt2_large-train-1024-1", ("gpt2_large", "train", 1024, 1)),
])
def test_workload_names_parse(name: str, parsed: tuple) -> None:
    spec = parse_workload(name)
    assert (spec["model"], spec["mode"], spec["seq_len"], spec["batch_size"]) == parsed


@pytest.mark.parametrize("name", ["bert-inf-512", "bert-eval-512-8", "bert-inf-x-8"])
def test_a_malformed_workload_name_is_refused(name: str) -> None:
    with pytest.raises(CostnetError, match=name):
        parse_workload(name)


def test_a_config_is_built_in_float32_on_a_real_device_whatever_its_torch_dtype(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from costnet.networks import hf

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_BF16_GPT2))
    module, ids = hf.build(path, 2, 8, "cpu")
    assert {p.dtype for p in module.parameters()} == {torch.float32}
    assert not any(p.is_meta for p in module.parameters())
    assert ids.shape == (2, 8) and int(ids.max()) < TINY_BF16_GPT2["vocab_size"]
    meta, _ = hf.build(path, 2, 8)
    assert all(p.is_meta and p.dtype == torch.float32 for p in meta.parameters())


def test_a_workload_is_measured_and_a_bad_config_recorded_as_an_error(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_BF16_GPT2))
    cpu = torch.device("cpu")
    for name in ("tiny-inf-16-2", "tiny-train-16-2"):
        row = measure_workload(parse_workload(name), tmp_path, cpu, FAST, optimizer_factory(OPTIMIZERS))
        assert row["e2e_ms"] > 0 and "error" not in row
    row = measure_workload(parse_workload("tiny-inf-999-1"), tmp_path, cpu, FAST, optimizer_factory(OPTIMIZERS))
    assert "e2e_ms" not in row and "999" in row["error"]  # longer than the config's 64 positions


def test_each_neusight_op_call_has_the_datasets_shapes() -> None:
    cpu = torch.device("cpu")
    gemm = pd.Series({"op": "linear", "b": 1, "m": 5, "n": 7, "k": 3})
    assert _call(gemm, cpu)().shape == (1, 5, 3)
    assert _call(gemm.replace("linear", "bmm").set_axis(gemm.index), cpu)().shape == (1, 5, 3)
    conv = pd.Series({"op": "conv", "b": 2, "in_channels": 3, "out_channels": 4, "kernel_size": 3, "input_size": 6,
                      "stride": 1, "padding": 1})
    assert _call(conv, cpu)().shape == (2, 4, 6, 6)
    for op in ("ln", "softmax", "add", "mulu", "powu", "gelu", "tanh", "relu"):
        assert _call(pd.Series({"op": op, "b": 3, "h": 5}), cpu)().shape == (3, 5)
    with pytest.raises(CostnetError, match="'nope'"):
        _call(pd.Series({"op": "nope", "b": 1, "h": 1}), cpu)


def test_neusights_protocol_needs_cuda_events(tmp_path: Path) -> None:
    with pytest.raises(CostnetError, match="device must be cuda"):
        time_shapes(pd.DataFrame({"op": ["add"], "b": [1], "h": [1]}), tmp_path / "d.json", tmp_path,
                    torch.device("cpu"))


@pytest.mark.skipif(not NEUSIGHT.is_dir(), reason="needs ../shared/datasets/neusight2025")
def test_sampled_shapes_are_the_datasets_own_and_bounded() -> None:
    shapes = sample_shapes(NEUSIGHT, 5, 0, 1e10)
    assert shapes.groupby("op").size().max() == 5 and {"linear", "bmm", "conv", "add"} <= set(shapes["op"])
    gemm = shapes[shapes["op"].isin(["linear", "bmm"])]
    assert (2.0 * gemm["b"] * gemm["m"] * gemm["n"] * gemm["k"] <= 1e10).all()
    linear = pd.read_parquet(NEUSIGHT / "linear.parquet", columns=list(SHAPES["linear"]))
    assert len(shapes[shapes["op"] == "linear"][list(SHAPES["linear"])].merge(linear.drop_duplicates())) == 5
    assert shapes.equals(sample_shapes(NEUSIGHT, 5, 0, 1e10))  # seeded


def test_each_workload_keeps_its_fastest_measurement(tmp_path: Path) -> None:
    from costnet.reproduce.measured_gpu import measured_workloads

    base = {"gpu": "G", "workload": "m-inf-8-1", "model": "m", "mode": "inf", "seq_len": 8, "batch_size": 1}
    path = tmp_path / "workloads.csv"
    pd.DataFrame([{**base, "e2e_ms": 12.0}, {**base, "e2e_ms": 10.0}, {**base, "e2e_ms": np.nan}]).to_csv(path)
    row = measured_workloads(path).iloc[0]
    assert (row["measured_ms"], row["measurements"], row["spread"]) == (10.0, 2, pytest.approx(1.2))
    pd.DataFrame([base]).to_csv(path)
    with pytest.raises(CostnetError, match="e2e_ms"):
        measured_workloads(path)


@pytest.mark.skipif(not NEUSIGHT.is_dir(), reason="needs ../shared/datasets/neusight2025")
def test_quick_measured_gpu_predicts_the_h200_from_its_spec_sheet(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    quick("measured_gpu", tmp_path)
    folder = tmp_path / "measured_gpu"
    table = pd.read_csv(folder / "table.csv")
    workloads = table[table["measured_ms"].notna()]
    assert workloads["workload"].str.startswith("bert_large").all() and len(workloads) == 4
    assert (workloads["predicted_ms"] > 0).all() and (workloads["gpu"] == "H200").all()
    assert table["error"].iloc[-1] == pytest.approx(workloads["error"].abs().mean())
    ops = pd.read_csv(folder / "ops.csv").set_index("op")
    assert {"dense", "matmul", "conv2d", "elementwise"} <= set(ops.index) and (ops["rows"] >= 60).all()
    seen = pd.read_csv(folder / "seen_gpus.csv")  # neusight2025's own BERT-large workloads, GPUs seen in training
    assert len(seen) and seen["workload"].str.startswith("bert_large").all() and (seen["predicted_ms"] > 0).all()
    assert set(seen["gpu"]) <= {"P4", "T4", "P100", "V100", "A100-40GB"}
    networks = pd.read_csv(folder / "networks.csv")
    assert len(networks) == 24 and networks["predicted_ms"].gt(0).all()
    assert {"measured_gpu.png", "networks.png"} <= {p.name for p in folder.iterdir()}
