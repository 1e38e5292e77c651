"""Sampling: reproducibility, the paper's constraints, clear errors on bad spaces."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from costnet.config import compose, conf_dir
from costnet.errors import CostnetError
from costnet.features.analytical import FRESH_BYTES
from costnet.networks.build import build
from costnet.networks.extract import extract_layers
from costnet.networks.zoo import NETWORKS
from costnet.ops.step import DTYPE_BYTES
from costnet.sampling.coverage import outside
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


def test_listed_integers_follow_their_weights_and_the_cap() -> None:
    p = plan("conv2d_net")
    kernels = p.space.params.values["kernel"]
    rng = np.random.default_rng(0)
    draws = np.array([kernels.sample(rng) for _ in range(20000)])
    weights = np.asarray(kernels.weights) / sum(kernels.weights)
    for value, share in zip(kernels.values, weights):
        assert abs((draws == value).mean() - share) < 0.015  # 20,000 draws: 3 sigma is below 0.011
    assert set(np.unique([kernels.sample(rng, high=4) for _ in range(500)])) == {1, 3}
    assert kernels.sample(rng, high=0) == 1  # nothing small enough: the smallest value, as a range's low
    configs = [p.config(i) for i in range(2000)]
    assert all(c["kernel"] in kernels.values and c["kernel"] <= c["size"] for c in configs if c["size"] >= 11)
    assert 0.15 < np.mean([c["kernel"] == 3 and c["stride"] == 1 for c in configs]) < 0.30


@pytest.mark.parametrize("value, message", [
    ({"values": [1, 3, 3]}, "values must be distinct"),
    ({"values": [1, 0.5]}, "values must be integers >= 1, got 0.5"),
    ({"values": []}, "values must be a non-empty list"),
    ({"values": [1, 3], "weights": [1]}, "weights must be a list of 2 numbers"),
    ({"values": [1, 3], "weights": [1, -2]}, "weights must be numbers >= 0, not all 0, got [1, -2]"),
    ({"values": [1, 3], "weights": [0, 0]}, "not all 0"),
    ({"values": [1, 3], "p": [1, 1]}, "unknown keys ['p']"),
])
def test_bad_listed_integers_are_named(value: dict, message: str) -> None:
    node = OmegaConf.to_container(compose("collect", ["space=conv2d_net"]).space)
    node["params"]["kernel"] = value
    with pytest.raises(CostnetError) as err:
        load_space(node)
    assert "space 'conv2d_net', kernel" in str(err.value) and message in str(err.value)


def test_outside_names_each_parameter_beyond_the_space() -> None:
    conv = plan("conv2d_net").space
    rows = pd.DataFrame({"batch": [8, 64, 8], "size": [56, 56, 14], "channels_in": [64, 64, 4000],
                         "channels_out": [64, 64, 64], "kernel": [3, 3, 13], "stride": [1, 1, 1],
                         "padding": ["same", "same", "full"], "bias": [True, True, True],
                         "activation": ["none", "none", "none"], "groups": [1, 1, 1]})
    reasons = outside(conv, rows)
    assert reasons[0] == ""
    assert reasons[1] == "batch 64 outside [1, 32]"
    assert "kernel 13 outside [1, 11]" in reasons[2] and "padding full not in" in reasons[2]
    assert "channels_in 4000 above the cap 2049 (channel_budget 28700 / size)" in reasons[2]
    depthwise = plan("depthwise").space  # out channels = in x multiplier: not checked against the cap
    assert outside(depthwise, pd.DataFrame({"channels_in": [8], "channels_out": [4096], "size": [7]}))[0] == ""


def test_network_spaces_cover_the_zoo_networks() -> None:
    """Every layer of the zoo's networks at batch 1 and 32 lies inside the space conf/networks.yaml
    collects for its op (one of them, where an op has several): the network cost models
    interpolate, never extrapolate."""
    spaces: dict[str, list] = {}
    for overrides in compose("networks").collect.values():
        space = load_space(compose("collect", list(overrides)).space)
        spaces.setdefault(space.op.name, []).append(space)
    assert len(spaces["conv2d"]) == 2  # conv2d_net and conv2d_wide
    for network in NETWORKS:
        for batch in (1, 32):
            layers = extract_layers(*build(network, batch, 128))
            layers = layers[layers["kind"] == "layer"]
            for op, rows in layers.groupby("op"):
                reasons = [outside(space, rows) for space in spaces[op]]
                covered = np.logical_or.reduce([r == "" for r in reasons])
                assert covered.all(), (network, batch, op, reasons[0][~covered].iloc[0])


def test_channel_multiple_rounds_both_channels_and_defaults_to_no_draw() -> None:
    aligned = plan("conv2d", overrides=("+space.params.channel_multiple={values:[16]}",))
    for cfg in (aligned.config(i) for i in range(500)):
        for c in (cfg["channels_in"], cfg["channels_out"]):
            assert c < 16 or c % 16 == 0
    explicit = plan("conv2d", overrides=("+space.params.channel_multiple={values:[1]}",))
    default = plan("conv2d")
    assert [explicit.config(i) for i in range(200)] == [default.config(i) for i in range(200)]
    net_plan = plan("conv2d_net")
    net = [net_plan.config(i) for i in range(2000)]
    wide = [c for c in net if min(c["channels_in"], c["channels_out"]) >= 64]
    share = np.mean([c["channels_in"] % 64 == 0 and c["channels_out"] % 64 == 0 for c in wide])
    assert 0.2 < share < 0.45  # multiple 64 drawn with weight 2 of 7; log-uniform counts almost never


# (space without the option, its alignment option, the columns it rounds, a space of the networks that draws it)
ALIGNED = [("dense", "feature_multiple", ("in_features", "out_features"), "dense_net"),
           ("pool2d", "channel_multiple", ("channels_in",), "pool2d_net"),
           ("adaptive_pool2d", "channel_multiple", ("channels_in",), None),
           ("batchnorm2d", "channel_multiple", ("channels_in",), None)]


@pytest.mark.parametrize(("space", "option", "columns", "net_space"), ALIGNED)
def test_size_multiples_round_down_and_default_to_no_draw(space: str, option: str, columns: tuple[str, ...],
                                                          net_space: str | None) -> None:
    aligned = plan(space, overrides=(f"space.params.{option}={{values:[16],weights:[1]}}",) if net_space is None
                   else (f"+space.params.{option}={{values:[16]}}",))
    drawn = [aligned.config(i) for i in range(300)]
    assert all(cfg[c] < 16 or cfg[c] % 16 == 0 for cfg in drawn for c in columns)
    assert any(cfg[c] >= 16 for cfg in drawn for c in columns)
    if net_space is None:  # the networks' own space draws the multiple: 64 in two rows of seven
        cfg = compose("collect", [f"space={space}"]).space.params[option]
        assert list(cfg["values"]) == [1, 8, 16, 32, 64] and list(cfg["weights"]) == [2, 1, 1, 1, 2]
        return
    explicit = plan(space, overrides=(f"+space.params.{option}={{values:[1]}}",))
    default = plan(space)
    assert [explicit.config(i) for i in range(200)] == [default.config(i) for i in range(200)]
    net_plan = plan(net_space)
    net = [net_plan.config(i) for i in range(1500)]
    wide = [cfg for cfg in net if min(cfg[c] for c in columns) >= 64]
    share = np.mean([all(cfg[c] % 64 == 0 for c in columns) for cfg in wide])
    assert 0.2 < share < 0.5  # multiple 64 drawn with weight 2 of 7; log-uniform counts almost never


def test_dense_tokens_draws_outputs_on_fresh_pages() -> None:
    """dense_tokens is there for the transformer projections whose output reaches FRESH_BYTES
    (fresh pages on every call), which dense_net's log-uniform sizes from 1 almost never draw."""
    def fresh_share(space: str) -> float:
        drawn = map(plan(space).config, range(500))
        return float(np.mean([c["batch"] * c["out_features"] * DTYPE_BYTES["float32"] >= FRESH_BYTES for c in drawn]))

    assert fresh_share("dense_net") < 0.01
    assert 0.2 < fresh_share("dense_tokens") < 0.4  # log2 rows in [9, 13], log2 outputs in [8, 13]


def test_zero_weight_values_are_never_drawn() -> None:
    from costnet.ops.params import IntSet
    s = IntSet((1, 3, 5), (0.0, 1.0, 1.0))
    rng = np.random.default_rng(0)
    assert {s.sample(rng) for _ in range(200)} == {3, 5}
    assert s.sample(rng, high=2) == 3  # nothing drawable below the cap: the smallest drawable value
