"""The whole-pass gap (Lu et al.): its fit, the row it adds, and leave-one-model-and-GPU-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from costnet.errors import CostnetError
from costnet.networks.estimate import Setting
from costnet.networks.overhead import (GAP_ROW, RATIO_ROW, fit_kernel_gap, fit_pass_ratio, kernel_calls,
                                      with_kernel_gap, with_pass_ratio)
from costnet.networks.validate import pass_ratios, with_pass_ratio_lono
from costnet.reproduce.workloads import with_fitted_gap


def test_the_gap_is_the_median_per_kernel_difference() -> None:
    # per kernel: (110 - 100) / 100 = 0.1, (205 - 200) / 50 = 0.1, (50 - 80) / 10 = -3 (a throttled pass)
    assert fit_kernel_gap([110, 205, 50], [100, 200, 80], [100, 50, 10]) == pytest.approx(0.1)
    # passes without a finite time or a kernel count are left out
    assert fit_kernel_gap([110, np.nan, 9], [100, 1, 1], [100, 5, 0]) == pytest.approx(0.1)
    with pytest.raises(CostnetError, match="measured both ways"):
        fit_kernel_gap([1.0], [1.0, 2.0], [3])
    with pytest.raises(CostnetError, match="no pass"):
        fit_kernel_gap([np.nan], [1.0], [3])


def test_the_gap_is_one_row_per_table_over_the_kernel_running_calls() -> None:
    table = pd.DataFrame({"name": ["fc", "view", "mask", "drop"], "op": ["dense", "view", "eq", "dropout"],
                          "kind": ["layer", "free", "analytical", "free"], "time_ms": [2.0, 0.0, 0.5, 0.0],
                          "flops": [1.0, 0.0, 0.0, 0.0], "source": ["model", "free", "analytical", "free"]})
    assert kernel_calls(table) == 2
    out = with_kernel_gap(table, 0.01)
    assert len(out) == 5 and out.iloc[-1]["name"] == GAP_ROW and out.iloc[-1]["kind"] == "overhead"
    assert out["time_ms"].sum() == pytest.approx(2.5 - 0.02)
    assert table["time_ms"].sum() == pytest.approx(2.5)  # the input is not changed


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1", True])
def test_a_gap_that_is_not_a_number_is_refused(bad: object) -> None:
    with pytest.raises(CostnetError, match="kernel_gap_ms"):
        Setting(mode="forward", kernel_gap_ms=bad)  # type: ignore[arg-type]


def test_the_fitted_gap_never_sees_the_workloads_model_or_gpu() -> None:
    # gaps per kernel: model a on X 1.0, b on Y 2.0, c on X 4.0, a on Y 8.0 (node sum - measured) / kernels
    table = pd.DataFrame({"gpu": ["X", "Y", "X", "Y"], "workload": ["a1", "b1", "c1", "a2"],
                          "model": ["a", "b", "c", "a"], "measured_ms": [100.0] * 4,
                          "node_sum_ms": [110.0, 120.0, 140.0, 180.0], "kernels": [10] * 4,
                          "predicted_ms": [100.0] * 4, "error": [0.0] * 4})
    out = with_fitted_gap(table).set_index("workload")
    # a1 (a on X): only b on Y qualifies -> 2.0 ms per kernel; c1 (c on X): b1 and a2 -> median 5.0
    assert out.loc["a1", "kernel_gap_us"] == pytest.approx(2000.0)
    assert out.loc["c1", "kernel_gap_us"] == pytest.approx(5000.0)
    assert out.loc["a1", "gap_error"] == pytest.approx((100 - 20) / 100 - 1)
    assert out.loc["a1", "node_sum_gap_error"] == pytest.approx((110 - 20) / 100 - 1)
    # b1 (b on Y): a1 and c1, both on X -> median 2.5; a2 (a on Y): c1 only -> 4.0
    assert out.loc["b1", "kernel_gap_us"] == pytest.approx(2500.0)
    assert out.loc["a2", "kernel_gap_us"] == pytest.approx(4000.0)


def test_predict_model_takes_the_gap_off_once_per_kernel() -> None:
    import torch

    from costnet.networks.api import predict_model

    with torch.device("meta"):
        net, x = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)), torch.ones(4, 64)
    plain = predict_model(net, x, "V100", mode="forward")
    gapped = predict_model(net, x, "V100", mode="forward", kernel_gap_ms=1e-4)
    calls = kernel_calls(plain.layers)
    assert calls == 3 and gapped.batch_ms == pytest.approx(plain.batch_ms - 3e-4)
    assert (gapped.layers["name"] == GAP_ROW).sum() == 1


def test_the_pass_ratio_is_the_median_whole_over_sum() -> None:
    # whole / sum: 1.2, 1.1, 0.5 (a disturbed pass), 1.15; non-positive or missing passes are left out
    assert fit_pass_ratio([100, 200, 80, 40, 0, np.nan], [120, 220, 40, 46, 5, 3]) == pytest.approx(1.125)
    with pytest.raises(CostnetError, match="measured both ways"):
        fit_pass_ratio([1.0], [1.0, 2.0])
    with pytest.raises(CostnetError, match="no pass"):
        fit_pass_ratio([0.0], [1.0])


def test_the_pass_ratio_is_one_row_scaling_the_total() -> None:
    table = pd.DataFrame({"name": ["fc", "act"], "op": ["dense", "elementwise"], "kind": "layer",
                          "time_ms": [3.0, 1.0], "flops": [1.0, 0.0], "source": "model"})
    scaled = with_pass_ratio(table, 1.25)
    assert scaled["time_ms"].sum() == pytest.approx(5.0) and scaled["name"].iloc[-1] == RATIO_ROW
    assert len(table) == 2  # the input is left as it was


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "1.1"])
def test_a_pass_ratio_that_is_not_a_positive_number_is_refused(bad: object) -> None:
    with pytest.raises(CostnetError, match="pass_ratio"):
        Setting("forward", pass_ratio=bad)


def test_the_validated_pass_ratio_never_sees_the_predicted_network() -> None:
    summary = pd.DataFrame({"network": ["a", "a", "b", "c", "c"], "mode": ["forward", "train", "forward", "forward",
                                                                           "train"],
                            "whole_ms": [10.0, 10.0, 30.0, 40.0, 8.0], "layer_sum_ms": [5.0, 10.0, 20.0, 20.0, 10.0],
                            "predicted_ms": [4.0, 10.0, 20.0, 10.0, 10.0]})
    out = with_pass_ratio_lono(summary)
    # a forward: median of b's 1.5 and c's 2.0; b forward: a's 2.0 and c's 2.0; a train: c's 0.8
    assert out["pass_ratio"].tolist()[:4] == pytest.approx([1.75, 0.8, 2.0, 1.75])
    assert out["predicted_ratio_ms"].iloc[0] == pytest.approx(7.0)
    assert out["pred_error_ratio"].iloc[0] == pytest.approx(-0.3)
    assert out["pass_ratio"].iloc[4] == pytest.approx(1.0)  # c train: a's 1.0
    assert pass_ratios(summary) == pytest.approx({"forward": 2.0, "train": 0.9})
