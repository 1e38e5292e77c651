"""Every op builds, runs both modes, and its analytical sizes match the real tensors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from costnet.timing.workload import optimizer_factory
from costnet.config import compose
from costnet.errors import CostnetError
from costnet.ops import FUNCTION_OPS, MODULE_OPS, OPS, function_op, get_op, module_op, output_size
from costnet.ops.base import padding_total
from costnet.sampling.space import Plan, load_space
from costnet.timing.workload import _train_workload, make_workload, materialize
from tests.test_sampling import SPACES

CPU = torch.device("cpu")


def small_plan(space: str) -> tuple[Plan, object]:
    cfg = compose("collect", [f"space={space}"])
    return Plan(load_space(cfg.space), 3, dict(cfg.modes), tuple(cfg.optimizers), ("float32",)), cfg


@pytest.mark.parametrize("space", [s for s in SPACES if not s.endswith("_paper")])
def test_builds_and_steps_in_both_modes(space: str) -> None:
    plan, cfg = small_plan(space)
    make_optimizer = optimizer_factory(cfg.optimizers)
    seen = set()
    for i in range(40):
        c = plan.config(i)
        elements = plan.space.op.elements(c)
        if elements.inputs + elements.outputs > 5e6:
            continue  # keep the test fast
        module, inputs = materialize(*plan.space.op.build(c, torch.device("meta"), torch.float32), CPU)
        with torch.no_grad():
            out = module(*inputs)
        assert torch.isfinite(out).all()
        if space not in ("lstm", "attention"):
            assert out.numel() == elements.outputs
        work = make_workload(plan.space.op, c, CPU, make_optimizer)
        with work.context():
            work.step()
            work.step()
        seen.add(c["mode"])
    assert seen == {"forward", "train"}


def test_a_training_row_backpropagates_a_fixed_output_gradient() -> None:
    # the step takes no loss of the output: the gradient it hands back is given, the same every
    # step, uniform in [-1, 1) (a mean-squared-error loss over these 64 outputs would give at most 4 / 64)
    x = torch.linspace(-1, 1, 64).reshape(4, 16)
    work = _train_workload(nn.ReLU(), (x,), True, optimizer_factory(compose("collect").optimizers), "sgd")
    work.step()
    first = x.grad.clone()
    work.step()
    assert torch.equal(x.grad, first)
    assert ((first != 0) == (x > 0)).all()
    assert first.abs().max() > 0.5


@pytest.mark.parametrize("size, kernel, stride, padding", [
    (7, 3, 2, "same"), (8, 3, 2, "same"), (8, 4, 3, "same"), (5, 5, 1, "valid"), (9, 2, 4, "valid"),
    (1, 1, 3, "same"), (6, 6, 1, "same")])
def test_tensorflow_padding_rule_matches_built_layers(size: int, kernel: int, stride: int, padding: str) -> None:
    plan, _ = small_plan("conv2d")
    cfg = {"batch": 1, "size": size, "channels_in": 2, "channels_out": 3, "kernel": kernel,
           "stride": stride, "padding": padding, "bias": True, "activation": "none", "groups": 1}
    module, (x,) = materialize(*plan.space.op.build(cfg, torch.device("meta"), torch.float32), CPU)
    expected = output_size(size, kernel, stride, padding)
    assert module(x).shape == (1, 3, expected, expected)


def test_output_size_and_padding_on_arrays_match_the_scalar_rule() -> None:
    rng = np.random.default_rng(0)
    size, kernel, stride = rng.integers(1, 40, 500), rng.integers(1, 8, 500), rng.integers(1, 5, 500)
    kernel = np.minimum(kernel, size)
    padding = pd.Series(rng.choice(["same", "valid"], 500))
    sizes = output_size(size.astype(float), kernel.astype(float), stride.astype(float), padding)
    totals = padding_total(size.astype(float), kernel.astype(float), stride.astype(float), padding)
    for i in range(500):
        args = (int(size[i]), int(kernel[i]), int(stride[i]), padding[i])
        assert sizes[i] == output_size(*args) and isinstance(output_size(*args), int)
        assert totals[i] == padding_total(*args)
    with pytest.raises(CostnetError, match="unknown padding 'full'"):
        output_size(np.array([4.0, 5.0]), 3, 1, np.array(["same", "full"]))


def test_traced_calls_map_through_each_ops_claims() -> None:
    class Wide(nn.Conv2d):
        pass

    assert module_op(Wide(2, 3, 3)) is get_op("conv2d")  # subclasses map as their base class
    assert module_op(nn.ReLU6()).name == "elementwise" and module_op(nn.LSTM(2, 3)) is None
    assert function_op("relu_").name == "elementwise" and function_op("bmm").name == "matmul"
    assert function_op("cat") is None
    for op in OPS.values():
        assert all(MODULE_OPS[m] is op for m in op.modules) and all(FUNCTION_OPS[f] is op for f in op.functions)


@pytest.mark.parametrize("space, index, drawn", [
    ("pool2d", 0, {"batch": 2, "size": 52, "channels_in": 14, "kernel": 2, "stride": 1, "padding": "valid",
                   "pool": "avg"}),
    ("adaptive_pool2d", 1, {"batch": 19, "size": 2, "channels_in": 13, "target_size": 1, "pool": "avg"}),
])
def test_pooling_draws_are_pinned(space: str, index: int, drawn: dict) -> None:
    """Configurations drawn before the pooling ops shared their draw (seed 3): the order
    of batch, size, channels and window must not move."""
    plan, _ = small_plan(space)
    assert {k: plan.config(index)[k] for k in drawn} == drawn
