"""Whole-pass effects: the gap between separately timed layers and one pass (Lu et al. 2017).

A layer timed alone pays its launch and synchronization on its own; in one pass the host
queues kernels ahead of the device and hides most of that. costnet models the gap as a
constant per kernel-running call, fitted on measured passes (:func:`fit_kernel_gap`) and
applied as one row of the layer table (:func:`with_kernel_gap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from costnet.errors import CostnetError

GAP_ROW = "(whole pass) per-kernel gap"


def kernel_calls(table: pd.DataFrame) -> int:
    """Calls of ``table`` (a layer table of :func:`costnet.networks.estimate.layer_times`) that
    run a kernel: timed or estimated layers with a positive time; views and eval-mode dropout
    run none."""
    runs = table["kind"].isin(["layer", "analytical"]) & (table["time_ms"] > 0)
    return int(runs.sum())


def fit_kernel_gap(separate_ms: Sequence[float], whole_ms: Sequence[float], kernels: Sequence[float]) -> float:
    """The per-kernel gap (ms) from passes measured both ways: the median over passes of
    (sum of separately timed calls - whole pass) / kernel calls. The median, not least squares:
    one throttled or mis-timed pass (neusight2025 holds gaps of -750 to +440 us per kernel)
    would otherwise set it."""
    separate, whole, count = (np.asarray(v, float) for v in (separate_ms, whole_ms, kernels))
    if not (len(separate) == len(whole) == len(count)) or not len(separate):
        raise CostnetError(f"fit_kernel_gap needs passes measured both ways, got {len(separate)} sums, "
                           f"{len(whole)} whole passes, {len(count)} kernel counts")
    ok = np.isfinite(separate) & np.isfinite(whole) & (count > 0)
    if not ok.any():
        raise CostnetError("fit_kernel_gap: no pass has a finite sum, whole time and a kernel count")
    return float(np.median((separate[ok] - whole[ok]) / count[ok]))


def with_kernel_gap(table: pd.DataFrame, gap_ms: float) -> pd.DataFrame:
    """``table`` plus one row that takes ``gap_ms`` off the step per kernel-running call."""
    calls = kernel_calls(table)
    row = {"name": GAP_ROW, "op": "overhead", "kind": "overhead", "flops": 0.0, "time_ms": -gap_ms * calls,
           "source": f"fitted: {1e3 * gap_ms:.3g} us x {calls} kernel calls"}
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)
