"""The fastest share of peak a model's training rows reached (costnet.features.roof)."""

from __future__ import annotations

import pandas as pd
import pytest

from costnet.features.roof import fastest_share, fewest_flops


def dense_rows(times_ms: list[float], modes: list[str]) -> pd.DataFrame:
    """Dense rows of 2 x 1000 x 1000 FLOPs (batch 1) on a 100 GFLOP/s device."""
    n = len(times_ms)
    return pd.DataFrame({"op": "dense", "batch": [1] * n, "in_features": [1000] * n, "out_features": [1000] * n,
                         "bias": False, "activation": "none", "mode": modes, "optimizer": "none",
                         "input_grad": False, "time_median_ms": times_ms, "hw_peak_gflops": [100.0] * n})


def test_fastest_share_is_the_best_rate_per_mode_over_the_peak() -> None:
    rows = dense_rows([0.1, 0.04, 0.2], ["forward", "forward", "train"])
    flops = fewest_flops(rows)
    assert flops[0] == pytest.approx(2e6)
    shares = fastest_share(rows)
    assert shares["forward"] == pytest.approx(2e6 / 0.04 / 1e6 / 100)  # the faster of the two rows
    assert shares["train"] == pytest.approx(flops[2] / 0.2 / 1e6 / 100)


def test_fastest_share_is_empty_without_what_it_needs() -> None:
    rows = dense_rows([0.1], ["forward"])
    assert fastest_share(rows.drop(columns=["hw_peak_gflops"])) == {}
    assert fastest_share(rows.assign(op="neusight_linear")) == {}
    assert fastest_share(rows.iloc[:0]) == {}
