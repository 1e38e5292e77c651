"""Layer types of whole networks: shapes, analytical sizes, integer inputs, collection."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

from costnet.collect.runner import collect
from costnet.config import compose
from costnet.data import load_dataset
from costnet.errors import CostnetError
from costnet.features.analytical import analytical_features
from costnet.ops import get_op
from costnet.ops.elementwise import ELEMENTWISE_FLOPS, FUNCTIONS
from costnet.timing.workload import make_workload, materialize
from tests.conftest import FAST

CPU, META = torch.device("cpu"), torch.device("meta")

CASES: list[dict[str, Any]] = [
    {"op": "batchnorm2d", "batch": 3, "size": 5, "channels_in": 4},
    *({"op": "elementwise", "batch": 2, "features": 7, "fn": fn} for fn in FUNCTIONS),
    {"op": "dropout", "batch": 3, "features": 11, "p": 0.5},
    {"op": "softmax", "batch": 2, "rows": 3, "features": 9},
    {"op": "adaptive_pool2d", "batch": 2, "size": 7, "channels_in": 3, "target_size": 3, "pool": "avg"},
    {"op": "adaptive_pool2d", "batch": 1, "size": 8, "channels_in": 5, "target_size": 1, "pool": "max"},
    {"op": "embedding", "batch": 3, "seq_len": 6, "vocab": 40, "features": 5},
]


def _row(case: dict[str, Any], **context: Any) -> dict[str, Any]:
    return {"mode": "forward", "optimizer": "none", "dtype": "float32", "input_grad": False, **case, **context}


def _ids(case: dict[str, Any]) -> str:
    return f"{case['op']}-{case.get('fn', case.get('pool', ''))}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_outputs_and_analytical_sizes_match_the_real_tensors(case: dict[str, Any]) -> None:
    op = get_op(case["op"])
    module, inputs = materialize(*op.build(case, META, torch.float32), CPU)
    with torch.no_grad():
        out = module.eval()(*inputs)
    params = sum(p.numel() for p in module.parameters())
    e = op.elements(case)
    assert (e.inputs, e.params, e.outputs) == (sum(x.numel() for x in inputs), params, out.numel())
    assert params > 0 if op.has_params else params == 0
    f = analytical_features(pd.DataFrame([_row(case)])).iloc[0]
    assert f["bytes_in"] == sum(x.numel() * x.element_size() for x in inputs)
    assert f["bytes_weights"] == 4 * params and f["params"] == params
    assert f["bytes_out"] == out.numel() * out.element_size()
    assert f["out_size"] == case.get("target_size", 0)
    if case["op"] == "adaptive_pool2d":
        assert out.shape[-2:] == (case["target_size"], case["target_size"])


def test_every_elementwise_function_has_a_flop_count() -> None:
    assert set(ELEMENTWISE_FLOPS) == set(FUNCTIONS)


@pytest.mark.parametrize("size, target", [(7, 3), (8, 3), (8, 4), (6, 6), (13, 1), (9, 6)])
def test_adaptive_pool_window_total(size: int, target: int) -> None:
    """Sum the windows exactly as torch's adaptive pooling places them."""
    span = sum(math.ceil((i + 1) * size / target) - (i * size) // target for i in range(target))
    row = _row({"op": "adaptive_pool2d", "batch": 2, "size": size, "channels_in": 3, "target_size": target,
                "pool": "max"})
    assert analytical_features(pd.DataFrame([row])).iloc[0]["flops_fwd"] == 2 * 3 * span**2


def test_mode_changes_the_cost_of_batchnorm_and_dropout() -> None:
    rows = pd.DataFrame([_row(CASES[0]), _row(CASES[0], mode="train", optimizer="sgd", input_grad=True),
                         _row({"op": "dropout", "batch": 2, "features": 5, "p": 0.1})])
    f = analytical_features(rows)
    assert f["flops_fwd"].iloc[1] == 2 * f["flops_fwd"].iloc[0] and f["flops_fwd"].iloc[2] == 0


def test_embedding_indices_are_valid_and_training_updates_only_the_weights() -> None:
    cfg = _row({"op": "embedding", "batch": 4, "seq_len": 8, "vocab": 1000, "features": 6},
               mode="train", optimizer="sgd", input_grad=True)  # input_grad must not touch the indices
    op = get_op("embedding")
    _, (indices,) = materialize(*op.build(cfg, META, torch.float32), CPU)
    assert indices.dtype == torch.int64 and not indices.requires_grad
    assert 0 <= int(indices.min()) and int(indices.max()) < 1000 and indices.unique().numel() > 16
    trained: list[tuple[list[nn.Parameter], torch.Tensor]] = []

    def make_optimizer(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        trained.append((params, params[0].detach().clone()))
        return torch.optim.SGD(params, lr=1.0)

    work = make_workload(op, cfg, CPU, make_optimizer)
    with work.context():
        work.step()
    (params, before), = trained
    assert len(params) == 1 and params[0].shape == (1000, 6)
    changed = (params[0].detach() != before).any(dim=1).sum()
    assert 0 < changed <= 4 * 8  # only the looked-up rows move


def test_integer_inputs_need_an_index_bound() -> None:
    with pytest.raises(CostnetError, match="index_high"):
        materialize(nn.Embedding(5, 2, device=META), (torch.empty(3, dtype=torch.int64, device=META),), CPU)


TINY = {
    "batchnorm2d": ["space.params.size.high=8", "space.params.channels.high=8"],
    "elementwise": ["space.params.features.high=64"],
    "dropout": ["space.params.features.high=64"],
    "softmax": ["space.params.rows.high=4", "space.params.features.high=16"],
    "adaptive_pool2d": ["space.params.size.high=8", "space.params.channels.high=8"],
    "embedding": ["space.params.seq_len.high=8", "space.params.vocab.high=50", "space.params.features.high=8"],
    "conv2d_net": ["space.params.size.high=12", "space.params.channels.high=8"],
    "pool2d_net": ["space.params.size.high=12", "space.params.channels.high=8"],
    "dense_net": ["space.params.in_features.high=64", "space.params.out_features.high=64"],
}


@pytest.mark.parametrize("space", sorted(TINY))
def test_tiny_collection(space: str, tmp_path: Path) -> None:
    overrides = [f"space={space}", "space.params.batch.high=2", *TINY[space], *FAST, f"out={tmp_path}", "n=4"]
    summary = collect(compose("collect", overrides))
    assert summary.written == 4 and summary.errors == 0 and summary.skipped == 0
    frame = load_dataset(tmp_path)
    op = get_op(frame["op"].iloc[0])
    assert len(frame) == 4 and (frame["time_median_ms"] > 0).all() and frame[list(op.columns)].notna().all().all()
