"""Whole-pass effects: the gap between separately timed layers and one pass (Lu et al. 2017).

A layer timed alone pays its launch and synchronization on its own; in one pass the host
queues kernels ahead of the device and hides most of that. costnet models the gap on a GPU as
a constant per kernel-running call, fitted on measured passes (:func:`fit_kernel_gap`) and
applied as one row of the layer table (:func:`with_kernel_gap`). On a CPU the gap grows with
the pass instead (a layer repeated alone may find its weights and input in cache, and a fresh
process's heap faults in pages a long-lived one reuses; not separated by measurement); there it
is one ratio of the whole pass to the sum of its layers (:func:`fit_pass_ratio`,
:func:`with_pass_ratio`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from costnet.errors import CostnetError

GAP_ROW = "(whole pass) per-kernel gap"
RATIO_ROW = "(whole pass) ratio to the layer sum"


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


def fit_pass_ratio(separate_ms: Sequence[float], whole_ms: Sequence[float]) -> float:
    """The whole pass over the sum of its separately timed layers, from passes measured both
    ways: the median over passes of whole / sum (robust to one disturbed pass, as
    :func:`fit_kernel_gap`)."""
    separate, whole = np.asarray(separate_ms, float), np.asarray(whole_ms, float)
    if len(separate) != len(whole) or not len(separate):
        raise CostnetError(f"fit_pass_ratio needs passes measured both ways, got {len(separate)} sums and "
                           f"{len(whole)} whole passes")
    ok = np.isfinite(separate) & np.isfinite(whole) & (separate > 0) & (whole > 0)
    if not ok.any():
        raise CostnetError("fit_pass_ratio: no pass has a positive, finite sum and whole time")
    return float(np.median(whole[ok] / separate[ok]))


def with_pass_ratio(table: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """``table`` plus one row that scales the step's total by ``ratio``."""
    total = float(table["time_ms"].sum())
    row = {"name": RATIO_ROW, "op": "overhead", "kind": "overhead", "flops": 0.0, "time_ms": (ratio - 1) * total,
           "source": f"fitted: whole pass = {ratio:.3g} x the layer sum"}
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)
