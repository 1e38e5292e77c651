"""Analytical features against torch's FLOP counter; transforms fitted on training rows only."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from costnet.config import compose, repo_root
from costnet.errors import CostnetError
from costnet.features.analytical import CPU_PATH_FEATURES, ANALYTICAL_FEATURES, FRESH_BYTES, analytical_features
from costnet.features.gpu import GPU_FEATURES, gpu_features, wave_bound_ms
from costnet.features.hardware import HARDWARE_FEATURES
from costnet.features.transform import FeatureSet, FeatureTransform, enrich
from costnet.networks.estimate import Setting
from costnet.ops import get_op
from costnet.timing.workload import materialize
from tests.conftest import JUSTUS, needs_justus
META = torch.device("meta")


def counted(cfg: dict) -> tuple[int, int]:
    """(forward, backward) FLOPs torch counts for ``cfg`` in its mode."""
    module, inputs = materialize(*get_op(cfg["op"]).build(cfg, META, torch.float32), torch.device("cpu"))
    if cfg.get("input_grad"):
        for x in inputs:
            x.requires_grad_(True)
    with FlopCounterMode(display=False) as fwd:
        out = module(*inputs)
    with FlopCounterMode(display=False) as bwd:
        out.sum().backward()
    return fwd.get_total_flops(), bwd.get_total_flops()


CASES = [
    {"op": "conv2d", "batch": 3, "size": 17, "channels_in": 6, "channels_out": 10, "kernel": 3, "stride": 2,
     "padding": "same", "groups": 1},
    {"op": "conv2d", "batch": 2, "size": 12, "channels_in": 8, "channels_out": 4, "kernel": 4, "stride": 1,
     "padding": "valid", "groups": 2},
    {"op": "conv2d", "batch": 1, "size": 9, "channels_in": 5, "channels_out": 7, "kernel": 6, "stride": 3,
     "padding": "same", "groups": 1, "input_grad": True},
    {"op": "depthwise", "batch": 2, "size": 14, "channels_in": 6, "channels_out": 12, "kernel": 3, "stride": 1,
     "padding": "same", "groups": 6, "input_grad": True},
    {"op": "dense", "batch": 5, "in_features": 33, "out_features": 17},
    {"op": "dense", "batch": 7, "in_features": 8, "out_features": 64, "input_grad": True},
    {"op": "matmul", "batch": 3, "m": 9, "k": 11, "n": 13, "input_grad": True},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["op"])
def test_matrix_flops_agree_with_flop_counter(case: dict) -> None:
    cfg = {"bias": False, "activation": "none", "mode": "train", "optimizer": "none", "dtype": "float32",
           "input_grad": False, **case}
    fwd, bwd = counted(cfg)
    features = analytical_features(pd.DataFrame([cfg])).iloc[0]
    assert features["flops_fwd"] == pytest.approx(fwd, rel=0.01)
    if cfg.get("groups", 1) == 1:
        # torch 2.13's counter counts a grouped convolution's weight gradient as if it were
        # ungrouped (twice the forward for groups=2), while the work equals the forward's.
        assert features["flops_bwd"] == pytest.approx(bwd, rel=0.01)


def test_attention_flops_agree_with_its_matrix_products() -> None:
    """The counter does not see CPU's fused attention kernel: count the two products it computes."""
    b, h, L, d = 2, 3, 16, 8
    q, k, v = (torch.randn(b, h, L, d, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as fwd:
        out = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, -1) @ v
    with FlopCounterMode(display=False) as bwd:
        out.sum().backward()
    row = {"op": "attention", "batch": b, "heads": h, "seq_len": L, "head_dim": d, "causal": False,
           "mode": "train", "optimizer": "none", "dtype": "float32", "input_grad": True}
    f = analytical_features(pd.DataFrame([row])).iloc[0]
    softmax = 5 * b * h * L * L  # elementwise work the counter leaves out
    assert f["flops_fwd"] - softmax == pytest.approx(fwd.get_total_flops(), rel=0.01)
    assert f["flops_bwd"] - 2 * softmax == pytest.approx(bwd.get_total_flops(), rel=0.01)


def test_forward_rows_have_no_backward_cost() -> None:
    row = {**CASES[0], "bias": True, "activation": "relu", "mode": "forward", "optimizer": "none",
           "dtype": "float32", "input_grad": False}
    f = analytical_features(pd.DataFrame([row])).iloc[0]
    assert f["flops_bwd"] == 0 and f["flops_update"] == 0 and f["flops"] == f["flops_fwd"]
    assert f["out_size"] == 9 and f["pad_total"] == 2 and f["pad_odd"] == 0  # ceil(17/2); (9-1)*2+3-17
    adam = analytical_features(pd.DataFrame([{**row, "mode": "train", "optimizer": "adam"}])).iloc[0]
    assert adam["flops_update"] == 12 * adam["params"] and adam["bytes"] > f["bytes"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["op"])
def test_gemm_view_accounts_for_the_forward_product(case: dict) -> None:
    """gemm_count GEMMs of M x N x K (one per conv group, one per matrix of a batched product)
    are the forward's matrix work; tiles cover each M x N output."""
    row = {**case, "mode": "forward", "optimizer": "none", "dtype": "float32", "bias": False, "activation": "none"}
    f = analytical_features(pd.DataFrame([row])).iloc[0]
    count = {"conv2d": case.get("groups", 1), "depthwise": case.get("channels_in"), "matmul": case.get("batch")
             }.get(case["op"], 1)
    assert f["gemm_count"] == count
    assert 2 * f["gemm_m"] * f["gemm_n"] * f["gemm_k"] * count == pytest.approx(f["flops_fwd"])
    tiles = count * np.ceil(f["gemm_m"] / 128) * np.ceil(f["gemm_n"] / 128)
    assert f["gemm_tiles"] == tiles
    assert f["tile_fill"] == pytest.approx(count * f["gemm_m"] * f["gemm_n"] / (tiles * 128**2))


def test_gemm_tiles_count_partly_filled_tiles_whole() -> None:
    row = {"op": "dense", "batch": 129, "in_features": 64, "out_features": 256, "mode": "forward",
           "optimizer": "none", "dtype": "float32"}
    f = analytical_features(pd.DataFrame([row, {**row, "op": "pool2d", "size": 8, "kernel": 2, "stride": 2,
                                                "channels_in": 3, "padding": "valid"}]))
    assert f.loc[0, "gemm_tiles"] == 2 * 2 and f.loc[0, "tile_fill"] == pytest.approx(129 * 256 / (4 * 128**2))
    assert f.loc[1, ["gemm_m", "gemm_tiles", "tile_fill"]].tolist() == [0, 0, 0]  # pooling is no GEMM


def test_gpu_features_of_a_hand_computed_gemm_on_a_ten_sm_gpu() -> None:
    """A 300 x 200 output GEMM (k = 64) and a pooling row on a made-up GPU: 10 SMs, 1 MiB L2,
    1000 GFLOP/s over 100 GB/s (ridge point 10 FLOP/byte). Every value worked out by hand."""
    device = {"hw_peak_gflops": 1000.0, "hw_bandwidth_gbs": 100.0, "hw_sm_count": 10.0, "hw_l2_mb": 1.0}
    frame = pd.DataFrame([device, device])
    analytical = pd.DataFrame({"gemm_m": [300.0, 0.0], "gemm_n": [200.0, 0.0], "gemm_count": [1.0, 0.0], "flops": [2 * 300 * 200 * 64, 4096.0],
                               "bytes": [2**20 / 2, 2**21], "intensity": [5.0, 40.0]})
    roofline = pd.DataFrame({"t_compute_ms": [1.0, 2.0], "t_roofline_ms": [4.0, 2.0], "t_bound_ms": [5.0, 2.0]})
    f = gpu_features(frame, analytical, roofline)
    assert list(f.columns) == list(GPU_FEATURES)
    gemm = f.loc[0]
    # 128-tiles: ceil(300/128) * ceil(200/128) = 3 * 2 = 6 tiles, one wave of 10 SMs, 6 of them busy
    assert (gemm["waves_128"], gemm["fill_128"]) == (1, pytest.approx(0.6))
    # 64-tiles: 5 * 4 = 20 tiles, two full waves
    assert (gemm["waves_64"], gemm["fill_64"]) == (2, pytest.approx(1.0))
    assert gemm["pad_128"] == pytest.approx(1 - 300 * 200 / (6 * 128**2))  # 6 tiles cover 98,304 outputs
    assert gemm["ridge_ratio"] == pytest.approx(0.5) and f.loc[1, "ridge_ratio"] == pytest.approx(4.0)
    assert gemm["l2_ratio"] == pytest.approx(0.5) and f.loc[1, "l2_ratio"] == pytest.approx(2.0)
    assert gemm["flops_per_sm"] == pytest.approx(2 * 300 * 200 * 64 / 10) and gemm["bytes_per_sm"] == 2**20 / 20
    assert gemm["compute_share"] == pytest.approx(0.25) and f.loc[1, "compute_share"] == pytest.approx(1.0)
    assert gemm["bound_ratio"] == pytest.approx(1.25) and f.loc[1, "bound_ratio"] == pytest.approx(1.0)
    # no GEMM: no tiles, waves or padding
    assert f.loc[1, ["waves_128", "fill_128", "waves_64", "fill_64", "pad_128"]].tolist() == [0, 0, 0, 0, 0]


def test_wave_bound_of_hand_computed_gemms() -> None:
    """The wave-quantized bound on a 10-SM GPU of 1000 GFLOP/s (100 GFLOP/s per SM), by hand."""
    device = {"hw_peak_gflops": 1000.0, "hw_sm_count": 10.0}
    frame = pd.DataFrame([device] * 4)
    analytical = pd.DataFrame({"gemm_m": [300.0, 128.0, 128.0, 0.0], "gemm_n": [200.0, 128.0, 128.0, 0.0],
                               "gemm_k": [64.0, 4096.0, 4096.0, 0.0], "gemm_count": [1.0, 1.0, 10.0, 0.0]})
    roofline = pd.DataFrame({"t_roofline_ms": [0.00768, 0.134217728, 1.34217728, 0.5]})
    bound = wave_bound_ms(frame, analytical, roofline)
    # 300 x 200: the least padded cover is 320 x 224 (32 x 32 or 64 x 32 tiles, 70 or 35 of them),
    # spread evenly: each SM computes 320 * 224 * 2 * 64 / 10 = 917,504 FLOPs, 9.175 us
    assert bound[0] == pytest.approx(917_504 / 1e11 * 1e3)
    # 128 x 128, K = 4096: a power-of-two number of units never divides evenly over 10 SMs; the
    # best is 32 x 32 tiles (16) cut into 32 K-slices: 512 units in 52 waves of 2 * 32 * 32 * 128 FLOPs
    assert bound[1] == pytest.approx(52 * 2 * 32 * 32 * 128 / 1e11 * 1e3)
    # ten such GEMMs (a batched product): 10 * 128^2 outputs fill whole waves, the roofline time
    assert bound[2] == pytest.approx(1.34217728)
    assert bound[3] == 0.5  # no GEMM: the roofline time itself
    assert (bound >= roofline["t_roofline_ms"]).all()


def test_gpu_features_without_sm_count_or_l2_are_missing_not_made_up() -> None:
    """A device without an SM count or L2 size (a CPU, a catalog entry without them) gets NaN where
    they enter, which the fitted transform reads as 0; the ridge ratio still comes from the peaks."""
    frame = pd.DataFrame([{"hw_peak_gflops": 1000.0, "hw_bandwidth_gbs": 100.0}])
    analytical = pd.DataFrame({"gemm_m": [256.0], "gemm_n": [256.0], "gemm_k": [256.0], "gemm_count": [1.0],
                               "flops": [1e6], "bytes": [1e4], "intensity": [100.0]})
    roofline = pd.DataFrame({"t_compute_ms": [1.0], "t_roofline_ms": [1.0]})
    assert wave_bound_ms(frame, analytical, roofline)[0] == 1.0  # no SM count: the roofline time
    f = gpu_features(frame, analytical, roofline.assign(t_bound_ms=1.0)).loc[0]
    assert f["ridge_ratio"] == pytest.approx(10.0)
    assert all(np.isnan(f[c]) for c in ("waves_128", "fill_128", "l2_ratio", "flops_per_sm", "bytes_per_sm"))


def test_transform_is_fitted_on_training_rows_only() -> None:
    train = pd.DataFrame({"batch": [1, 2, 3, 4], "activation": ["relu", "relu", "tanh", "tanh"]})
    other = pd.DataFrame({"batch": [100, 200], "activation": ["sigmoid", "relu"]})
    t = FeatureTransform(FeatureSet("t", ("batch",), ("activation",))).fit(train)
    x_train, x_other = t.transform(train), t.transform(other)
    assert abs(x_train[:, 0].mean()) < 1e-6 and x_other[:, 0].min() > 2  # other rows did not move the scaler
    assert x_other[0, 1:].tolist() == [0, 0]  # unseen category: all-zero code
    assert x_other[1, 1:].tolist() == [1, 0]
    restored = FeatureTransform.from_state(t.state())
    assert np.array_equal(restored.transform(other), x_other)
    mixed = pd.DataFrame({"op": ["conv2d", "dense", "conv2d"], "batch": [1, 2, 3],
                          "padding": ["same", None, "valid"]})  # dense rows lack padding
    codes = FeatureTransform(FeatureSet("m", ("batch",), ("padding",))).fit(mixed).transform(mixed)
    assert codes[:, 1:].sum(axis=1).tolist() == [1, 1, 1]


@needs_justus
def test_justus_adapter_maps_every_row() -> None:
    from costnet.sources import load_source

    conv = load_source({"name": "justus2018", "path": str(JUSTUS)}, "conv")
    dense = load_source({"name": "justus2018", "path": str(JUSTUS), "max_batchsize": 32}, "dense")
    assert len(conv) == 139_650 and set(conv["device"]) == {"V100", "P100", "GTX1080Ti", "M60", "K80", "K40"}
    assert dense["batch"].max() == 32 and (dense["op"] == "dense").all()
    assert conv.groupby("device")["hw_peak_gflops"].nunique().eq(1).all()
    assert conv.loc[conv["device"] == "V100", "hw_bandwidth_gbs"].iloc[0] == 900
    rich = enrich(conv.head(500))
    assert (rich["flops"] > 0).all() and (rich["t_roofline_ms"] > 0).all()
    assert set(conv["mode"]) == {"forward", "train"} and ((conv["mode"] == "forward") == (conv["optimizer"] == "none")).all()


def test_unknown_feature_column_is_named() -> None:
    t = FeatureTransform(FeatureSet("t", ("batch", "wibble")))
    with pytest.raises(CostnetError, match="wibble"):
        t.fit(pd.DataFrame({"batch": [1, 2]}))


def feature_set(name: str, *overrides: str) -> FeatureSet:
    """conf/features/<name>.yaml as costnet-train composes it."""
    return FeatureSet.from_config(compose("train", [f"features={name}", *overrides]).features)


FEATURE_SETS = sorted(p.stem for p in (repo_root() / "conf" / "features").glob("*.yaml"))
RAW = ["batch", "size", "kernel", "channels_in", "channels_out", "stride", "in_features", "out_features"]
ANALYTICAL = ["out_size", "pad_total", "pad_odd", "align_in", "align_out", "params", "flops_fwd", "flops_bwd",
              "flops_update", "flops", "bytes_in", "bytes_weights", "bytes_out", "bytes", "intensity"]
GEMM = ["gemm_m", "gemm_n", "gemm_k", "gemm_count", "gemm_tiles", "tile_fill"]
HARDWARE = ["hw_peak_gflops", "hw_bandwidth_gbs", "hw_cores", "hw_clock_mhz", "hw_memory_gb", "hw_bus_width_bits"]
ESTIMATES = ["t_compute_ms", "t_memory_ms", "t_roofline_ms", "t_paleo_ms"]
LAYER_CATEGORIES = ["op", "padding", "activation", "optimizer", "bias"]
# Every set's columns, in order, as the models were trained on them (a changed list changes results).
PINNED = {
    "raw": (RAW, LAYER_CATEGORIES),
    "analytical": (RAW + ANALYTICAL + GEMM, LAYER_CATEGORIES),
    "hardware": (RAW + ANALYTICAL + GEMM + HARDWARE + ESTIMATES, LAYER_CATEGORIES + ["hw_interconnect"]),
    "portable": (RAW + ANALYTICAL + GEMM + ["hw_peak_gflops", "hw_bandwidth_gbs"] + ESTIMATES, LAYER_CATEGORIES),
    "gpu": (RAW + ANALYTICAL + GEMM + ESTIMATES[:3] + ["t_bound_ms"] + list(GPU_FEATURES), LAYER_CATEGORIES),
    # every op's parameters; no GEMM columns (the set predates them); the allocator's fresh bytes
    "network": (["batch", "size", "kernel", "channels_in", "channels_out", "stride", "groups", "in_features",
                 "out_features", "features", "rows", "seq_len", "heads", "head_dim", "m", "k", "n", "vocab",
                 "target_size", "p"] + ANALYTICAL + ["bytes_fresh", "matrix_vector"],
                LAYER_CATEGORIES + ["pool", "fn", "causal", "input_grad"]),
}


def test_every_feature_set_is_pinned() -> None:
    assert sorted(PINNED) == FEATURE_SETS
    for name, (numeric, categorical) in PINNED.items():
        spec = feature_set(name)
        assert (spec.name, list(spec.numeric), list(spec.categorical), spec.log) == (name, numeric, categorical, True)
    # the blocks computed in Python are the ones the sets name
    assert ANALYTICAL + GEMM == list(ANALYTICAL_FEATURES) and HARDWARE == list(HARDWARE_FEATURES)
    assert list(CPU_PATH_FEATURES) == ["bytes_fresh", "matrix_vector"]


def test_fresh_bytes_count_tensors_from_the_mmap_threshold_up() -> None:
    # elementwise relu over 8 M float32 elements (32 MiB, fresh) and 8 M - 1 (just below)
    rows = pd.DataFrame({"op": "elementwise", "batch": [1, 1, 1, 1], "features": [2**23, 2**23 - 1, 2**23, 2**23],
                         "fn": "relu", "mode": ["forward", "forward", "train", "train"],
                         "optimizer": "none", "input_grad": [True, True, True, False]})
    fresh = analytical_features(rows)["bytes_fresh"].tolist()
    # a training step also allocates the input gradient, when the input asks for one
    assert fresh == [FRESH_BYTES, 0.0, 2 * FRESH_BYTES, FRESH_BYTES]


def test_an_in_place_call_allocates_no_fresh_output() -> None:
    # ReLU(inplace=True) over 32 MiB writes into its input; its training step still allocates the
    # input gradient. Rows without the column (every collected row) are out of place.
    rows = pd.DataFrame({"op": "elementwise", "batch": 1, "features": 2**23, "fn": "relu",
                         "mode": ["forward", "forward", "train"], "optimizer": "none", "input_grad": True,
                         "inplace": [False, True, True]})
    assert analytical_features(rows)["bytes_fresh"].tolist() == [FRESH_BYTES, 0.0, FRESH_BYTES]
    assert analytical_features(rows.drop(columns="inplace"))["bytes_fresh"].tolist() == \
        [FRESH_BYTES, FRESH_BYTES, 2 * FRESH_BYTES]


def test_matrix_vector_marks_gemms_of_one_output_row() -> None:
    rows = pd.DataFrame({"op": "dense", "batch": [1, 2], "in_features": 4096, "out_features": 4096, "bias": True,
                         "activation": "none", "mode": "forward", "optimizer": "none", "input_grad": False})
    assert analytical_features(rows)["matrix_vector"].tolist() == [1.0, 0.0]


def test_protocols_choose_their_feature_set() -> None:
    for protocol, name in (("per_device", "analytical"), ("joint", "hardware"), ("lodo", "hardware"),
                           ("fewshot", "hardware")):
        assert compose("train", [f"protocol={protocol}"]).features.name == name
    assert compose("train", ["protocol=lodo", "features=portable"]).features.name == "portable"  # the command line wins


def test_feature_set_blocks() -> None:
    spec = FeatureSet.from_config({"name": "b", "numeric": {"a": ["batch", "size"], "none": [], "b": ["flops"]},
                                   "categorical": ["op"]})
    assert spec.numeric == ("batch", "size", "flops") and spec.categorical == ("op",)
    without_gemm = feature_set("hardware", "features.numeric.gemm=[]")  # a block dropped from the command line
    assert list(without_gemm.numeric) == RAW + ANALYTICAL + HARDWARE + ESTIMATES
    with pytest.raises(CostnetError, match=r"columns \['batch'\] are named more than once"):
        FeatureSet.from_config({"name": "d", "numeric": {"a": ["batch"], "b": ["batch"]}})


@needs_justus
@pytest.mark.parametrize("name", FEATURE_SETS)
def test_every_feature_set_fits_justus_rows(name: str) -> None:
    """The matrix is the standardized log of every numeric column, then one one-hot block per
    categorical column; only the config columns of other ops are absent (and read as 0)."""
    from costnet.data.schema import CONFIG
    from costnet.sources import load_source

    rows = enrich(load_source({"name": "justus2018", "path": str(JUSTUS)}, "conv").head(300))
    spec = feature_set(name)
    x = FeatureTransform(spec).fit(rows).transform(rows)
    absent = [c for c in spec.numeric if c not in rows]
    other_ops = {"in_features", "out_features"} | ({"features", "rows", "seq_len", "heads", "head_dim", "m", "k", "n",
                                                    "vocab", "target_size", "p"} if name == "network" else set())
    assert set(absent) == other_ops and set(absent) <= set(CONFIG)
    present = [c for c in spec.numeric if c in rows]
    assert rows[present].notna().all().all()
    logged = np.log1p(rows.reindex(columns=list(spec.numeric)).fillna(0.0).astype(float))
    std = logged.std(ddof=0)
    expected = (logged - logged.mean()) / std.where(std > 1e-9 * (1 + logged.mean().abs()), 1.0)  # constant: unscaled
    n = len(spec.numeric)
    np.testing.assert_allclose(x[:, :n], expected.to_numpy(), rtol=1e-5, atol=1e-5)
    widths = [rows[c].astype(str).nunique() if c in rows else 1 for c in spec.categorical]  # absent: all "n/a"
    assert x.shape == (300, n + sum(widths))
    start = n
    for width in widths:  # every row in exactly one category of each column
        assert (x[:, start:start + width].sum(axis=1) == 1).all()
        start += width


CONV = pd.DataFrame({"op": "conv2d", "batch": [1, 2, 3], "size": 8, "kernel": 3, "channels_in": 4,
                     "channels_out": 4, "stride": 1, "padding": "same"})
DENSE = pd.DataFrame({"op": "dense", "batch": [4, 5], "in_features": [6, 7], "out_features": 8})
MIXED = FeatureSet("mixed", ("batch", "kernel", "in_features"), ("padding",))


@pytest.mark.parametrize("rows, message", [
    (CONV.drop(columns="kernel"), "column 'kernel' is missing in 3 of 3 rows whose op has that parameter (op 'conv2d')"),
    (pd.concat([CONV.assign(kernel=[3, None, 3]), DENSE]), "column 'kernel' is null in 1 of 5 rows"),
    (pd.concat([CONV.drop(columns="padding"), DENSE]), "column 'padding' is missing in 3 of 5 rows"),
    (DENSE.drop(columns="in_features"), "column 'in_features' is missing in 2 of 2 rows"),
])
def test_a_parameter_of_the_rows_own_op_is_never_read_as_zero(rows: pd.DataFrame, message: str) -> None:
    with pytest.raises(CostnetError, match=re.escape(f"features 'mixed': {message}")):
        FeatureTransform(MIXED).fit(rows)
    fitted = FeatureTransform(MIXED).fit(pd.concat([CONV, DENSE]))  # other ops' columns may be absent or null
    with pytest.raises(CostnetError, match=re.escape(message)):
        fitted.transform(rows)
    assert fitted.transform(DENSE)[:, 1].tolist() == fitted.transform(DENSE.assign(kernel=None))[:, 1].tolist()


def test_an_unknown_dtype_is_an_error_wherever_one_is_read() -> None:
    """Not 4 bytes per element, as an unknown dtype used to count."""
    message = re.escape("unknown dtype 'int3': choose from ['float32', 'float64', 'float16', 'bfloat16']")
    rows = pd.DataFrame([{**CASES[4], "mode": "forward", "optimizer": "none", "dtype": "int3"}])
    with pytest.raises(CostnetError, match=message):
        analytical_features(rows)  # the features of rows (costnet-train, costnet-evaluate)
    with pytest.raises(CostnetError, match=message):
        Setting(dtype="int3")  # costnet-predict's dtype
    assert analytical_features(rows.assign(dtype="float16"))["bytes_in"].item() == 2 * 5 * 33


def test_a_column_constant_in_training_is_not_scaled_by_float_noise() -> None:
    """One training device: its spec columns are constant (a std of float noise, 1e-15); another
    device's value must come out at its log distance, not 1e15 standard deviations away."""
    train = pd.DataFrame({"hw_peak_gflops": [4368.0] * 7, "batch": [1, 2, 3, 4, 5, 6, 7]})
    other = pd.DataFrame({"hw_peak_gflops": [14899.0], "batch": [4]})
    t = FeatureTransform(FeatureSet("t", ("hw_peak_gflops", "batch"))).fit(train)
    assert t.std["hw_peak_gflops"] == 1.0
    assert t.transform(other)[0, 0] == pytest.approx(np.log1p(14899.0) - np.log1p(4368.0), rel=1e-6)
