"""Every op builds, runs both modes, and its analytical sizes match the real tensors."""

from __future__ import annotations

import pytest
import torch

from costnet.timing.workload import optimizer_factory
from costnet.config import compose
from costnet.ops import output_size
from costnet.sampling.space import Plan, load_space
from costnet.timing.workload import make_workload, materialize
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
