"""Sampling: reproducibility, the paper's constraints, clear errors on bad spaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from costnet.config import compose, conf_dir
from costnet.errors import CostnetError
from costnet.sampling.space import Plan, load_space

SPACES = sorted(p.stem for p in (conf_dir() / "space").glob("*.yaml"))


def plan(space: str, seed: int = 0, overrides: tuple[str, ...] = ()) -> Plan:
    cfg = compose("collect", [f"space={space}", *overrides])
    return Plan(load_space(cfg.space), seed, dict(cfg.modes), tuple(cfg.optimizers), tuple(cfg.dtypes))


@pytest.mark.parametrize("space", SPACES)
def test_same_seed_same_sequence(space: str) -> None:
    a, b = plan(space), plan(space)
    assert [a.config(i) for i in range(50)] == [b.config(i) for i in range(50)]
    other = plan(space, seed=1)
    assert [a.config(i) for i in range(50)] != [other.config(i) for i in range(50)]


def test_configuration_drawn_alone_equals_in_sequence() -> None:
    p = plan("conv2d")
    sequence = [p.config(i) for i in range(30)]
    assert p.config(17) == sequence[17]


@pytest.mark.parametrize("space", ["conv2d", "conv2d_paper"])
def test_conv_constraints(space: str) -> None:
    p = plan(space)
    s = p.space.params
    budget = s.settings["channel_budget"]
    for cfg in (p.config(i) for i in range(2000)):
        assert s.values["batch"].low <= cfg["batch"] <= s.values["batch"].high
        assert 1 <= cfg["kernel"] <= min(7, cfg["size"])
        cap = max(1, math.ceil(budget / cfg["size"]) - 1)
        assert 1 <= cfg["channels_in"] <= cap and 1 <= cfg["channels_out"] <= cap
        assert cfg["channels_in"] < budget / cfg["size"] or cfg["channels_in"] == 1
        assert 1 <= cfg["stride"] <= 4 and cfg["padding"] in ("same", "valid")
        assert (cfg["optimizer"] == "none") == (cfg["mode"] == "forward")


def test_mode_mix_follows_weights() -> None:
    p = plan("dense", overrides=("modes.forward=0.25", "modes.train=0.75"))
    modes = [p.config(i)["mode"] for i in range(4000)]
    assert abs(modes.count("forward") / len(modes) - 0.25) < 0.03
    optimizers = {p.config(i)["optimizer"] for i in range(400)} - {"none"}
    assert optimizers == {"sgd", "momentum", "adagrad", "adadelta", "adam", "rmsprop"}


def test_grouped_and_depthwise_channels_divide() -> None:
    grouped = plan("conv2d", overrides=("space.params.groups=[2,4]",))
    for cfg in (grouped.config(i) for i in range(300)):
        assert cfg["channels_in"] % cfg["groups"] == 0 and cfg["channels_out"] % cfg["groups"] == 0
    depthwise = plan("depthwise")
    for cfg in (depthwise.config(i) for i in range(300)):
        assert cfg["groups"] == cfg["channels_in"] and cfg["channels_out"] % cfg["channels_in"] == 0


def test_log_ranges_cover_both_ends() -> None:
    p = plan("matmul")
    m = np.array([p.config(i)["m"] for i in range(3000)])
    assert m.min() == 1 and m.max() > 512 and np.median(m) < 100  # log-uniform, not uniform


@pytest.mark.parametrize("override, message", [
    ("space.params.batch.low=-1", "batch: range [-1, 16]"),
    ("space.params.batch.high=0", "batch: range [1, 0]"),
    ("space.params.padding=[same,full]", "'full' is not one of"),
    ("+space.params.dilation={low:1,high:2}", "unknown parameter(s) ['dilation']"),
    ("space.params.channel_budget=-5", "channel_budget: expected a positive number, got -5"),
    ("space.op=conv3d", "unknown op 'conv3d'"),
])
def test_bad_space_names_the_bad_value(override: str, message: str) -> None:
    cfg = compose("collect", ["space=conv2d", override])
    with pytest.raises(CostnetError, match=None) as err:
        load_space(cfg.space)
    assert message in str(err.value)


def test_missing_parameter_is_named() -> None:
    cfg = compose("collect", ["space=dense"])
    node = OmegaConf.to_container(cfg.space)
    del node["params"]["in_features"]
    with pytest.raises(CostnetError, match=r"missing parameter\(s\) \['in_features'\]"):
        load_space(node)


def test_weightless_ops_need_input_grad() -> None:
    cfg = compose("collect", ["space=pool2d", "space.input_grad=[false]"])
    with pytest.raises(CostnetError, match="needs input_grad"):
        load_space(cfg.space)


def test_bad_mode_mix() -> None:
    with pytest.raises(CostnetError, match="unknown mode 'backward'"):
        plan("dense", overrides=("+modes.backward=1",))
    with pytest.raises(CostnetError, match="unknown dtype 'int8'"):
        plan("dense", overrides=("dtypes=[int8]",))
