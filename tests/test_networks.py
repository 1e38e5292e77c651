"""Layer extraction, network-time arithmetic and costnet-predict."""

from __future__ import annotations

import json
import math
import resource
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from costnet.errors import CostnetError
from costnet.features.analytical import analytical_features
from costnet.networks.estimate import Setting, distinct_rows, layer_times, network_time, op_rows
from costnet.networks.extract import extract_layers
from costnet.networks.validate import repredict
from costnet.networks.zoo import NETWORKS, build_network, example_input
from costnet.ops import get_op
from costnet.timing.workload import materialize
from tests.conftest import run_cli, run_main

CONFIG_COLUMNS = ["op", "batch", "size", "channels_in", "channels_out", "kernel", "stride", "padding",
                  "in_features", "out_features", "features", "fn"]
HARDWARE = {"device": "cpu", "hw_peak_gflops": 100.0, "hw_bandwidth_gbs": 10.0}


class Block(nn.Module):
    """Residual add, in-place ReLU reused twice, a 1x7 convolution and a concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.wide = nn.Conv2d(8, 8, (1, 7), padding=(0, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn(self.conv(x)))
        y = self.wide(y) + x
        return torch.cat([self.relu(y), x], 1)


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 7, 2, 3)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.block = Block()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.pool(self.stem(x))))


class Untraceable(Small):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 0 and float(x.sum()) != 12345.0:  # data-dependent: fx cannot trace it
            x = self.stem(x)
        return self.head(self.block(self.pool(x)))


def test_fx_and_hooks_find_the_same_layers() -> None:
    x = torch.randn(2, 3, 32, 32)
    fx, hooks = extract_layers(Small(), x, "fx"), extract_layers(Small(), x, "hooks")
    assert fx.attrs["method"] == "fx" and hooks.attrs["method"] == "hooks"
    cols = [c for c in CONFIG_COLUMNS if c in fx]
    a = fx[fx["kind"] != "free"][cols + ["kind"]].reset_index(drop=True)
    b = hooks[hooks["kind"] != "free"][cols + ["kind"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    ops = a["op"].tolist()
    assert ops == ["conv2d", "pool2d", "conv2d", "batchnorm2d", "elementwise", "conv2d", "elementwise",
                   "elementwise", "cat", "adaptive_pool2d", "dropout", "dense"]
    assert a.loc[a["op"] == "cat", "kind"].item() == "analytical"  # listed, never dropped
    assert fx.loc[fx["op"] == "elementwise", "fn"].tolist() == ["relu", "add", "relu"]
    wide = fx[fx["approx"].str.contains("1x7")]
    assert len(wide) == 1 and wide["channels_in"].item() == 8 * 7 and wide["kernel"].item() == 1
    assert not fx["input_grad"].iloc[0]  # the stem reads only the network's input
    assert fx["input_grad"].iloc[1:].all()


class InPlace(nn.Module):
    """Elementwise calls written every way PyTorch writes into an input, and two that do not."""

    def __init__(self) -> None:
        super().__init__()
        self.act, self.out = nn.ReLU(inplace=True), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(x * x)  # mul out of place; the module in place
        y = nn.functional.relu(y, inplace=True)
        y += x
        y = y.add_(x)
        y = torch.relu_(y)
        return self.out(y + x)  # add and module out of place


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_in_place_calls_are_marked(method: str) -> None:
    frame = extract_layers(InPlace(), torch.randn(2, 8), method)
    calls = frame[frame["op"] == "elementwise"]
    assert calls["fn"].tolist() == ["mul", "relu", "relu", "add", "add", "relu", "add", "relu"]
    # fx's proxies have no __iadd__: Python falls back to __add__, so fx records `y += x` as `y + x`
    augmented = method == "hooks"
    assert calls["inplace"].tolist() == [False, True, True, augmented, True, True, False, False]
    # an in-place layer is a configuration of its own, featurized without a fresh output
    rows = op_rows(calls, "elementwise", {"mode": "forward", "dtype": "float32", "optimizer": "none"})
    distinct, same = distinct_rows(rows, "elementwise")
    assert len(distinct) == 5 and same[1] == same[2] != same[7] and same[4] != same[6]


def test_untraceable_module_falls_back_to_hooks() -> None:
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(CostnetError, match="cannot trace"):
        extract_layers(Untraceable(), x, "fx")
    frame = extract_layers(Untraceable(), x)
    assert frame.attrs["method"] == "hooks"
    assert (frame["op"] == "conv2d").sum() == 3
    with pytest.raises(CostnetError, match="extraction method"):
        extract_layers(Small(), x, "magic")


class SplitHeads(nn.Module):
    """Attention-like: the two halves of a split (a tuple output) multiplied together."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj(x).split(8, dim=1)
        return torch.matmul(a, b.t())


def test_hooks_record_the_tensors_of_a_tuple_output() -> None:
    frame = extract_layers(SplitHeads(), torch.randn(4, 8), "hooks").set_index("name")
    assert frame.loc["split_1", "parents"] == ["proj"]
    assert frame.loc["matmul_3", "parents"] == ["split_1", "t_2"] and frame.loc["matmul_3", "input_grad"]


def test_a_freed_tensors_producer_is_not_inherited_by_a_tensor_reusing_its_id() -> None:
    """CPython gives a new object the id of a freed one; the hook fallback once looked
    producers up by id alone, so parents (and input_grad) changed from run to run."""
    from costnet.networks.extract import _Producers

    producers = _Producers()
    for _ in range(1000):
        old = torch.empty(3)
        producers.record(old, "gone")
        old_id = id(old)
        assert producers.get(old) == "gone"
        del old
        new = torch.empty(3)
        if id(new) == old_id:
            assert producers.get(new) is None
            return
    pytest.skip("this interpreter never reused the id of a freed tensor")


def test_unsupported_modules_are_listed_with_a_reason() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2), nn.PReLU())
    frame = extract_layers(net, torch.randn(1, 3, 16, 16))
    uncovered = frame[frame["kind"] == "analytical"]
    assert set(uncovered["module"]) == {"Conv2d", "PReLU"}
    assert uncovered["reason"].str.contains("dilation").any()
    assert (uncovered["bytes"] > 0).all()


def test_extracted_layers_build_to_their_shapes() -> None:
    frame = extract_layers(Small(), torch.randn(2, 3, 33, 33))
    covered = frame[(frame["kind"] == "layer") & (frame["approx"] == "")]
    for _, row in covered.iterrows():
        cfg = op_rows(covered.loc[[row.name]], row["op"], {"mode": "forward", "dtype": "float32",
                                                           "optimizer": "none"}).iloc[0].to_dict()
        module, inputs = materialize(*get_op(row["op"]).build(cfg, torch.device("meta"), torch.float32),
                                     torch.device("cpu"))
        with torch.no_grad():
            out = module.eval()(*inputs)
        assert out.numel() == math.prod(json.loads(row["out_shape"])), row["name"]


@pytest.mark.parametrize("method", ["fx", "hooks"])
@pytest.mark.parametrize("name", ["alexnet", "resnet18"])
def test_meta_network_gives_the_same_layers(name: str, method: str) -> None:
    module, _ = build_network(name)
    real = extract_layers(module, example_input(name, 2), method)
    with torch.device("meta"):
        shapes_only, _ = build_network(name)
        x = example_input(name, 2)
    pd.testing.assert_frame_equal(extract_layers(shapes_only, x, method), real)


def test_predict_at_a_huge_batch_allocates_no_batch(tmp_path: Path) -> None:
    out = tmp_path / "alexnet.json"
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, stderr = run_main("predict", "network=alexnet", "batch_size=1000000", "hardware=V100", f"out={out}")
    assert code == 0, stderr
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib < 2**20  # < 1 GiB; the batch is 602 GB
    result = json.loads(out.read_text())
    assert result["batch_size"] == 1000000 and math.isfinite(result["batch_ms"]) and result["batch_ms"] > 0


MATMUL_OPS = ("conv2d", "dense", "matmul", "attention")


@pytest.mark.parametrize("name", NETWORKS)
def test_classic_networks_flops_agree_with_flop_counter(name: str) -> None:
    module, _ = build_network(name)
    x = example_input(name, 2)
    frame = extract_layers(module, x)
    assert frame.attrs["method"] == "fx"
    counter = FlopCounterMode(display=False)
    # the math backend decomposes attention into the matrix products the counter sees (it
    # counts the fused CPU kernel as 0 FLOPs)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        module.eval()(x)
    rows = frame[(frame["kind"] == "layer") & frame["op"].isin(MATMUL_OPS)]
    ours = sum(analytical_features(op_rows(part, op, {"mode": "forward", "dtype": "float32", "optimizer": "none"})
                                   )["flops"].sum() for op, part in rows.groupby("op"))
    # ours adds bias and activation elementwise work to the matrix products: well under 1 %
    assert ours == pytest.approx(counter.get_total_flops(), rel=0.01)
    convs = sum(isinstance(m, nn.Conv2d) for m in module.modules())
    linears = sum(isinstance(m, nn.Linear) for m in module.modules())
    assert (frame["op"] == "conv2d").sum() == convs
    assert (frame["op"] == "dense").sum() == linears
    assert not frame[frame["kind"] == "analytical"]["op"].isin(MATMUL_OPS).any()


class ConstantConv:
    """A stand-in conv2d cost model: predicts ``ms`` for every row and keeps the rows it saw."""

    meta = {"model": "mlp", "op": "conv2d"}
    op = "conv2d"

    def __init__(self, ms: float, share: float = 1.0) -> None:
        self.ms, self.share, self.seen = ms, share, pd.DataFrame()

    def peak_share(self, mode: str) -> float:
        return self.share

    def beyond(self, rows: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
        return {}  # a model of every device

    def predict(self, rows: pd.DataFrame, enriched: pd.DataFrame | None = None) -> np.ndarray:
        self.seen = rows
        return np.full(len(rows), self.ms)


def test_model_times_below_the_compute_floor_are_raised_to_it() -> None:
    frame = extract_layers(Small(), torch.randn(4, 3, 32, 32))
    floored = layer_times(frame, {"conv2d": ConstantConv(1e-9)}, HARDWARE, Setting("forward"))
    convs = floored[floored["op"] == "conv2d"]
    # FLOPs at 100 GFLOP/s, in ms: 1e8 FLOP per ms; a 3 x 3 stride-1 convolution's floor counts
    # Winograd's 4x fewer multiplications (the block's first convolution), the others direct
    winograd = ((convs["kernel"] == 3) & (convs["stride"] == 1)).to_numpy()
    assert winograd.sum() == 1 and len(convs) == 3
    assert convs["time_ms"].to_numpy() == pytest.approx(convs["flops"].to_numpy() / 1e8 / np.where(winograd, 4, 1))
    assert convs["source"].str.contains("compute floor").all()
    raw = layer_times(frame, {"conv2d": ConstantConv(1e-9)}, HARDWARE, Setting("forward", compute_floor=False))
    assert (raw.loc[raw["op"] == "conv2d", "time_ms"] == 1e-9).all()
    # a model whose training rows reached at most a quarter of the peak: its floor is 4x higher
    quarter = layer_times(frame, {"conv2d": ConstantConv(1e-9, share=0.25)}, HARDWARE, Setting("forward"))
    assert quarter.loc[quarter["op"] == "conv2d", "time_ms"].to_numpy() == pytest.approx(4 * convs["time_ms"].to_numpy())


def test_layer_times_use_models_and_fall_back_to_analytical() -> None:
    frame = extract_layers(Small(), torch.randn(4, 3, 32, 32))
    model = ConstantConv(2.0)
    table = layer_times(frame, {"conv2d": model}, HARDWARE, Setting("train", "sgd"))
    assert len(model.seen) and model.seen["mode"].eq("train").all() and model.seen["optimizer"].eq("sgd").all()
    convs = table["op"] == "conv2d"
    assert (table.loc[convs, "time_ms"] == 2.0).all() and table.loc[convs, "source"].eq("model:mlp").all()
    others = table[(table["kind"] == "layer") & ~convs]
    assert (others["time_ms"] > 0).all() and others["source"].str.startswith("analytical").all()
    assert (table.loc[table["kind"] == "free", "time_ms"] == 0).all()
    assert table["share"].sum() == pytest.approx(1.0)
    total = network_time(table, batch_size=4, dataset_size=10)
    assert total.batches_per_epoch == 3
    assert total.epoch_s == pytest.approx(3 * table["time_ms"].sum() / 1e3)
    assert total.modeled_share == pytest.approx(6.0 / table["time_ms"].sum())
    with pytest.raises(CostnetError, match="mode"):
        Setting("backward")


@pytest.mark.slow
def test_costnet_predict_prints_and_writes_totals(tmp_path) -> None:
    out = tmp_path / "vgg.json"
    done = run_cli("predict", "network=alexnet", "batch_size=2", "hardware=V100", "mode=forward", f"out={out}")
    assert done.returncode == 0, done.stderr
    assert "ms per batch" in done.stdout
    result = json.loads(out.read_text())
    assert result["batch_ms"] > 0 and result["batches_per_epoch"] == math.ceil(1281167 / 2)
    assert {layer["op"] for layer in result["layers"]} >= {"conv2d", "dense", "pool2d"}
    bad = run_cli("predict", "network=lenet")
    assert bad.returncode == 2 and "lenet" in bad.stderr


def test_repredict_keeps_measured_times_and_changes_predictions() -> None:
    layers = extract_layers(Small(), torch.randn(2, 3, 32, 32))
    table = layer_times(layers, {}, HARDWARE, Setting("forward"))
    table["measured_ms"] = np.where(table["kind"] == "layer", 1.0, 0.0)
    table.insert(0, "network", "small")
    table.insert(1, "batch_size", 2)
    table.insert(2, "step", "forward")
    summary = pd.DataFrame([{"network": "small", "batch": 2, "mode": "forward", "whole_ms": 10.0}])

    again, layers_again = repredict(summary, table.drop(columns=["parents"]), {"conv2d": ConstantConv(3.0)}, HARDWARE)
    row = again.iloc[0]
    convs = int((table["op"] == "conv2d").sum())
    covered = int((table["kind"] == "layer").sum())
    uncovered = table.loc[table["kind"] == "analytical", "time_ms"].sum()
    assert row["layer_sum_ms"] == pytest.approx(covered + uncovered)  # measured times kept
    assert (layers_again.loc[layers_again["op"] == "conv2d", "time_ms"] == 3.0).all()
    assert row["predicted_ms"] > 3.0 * convs and row["pred_error"] == pytest.approx(row["predicted_ms"] / 10 - 1)


def test_validate_times_whole_passes_in_rounds_and_keeps_the_fastest(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    from costnet.networks import validate as module
    calls: list[tuple[str, int]] = []
    first = {("a", 1): 10.0, ("b", 1): 20.0}  # the first round's whole pass (validate_one)
    later = {("a", 1): [8.0, 12.0], ("b", 1): [30.0, 25.0]}  # rounds 2 and 3 (time_network_fresh)

    def one(network: str, batch: int, mode: str, *args: object, **kwargs: object) -> tuple[dict, pd.DataFrame]:
        calls.append((network, 1))
        table = pd.DataFrame({"network": network, "kind": ["layer"], "time_ms": [9.0], "measured_ms": [9.5],
                              "parents": [[]]})
        whole = first[(network, batch)]
        return module._totals({"network": network, "batch": batch, "mode": mode, "whole_ms": whole,
                               "whole_disturbed": False, "whole_spread": 1.0}, table), table

    def fresh(network: str, batch: int, *args: object, **kwargs: object) -> dict[str, float]:
        rounds = sum(1 for n, _ in calls if n == network)
        calls.append((network, rounds + 1))
        return {"time_median_ms": later[(network, batch)][rounds - 1], "disturbed": float(network == "b")}

    monkeypatch.setattr(module, "validate_one", one)
    monkeypatch.setattr(module, "time_network_fresh", fresh)
    summary, _ = module.validate(["a", "b"], [1], ["forward"], {}, HARDWARE, None, {}, out=tmp_path, processes=3)
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]  # rounds over every run
    a, b = summary.set_index("network").loc["a"], summary.set_index("network").loc["b"]
    assert a["whole_ms"] == 8.0 and a["whole_spread"] == pytest.approx(12.0 / 8.0) and not a["whole_disturbed"]
    assert b["whole_ms"] == 20.0 and b["whole_spread"] == pytest.approx(30.0 / 20.0) and not b["whole_disturbed"]
    assert a["pred_error"] == pytest.approx(9.0 / 8.0 - 1) and a["sum_over_whole"] == pytest.approx(9.5 / 8.0)
    assert pd.read_csv(tmp_path / "table.csv")["whole_ms"].tolist() == [8.0, 20.0]  # saved after the last round
    with pytest.raises(CostnetError, match="processes must be >= 1, got 0"):
        module.validate(["a"], [1], ["forward"], {}, HARDWARE, None, {}, processes=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0])
def test_a_model_predicting_no_time_is_an_error_not_a_smaller_sum(bad: float) -> None:
    frame = extract_layers(Small(), torch.randn(4, 3, 32, 32))
    with pytest.raises(CostnetError, match=r"the conv2d model predicts .* ms for \d+ layer\(s\), e.g. '"):
        layer_times(frame, {"conv2d": ConstantConv(bad)}, HARDWARE, Setting("forward"))


class FlopsConv(ConstantConv):
    """A conv2d stand-in whose time depends on the configuration (its output channels)."""

    def predict(self, rows: pd.DataFrame, enriched: pd.DataFrame | None = None) -> np.ndarray:
        self.seen = rows
        return rows["channels_out"].to_numpy(float) * 1e-3


def test_repeated_layers_are_predicted_once_and_each_row_gets_its_own_time() -> None:
    class Repeated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv2d(8, 8, 3, padding=1) for _ in range(5)] + [nn.Conv2d(8, 16, 3)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for conv in self.convs:
                x = conv(x)
            return x

    frame = extract_layers(Repeated(), torch.randn(2, 8, 16, 16))
    model = FlopsConv(0.0)
    table = layer_times(frame, {"conv2d": model}, HARDWARE, Setting("forward", compute_floor=False))
    # the first convolution reads the network's input (no input gradient), the next four are
    # equal, the last differs
    assert len(model.seen) == 3
    convs = table[table["op"] == "conv2d"]
    assert convs["time_ms"].tolist() == pytest.approx([8e-3] * 5 + [16e-3])
    assert convs["flops"].iloc[0] == convs["flops"].iloc[4] != convs["flops"].iloc[5]
