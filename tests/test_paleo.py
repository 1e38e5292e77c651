"""PALEO analytical model: layer costs, PPP fit, communication, scaling, net specs, CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costnet.errors import CostnetError
from costnet.paleo import layers as L
from costnet.paleo.comm import SCHEMES, comm_time_ms
from costnet.paleo.frame import from_layer_frame
from costnet.paleo.model import Platform, fit_ppp, pass_times, phase_times, update_ms
from costnet.paleo.presets import Costs, Device, get_device, get_link, load_costs
from costnet.paleo.scaling import scaling_table
from costnet.paleo.spec import load_net, parse_spec, shipped_nets
from tests.conftest import run_cli

# round numbers: 1 GFLOP/s, 1 GB/s (10^9 bytes), 4-byte elements
UNIT = Device("UNIT", "unit", peak_gflops=1.0, memory_gbs=1.0, source="test")
COSTS = Costs(4.0, 1e9, dict(load_costs().flops_per_element))


def unit(ppp_comp: float = 1.0, ppp_memory: float | None = None) -> Platform:
    return Platform(UNIT, ppp_comp, ppp_memory, COSTS)


# ----------------------------------------------------------------- layer costs


def test_conv_flops_and_rcw_by_hand() -> None:
    conv = L.conv2d("c", ["x"], (5, 5, 2), (3, 3), 4, (1, 1), "VALID")
    assert conv.output == (3, 3, 4)
    assert conv.params == 3 * 3 * 2 * 4 + 4
    # im2col GEMM: 2 * out elements (3*3*4) * C_in (2) * 3 * 3 per sample
    assert conv.forward.flops == 2 * 36 * 2 * 9 == 1296
    r, c, w = phase_times(conv, "forward", 2, unit())
    assert c == pytest.approx(2 * 1296 / 1e9 * 1e3)  # ms at 1 GFLOP/s
    assert r == pytest.approx((2 * 50 + 72) * 4 / 1e9 * 1e3)  # inputs + weights at 1 GB/s
    assert w == pytest.approx(2 * 36 * 4 / 1e9 * 1e3)
    # PALEO scales memory traffic with ppp_comp unless ppp_memory is given
    r2, c2, w2 = phase_times(conv, "forward", 2, unit(0.5))
    assert (r2, c2, w2) == pytest.approx((2 * r, 2 * c, 2 * w))
    r3, c3, _ = phase_times(conv, "forward", 2, unit(0.5, 1.0))
    assert (r3, c3) == pytest.approx((r, 2 * c))
    # PALEO's data gradient: a stride-1 convolution of the output gradient padded to 7x7 (5 + 3 - 1)
    # with the transposed 3x3x4x2 filters: one 3*3*4 dot product per input element (5*5*2)
    assert conv.backward_data.flops == 2 * 50 * 4 * 9 == 3600
    assert conv.backward_data.totals(2) == (7200, 2 * 7 * 7 * 4 + 72, 2 * 50)
    # weight gradient: the forward's FLOPs, reads input (VALID: unpadded) and output gradient, writes the filters
    assert conv.backward_weights.flops == 1296
    assert conv.backward_weights.totals(2) == (2592, 2 * (50 + 36), 72)


def test_strided_conv_backward_by_paleo_rule() -> None:
    """PALEO Conv2d.gradients on a 7x7x2 input, 3x3 filters, stride 2, VALID, 4 outputs, by hand."""
    conv = L.conv2d("c", ["x"], (7, 7, 2), (3, 3), 4, (2, 2), "VALID")
    assert conv.output == (3, 3, 4)  # ceil((7 - 3 + 1) / 2)
    assert conv.forward.flops == 2 * 36 * 2 * 9 == 1296
    # the 3x3 gradient dilated by the stride is 5x5 (16 holes), padded by 2 on each side to 9x9;
    # a 3x3x4 -> 2 convolution over it gives the 7x7x2 input gradient: 2*9*4 FLOPs per input
    # element, plus 2 per gradient element (36) to place it among the holes
    assert conv.backward_data.flops == 2 * 9 * 4 * 98 + 2 * 36 == 7128
    assert conv.backward_data.totals(1) == (7128, 9 * 9 * 4 + 72, 98)
    # weight gradient: the input (98) correlated with the dilated gradient; holes skipped
    assert conv.backward_weights.totals(1) == (1296, 98 + 36, 72)
    # SAME pads the input the weight gradient reads (1 + 1 around 5x5 at stride 1); none for the network input
    same = L.conv2d("c", ["x"], (5, 5, 2), (3, 3), 4, (1, 1), "SAME")
    assert same.backward_weights.totals(1) == (2 * 100 * 2 * 9, 7 * 7 * 2 + 100, 72)
    assert same.backward_data.flops == same.forward.flops  # stride 1, same size: no extra work


def test_conv_padding_stride_groups_and_input_layers() -> None:
    same = L.conv2d("c", ["x"], (5, 5, 4), (3, 3), 8, (2, 2), "SAME", groups=2)
    assert same.output == (3, 3, 8)  # ceil(5 / 2)
    assert same.forward.flops == 2 * (3 * 3 * 8) * (4 // 2) * 9
    explicit = L.conv2d("c", ["x"], (224, 224, 3), (11, 11), 64, (4, 4), (2, 2))
    assert explicit.output == (55, 55, 64)
    first = L.conv2d("c", ["data"], (5, 5, 2), (3, 3), 4, (1, 1), "VALID", data_grad=False)
    assert first.backward_data.totals(8) == (0, 0, 0)
    with pytest.raises(CostnetError, match="does not fit"):
        L.conv2d("c", ["x"], (2, 2, 1), (3, 3), 1, (1, 1), "VALID")


def test_fc_and_pool_by_hand() -> None:
    fc = L.inner_product("fc", ["x"], (2, 3, 1), 4)  # flattened to 6 features
    assert fc.output == (4,) and fc.params == 6 * 4 + 4
    assert fc.forward.totals(10) == (10 * 2 * 6 * 4, 10 * 6 + 24, 10 * 4)
    _, c, _ = phase_times(fc, "forward", 10, unit())
    assert c == pytest.approx(480 / 1e9 * 1e3)

    pool = L.pool2d("p", ["x"], (4, 4, 3), (2, 2), (2, 2), "VALID", COSTS)
    assert pool.output == (2, 2, 3) and pool.params == 0
    # PALEO: 2 FLOPs per window element per output
    assert pool.forward.flops == 2 * 4 * (2 * 2 * 3)
    r, c, w = phase_times(pool, "forward", 1, unit())
    assert (r, c, w) == pytest.approx((48 * 4e-6, 96e-6, 12 * 4e-6))
    # PALEO repeats the forward for the backward pass: same FLOPs, the same tensors moved the other way
    assert pool.backward_data.totals(1) == (96, 12, 48)
    assert pool.backward_weights.totals(1) == (0, 0, 0)
    # and the inner product's: two GEMMs of 2 D M; the weight gradient writes the 24 weights (no bias)
    assert fc.backward_data.totals(10) == (480, 10 * 4 + 24, 10 * 6)
    assert fc.backward_weights.totals(10) == (480, 10 * (6 + 4), 24)


def test_backward_matches_paleo_on_its_alexnet() -> None:
    """TF-slim's AlexNet v2 laid out as PALEO's nets/alex_v2.json (fc layers as convolutions):
    PALEO's own program gives forward 29.2 ms and backward 78.4 ms at batch 64 on a K20, PPP 1
    (issue 12; fc6's data gradient alone, a 5x5 convolution over a padded 9x9 gradient, is 24.7 ms)."""
    def conv(parent: str, k: int, cin: int, cout: int, padding: str, stride: int = 1) -> dict:
        return {"parents": [parent], "type": "Convolution", "filter": [k, k, cin, cout], "padding": padding,
                "strides": [1, stride, stride, 1]}

    def pool(parent: str) -> dict:
        return {"parents": [parent], "type": "Pooling", "ksize": [1, 3, 3, 1], "strides": [1, 2, 2, 1],
                "padding": "VALID"}

    def dropout(parent: str) -> dict:
        return {"parents": [parent], "type": "Dropout", "dropout_keep_prob": 0.5}

    layers = {"data": {"parents": [], "type": "Input", "tensor": [64, 224, 224, 3]},
              "conv1": conv("data", 11, 3, 64, "VALID", 4), "pool1": pool("conv1"),
              "conv2": conv("pool1", 5, 64, 192, "SAME"), "pool2": pool("conv2"),
              "conv3": conv("pool2", 3, 192, 384, "SAME"), "conv4": conv("conv3", 3, 384, 384, "SAME"),
              "conv5": conv("conv4", 3, 384, 256, "SAME"), "pool5": pool("conv5"),
              "fc6": conv("pool5", 5, 256, 4096, "VALID"), "drop6": dropout("fc6"),
              "fc7": conv("drop6", 1, 4096, 4096, "SAME"), "drop7": dropout("fc7"),
              "fc8": conv("drop7", 1, 4096, 1000, "SAME"),
              "softmax": {"parents": ["fc8"], "type": "Softmax", "num_classes": 1000}}
    net = parse_spec({"layers": layers})
    k20 = Platform(get_device("K20"))
    times = pass_times(net, 64, k20)
    assert times.backward_ms == pytest.approx(78.37, rel=2e-3)
    assert times.forward_ms == pytest.approx(29.24, rel=1e-2)
    fc6 = next(layer for layer in net.layers if layer.name == "fc6")
    assert sum(phase_times(fc6, "backward_data", 64, k20)) == pytest.approx(24.69, abs=0.01)


def test_update_and_pass_sums() -> None:
    assert update_ms(1000, unit()) == pytest.approx(2000 / 1e6 + 3 * 4000 / 1e6)
    net = parse_spec(SNIPPET, costs=COSTS)
    times = pass_times(net, 2, unit())
    total = sum(sum(phase_times(layer, "forward", 2, unit())) for layer in net.layers)
    assert times.forward_ms == pytest.approx(total)
    assert times.forward_lower_ms < times.forward_ms  # two branches can overlap
    assert times.backward_lower_ms < times.backward_ms


# ----------------------------------------------------------------- PPP fit


def test_fit_ppp_recovers_known_ppp() -> None:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"flops": rng.uniform(1e6, 1e9, 40), "bytes": rng.uniform(1e5, 1e8, 40)})
    k40 = get_device("K40")
    platform = Platform(k40, 0.6, 0.8)
    compute = rows["flops"] / (k40.peak_gflops * 1e9) * 1e3
    memory = rows["bytes"].map(lambda b: platform.memory_ms(b / 4))
    rows["time_ms"] = compute / 0.6 + memory
    fit = fit_ppp(rows, k40)
    assert fit.ppp_comp == pytest.approx(0.6, rel=1e-6) and fit.ppp_memory == pytest.approx(0.8, rel=1e-6)
    assert fit.rmse_ms < 1e-9 and fit.rows == 40
    assert fit_ppp(rows, k40, relative=True).ppp_comp == pytest.approx(0.6, rel=1e-6)
    shared = rows.assign(time_ms=(compute + memory * 0.8) / 0.7)
    one = fit_ppp(shared, k40, shared=True)
    assert one.ppp_comp == one.ppp_memory == pytest.approx(0.7, rel=1e-6)
    with pytest.raises(CostnetError, match="missing: bytes"):
        fit_ppp(rows.drop(columns="bytes"), k40)
    with pytest.raises(CostnetError, match="do not determine ppp_comp"):
        fit_ppp(rows.assign(flops=0.0), k40)


# ----------------------------------------------------------------- communication


@pytest.mark.parametrize(("scheme", "units"), [
    ("one_to_all", [0, 2, 6, 14]),  # 2 (K - 1) |D| / B
    ("tree_allreduce", [0, 2, 4, 6]),  # 2 log2 K |D| / B
    ("butterfly_allreduce", [0, 1, 2, 3]),  # log2 K |D| / B
    ("ring_allreduce", [0, 1, 1.5, 1.75]),  # 2 (K - 1) / K |D| / B
])
def test_comm_schemes_by_hand(scheme: str, units: list[float]) -> None:
    # |D| = 1e9 bytes over 1 GB/s: one transfer of |D| takes 1000 ms
    times = [comm_time_ms(scheme, 1e9, k, 1.0) for k in (1, 2, 4, 8)]
    assert times == pytest.approx([1000 * u for u in units])
    assert comm_time_ms(scheme, 1e9, 8, 1.0, ppp=0.5) == pytest.approx(2 * times[-1])


def test_comm_scaling_in_k() -> None:
    ring = [comm_time_ms("ring_allreduce", 1e9, k, 1.0) for k in (2, 16, 128, 4096)]
    assert ring == sorted(ring) and ring[-1] == pytest.approx(2000, rel=1e-3) and ring[-1] < 2000
    tree = [comm_time_ms("tree_allreduce", 1e9, 2**j, 1.0) for j in range(1, 8)]
    assert np.diff(tree) == pytest.approx([2000] * 6)  # grows by 2|D|/B per doubling
    assert comm_time_ms("tree_allreduce", 1e9, 3, 1.0) == pytest.approx(4000)  # ceil(log2 3) levels
    one = [comm_time_ms("one_to_all", 1e9, k, 1.0) for k in range(2, 10)]
    assert np.diff(one) == pytest.approx([2000] * 7)  # linear in K
    assert SCHEMES == ("one_to_all", "tree_allreduce", "butterfly_allreduce", "ring_allreduce")


@pytest.mark.parametrize(("args", "match"), [
    (("mesh", 1e6, 2, 1.0), "unknown communication scheme"),
    (("ring_allreduce", 0.0, 2, 1.0), "size_bytes"),
    (("ring_allreduce", 1e6, 0, 1.0), "workers"),
    (("ring_allreduce", 1e6, 2, -1.0), "bandwidth_gbs"),
    (("ring_allreduce", 1e6, 2, 1.0, 0.0), "ppp"),
])
def test_comm_errors(args: tuple, match: str) -> None:
    with pytest.raises(CostnetError, match=match):
        comm_time_ms(*args)


# ----------------------------------------------------------------- scaling


def test_weak_and_strong_scaling() -> None:
    net = load_net("alexnet")
    k20, link = Platform(get_device("K20"), 0.5), get_link("pcie3")
    workers = [1, 2, 4, 8, 16, 32, 64, 128]
    weak = scaling_table(net, k20, link, workers, "weak", 64)
    strong = scaling_table(net, k20, link, workers, "strong", 64)
    assert (weak["per_worker_batch"] == 64).all() and weak["compute_ms"].nunique() == 1
    assert weak["global_batch"].tolist() == [64 * k for k in workers]
    assert strong["per_worker_batch"].tolist() == [64, 32, 16, 8, 4, 2, 1, 1]  # ceil(64 / K), as PALEO
    assert (strong["global_batch"] == 64).all() and strong["compute_ms"].is_monotonic_decreasing
    for scheme in SCHEMES:
        assert weak[f"speedup_{scheme}"].iloc[0] == strong[f"speedup_{scheme}"].iloc[0] == pytest.approx(1)
        assert (weak[f"speedup_{scheme}"] <= weak["workers"] + 1e-9).all()
        # the same gradients per step over less compute: strong scaling gains less
        assert (strong[f"speedup_{scheme}"].iloc[1:] < weak[f"speedup_{scheme}"].iloc[1:]).all()
        expected = weak["workers"] * weak["compute_ms"] / weak[f"step_ms_{scheme}"]
        assert weak[f"speedup_{scheme}"].to_numpy() == pytest.approx(expected.to_numpy())
    assert weak["speedup_ring_allreduce"].iloc[-1] > weak["speedup_one_to_all"].iloc[-1]
    with pytest.raises(CostnetError, match="unknown scaling"):
        scaling_table(net, k20, link, [1, 2], "diagonal")


# ----------------------------------------------------------------- net specs

SNIPPET = {
    "name": "tiny inception",
    "layers": {
        "data": {"parents": [], "type": "Input", "tensor": [4, 8, 8, 3]},
        "conv1": {"parents": ["data"], "type": "Convolution", "filter": [3, 3, 3, 16], "padding": "SAME",
                  "strides": [1, 1, 1, 1], "activation_fn": "relu"},
        "mixed": {
            "type": "Block", "parents": ["conv1"], "endpoint": "concat",
            "layers": {
                "Branch_0/conv": {"parents": [], "type": "Convolution", "filter": [1, 1, -1, 8],
                                  "padding": "SAME", "strides": [1, 1, 1, 1]},
                "Branch_1/pool": {"parents": [], "type": "AvgPool", "ksize": [1, 3, 3, 1],
                                  "strides": [1, 1, 1, 1], "padding": "SAME"},
                "Branch_1/conv": {"parents": ["Branch_1/pool"], "type": "Convolution", "filter": [3, 3, 16, 4],
                                  "padding": "SAME", "strides": [1, 1, 1, 1]},
                "concat": {"parents": ["Branch_0/conv", "Branch_1/conv"], "type": "Concatenate", "dim": 3},
            },
        },
        "pool": {"parents": ["mixed"], "type": "Pooling", "ksize": [1, 2, 2, 1], "strides": [1, 2, 2, 1],
                 "padding": "VALID"},
        "relu": {"parents": ["pool"], "type": "ReLU"},
        "bn": {"parents": ["relu"], "type": "BatchNorm"},
        "lrn": {"parents": ["bn"], "type": "LRN"},
        "fc": {"parents": ["lrn"], "type": "InnerProduct", "num_outputs": 10},
        "drop": {"parents": ["fc"], "type": "Dropout", "dropout_keep_prob": 0.5},
        "softmax": {"parents": ["drop"], "type": "Softmax", "num_classes": 10},
    },
}


def test_parse_paleo_snippet_with_block() -> None:
    net = parse_spec(SNIPPET, costs=COSTS)
    by_name = {layer.name: layer for layer in net.layers}
    assert net.batch == 4 and net.has_branches
    assert by_name["mixed/Branch_0/conv"].parents == ("conv1",)  # inherits the block's parents
    assert by_name["mixed/Branch_1/conv"].parents == ("mixed/Branch_1/pool",)
    assert by_name["mixed/concat"].output == (8, 8, 12)
    assert by_name["pool"].parents == ("mixed/concat",)  # the block name stands for its endpoint
    assert by_name["fc"].forward.flops == 2 * (4 * 4 * 12) * 10
    assert by_name["bn"].params == 24 and by_name["softmax"].output == (10,)
    assert by_name["conv1"].backward_data.flops == 0  # reads the network input: no data gradient
    assert parse_spec(SNIPPET, batch=32, costs=COSTS).batch == 32


def test_shipped_specs_parse() -> None:
    assert set(shipped_nets()) == {"alexnet", "vgg16", "nin", "inception_v3", "overfeat"}
    alex = load_net("alexnet")
    assert alex.params == 61_100_840 and alex.batch == 128 and not alex.has_branches
    assert {layer.name: layer.output for layer in alex.layers}["conv1"] == (55, 55, 64)
    assert load_net("vgg16").params == 138_357_544  # Simonyan & Zisserman, configuration D
    inception = load_net("INCEPTION-V3")
    assert inception.has_branches and inception.layers[-1].output == (1000,)
    times = pass_times(inception, 8, Platform(get_device("titan_x")))
    assert times.forward_lower_ms < times.forward_ms


def _broken(layer: str, **change: object) -> dict:
    spec = json.loads(json.dumps(SNIPPET))
    spec["layers"][layer].update(change)
    return spec


@pytest.mark.parametrize(("spec", "match"), [
    (_broken("conv1", filter=[3, 3, 3]), r"layer 'conv1': filter must be a list of 4"),
    (_broken("conv1", filter=[3, 3, 5, 16]), r"layer 'conv1': filter .* reads 5 channels but its input 'data' has 3"),
    (_broken("conv1", strides=[2, 1, 1, 1]), r"layer 'conv1': strides must be \[1, h, w, 1\]"),
    (_broken("conv1", padding="FULL"), r"layer 'conv1': padding must be"),
    (_broken("pool", parents=["nowhere"]), r"layer 'pool': parent 'nowhere' is not a layer"),
    (_broken("fc", num_outputs=0), r"layer 'fc': num_outputs must be a positive integer, got 0"),
    (_broken("fc", type="Deconvolution"), r"layer 'fc': unknown type 'Deconvolution'"),
    (_broken("softmax", num_classes=7), r"layer 'softmax': num_classes 7"),
    (_broken("drop", dropout_keep_prob=2), r"layer 'drop': dropout_keep_prob"),
    (_broken("data", tensor=[4, 8, 8]), r"layer 'data': tensor must be"),
    (_broken("conv1", parents=["softmax"]), r"form a cycle"),
    (_broken("mixed", type="ModelParallel"), r"layer 'mixed': type 'ModelParallel'"),
    (_broken("pool", ksize=[1, 2, 2]), r"layer 'pool': ksize"),
    ({"name": "x"}, r"non-empty \"layers\""),
])
def test_malformed_specs(spec: dict, match: str) -> None:
    with pytest.raises(CostnetError, match=match):
        parse_spec(spec, costs=COSTS)


def test_missing_key_and_unknown_net() -> None:
    spec = json.loads(json.dumps(SNIPPET))
    del spec["layers"]["conv1"]["filter"]
    with pytest.raises(CostnetError, match=r"layer 'conv1': missing key 'filter'"):
        parse_spec(spec, costs=COSTS)
    with pytest.raises(CostnetError, match="shipped: alexnet"):
        load_net("resnet1001")


@pytest.mark.parametrize("data", [bytes(range(256)), b'{"name": "x", "layers": {}}\x00'], ids=["bytes", "nul"])
def test_binary_spec_is_refused_naming_the_file(tmp_path: Path, data: bytes) -> None:
    spec = tmp_path / "net.json"
    spec.write_bytes(data)
    with pytest.raises(CostnetError, match=f"net spec '{spec}' is not (UTF-8 )?text"):
        load_net(spec)


# PALEO's device keys (paleo/device.py DEVICES) and M40 -> the registry entry, its peak GFLOP/s and GB/s.
# K40 and K80 keep the registry's values (conf/hardware_catalog/K40.yaml, K80.yaml), not PALEO's 4290 and 5600/480.
PALEO_DEVICES = {"TITAN_X": ("TitanX", 6144, 336.5), "K20": ("K20", 3520, 208), "K20X": ("K20X", 3935, 250),
                 "K40": ("K40", 5040, 288), "K80": ("K80", 4368, 240), "M40": ("M40", 7000, 288),
                 "GEFORCE_780_TI": ("GTX780Ti", 5040, 336), "GEFORCE_750_M": ("GT750M", 722.7, 80),
                 "CPU_I7": ("i7-5930K", 289, 68)}


@pytest.mark.parametrize("key", sorted(PALEO_DEVICES))
def test_paleo_devices_come_from_the_registry(key: str) -> None:
    device = get_device(key)
    assert (device.key, device.peak_gflops, device.memory_gbs) == PALEO_DEVICES[key] and device.source


@pytest.mark.parametrize("name", ["titan_x", "Titan X", "TITAN_X", "titan-x", "GeForce GTX TITAN X"])
def test_device_names_ignore_case_spaces_dashes_underscores(name: str) -> None:
    assert get_device(name).key == "TitanX"


def test_unknown_device_and_link() -> None:
    assert get_link("PCIE2").bandwidth_gbs == 8.0
    with pytest.raises(CostnetError, match=r"unknown hardware 'V900': the catalog knows \[.*'K20'"):
        get_device("V900")
    with pytest.raises(CostnetError, match=r"unknown link 'carrier_pigeon'; known: aws"):
        get_link("carrier_pigeon")


# ----------------------------------------------------------------- torch layer frames


def test_from_layer_frame() -> None:
    nan = float("nan")
    rows = [
        {"name": "conv", "op": "conv2d", "parents": [], "batch": 2, "size": 8, "channels_in": 3,
         "channels_out": 4, "kernel": 3, "stride": 1, "padding": "same", "groups": 1},
        {"name": "bn", "op": "batchnorm2d", "parents": ["conv"], "batch": 2, "size": 8, "channels_in": 4},
        {"name": "relu", "op": "elementwise", "parents": ["bn"], "batch": 2, "features": 256, "fn": "relu"},
        {"name": "pool", "op": "pool2d", "parents": ["relu"], "batch": 2, "size": 8, "channels_in": 4,
         "kernel": 2, "stride": 2, "padding": "valid"},
        {"name": "gap", "op": "adaptive_pool2d", "parents": ["pool"], "batch": 2, "size": 4, "channels_in": 4,
         "target_size": 2, "pool": "avg"},
        {"name": "flat", "op": nan, "kind": "free", "parents": ["gap"], "batch": nan},
        {"name": "fc", "op": "dense", "parents": ["flat"], "batch": 2, "in_features": 16, "out_features": 10},
        {"name": "seq_fc", "op": "dense", "parents": ["fc"], "batch": 10, "in_features": 2, "out_features": 3},
        {"name": "drop", "op": "dropout", "parents": ["seq_fc"], "batch": 2, "features": 15},
        {"name": "res", "op": "elementwise", "parents": ["drop", "fc"], "batch": 2, "features": 15, "fn": "add"},
        {"name": "softmax", "op": "softmax", "parents": ["res"], "batch": 2, "features": 15},
    ]
    net = from_layer_frame(pd.DataFrame(rows), costs=COSTS)
    by_name = {layer.name: layer for layer in net.layers}
    assert net.batch == 2 and [layer.name for layer in net.layers] == [r["name"] for r in rows]
    conv = by_name["conv"]
    assert conv.output == (8, 8, 4) and conv.params == 3 * 3 * 3 * 4 + 4
    assert conv.forward.flops == 2 * (8 * 8 * 4) * 3 * 9 and conv.backward_data.flops == 0
    assert by_name["bn"].params == 8 and by_name["bn"].type == "batch_norm"
    assert by_name["relu"].type == "activation" and by_name["res"].type == "add"
    assert by_name["pool"].output == (4, 4, 4) and by_name["gap"].output == (2, 2, 4)
    assert by_name["flat"].forward.totals(2) == (0, 0, 0)
    assert by_name["fc"].forward.flops == 2 * 16 * 10
    assert by_name["seq_fc"].forward.flops == 5 * 2 * 2 * 3  # 10 rows for a batch of 2: 5 per sample
    assert net.params == sum(layer.params for layer in by_name.values())
    depthwise = from_layer_frame(pd.DataFrame([{**rows[0], "op": "depthwise", "channels_out": 6, "groups": nan}]),
                                 costs=COSTS).layers[0]
    assert depthwise.params == 3 * 3 * 1 * 6 + 6 and depthwise.forward.flops == 2 * (8 * 8 * 6) * 9
    assert pass_times(net, 2, unit()).forward_ms > 0
    with pytest.raises(CostnetError, match=r"row 'conv' \(op 'conv3d'\): unknown op"):
        from_layer_frame(pd.DataFrame([{**rows[0], "op": "conv3d"}]), costs=COSTS)
    with pytest.raises(CostnetError, match=r"row 'bn' .*needs column 'channels_in'"):
        from_layer_frame(pd.DataFrame([rows[0], {**rows[1], "channels_in": nan}]), costs=COSTS)
    with pytest.raises(CostnetError, match=r"parent 'conv' is not an earlier row"):
        from_layer_frame(pd.DataFrame([rows[1], rows[0]]), costs=COSTS)


# ----------------------------------------------------------------- CLI


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli("paleo", *args)


def test_cli_contract(tmp_path: Path) -> None:
    out = tmp_path / "alexnet.json"
    done = cli("net=alexnet", "device=K20", "link=pcie2", "batch_size=64", "ppp_comp=1.0", "ppp_comm=1.0",
               "workers=[1,2,4,8]", "scaling=weak", f"out={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {"forward_ms", "backward_ms", "update_ms", "comm_ms"} <= set(result)
    assert set(result["comm_ms"]) == set(SCHEMES)
    assert all(len(v) == 4 and v[0] == 0 for v in result["comm_ms"].values())
    assert result["workers"] == [1, 2, 4, 8] and result["batch_size"] == 64
    assert 0 < result["forward_ms"] < result["backward_ms"]
    assert "tree_allreduce" in done.stdout and "speedup" in done.stdout


def test_cli_spec_path_strong_scaling(tmp_path: Path) -> None:
    spec, out = tmp_path / "tiny.json", tmp_path / "tiny_out.json"
    spec.write_text(json.dumps(SNIPPET))
    done = cli(f"net={spec}", "device=titan_x", "link=infiniband", "workers=[2,4]", "scaling=strong", f"out={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["workers"] == [2, 4] and result["batch_size"] == 4 and "parallel_bounds_ms" in result
    lower, upper = result["parallel_bounds_ms"]["forward"]
    assert lower < upper == pytest.approx(result["forward_ms"])
    assert [row["per_worker_batch"] for row in result["scaling_table"]] == [2, 1]


def test_cli_unknown_device_is_one_line_error() -> None:
    done = cli("device=V900", "workers=[1,2]")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("costnet: error: unknown hardware 'V900': the catalog knows [") and "'TitanX'" in line
