"""The compute roof of a cost model: the fastest its training rows ran, as a share of peak.

No layer runs faster than its FLOPs at the device's peak (the compute roof of the roofline
model, Williams et al. 2009), counting the fewest FLOPs a known algorithm needs
(:meth:`costnet.ops.base.Op.fast_algorithm_factor`). A device's peak is not always reachable
by every op, though: on a 2-core AMD EPYC (Zen 5) torch's matmuls go through MKL, which takes
its AVX2 kernels on AMD processors, and reach half the rate of oneDNN's convolutions
(:mod:`costnet.hardware.microbench`). So each model records, per mode, the largest share of
its device's peak any of its training rows reached; whole-network prediction
(:mod:`costnet.networks.estimate`) raises a prediction faster than that to it: a model is not
trusted to extrapolate beyond the fastest layer it was trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from costnet.features.analytical import analytical_features
from costnet.ops import OPS


def fewest_flops(rows: pd.DataFrame, flops: np.ndarray | None = None) -> np.ndarray:
    """Each row's FLOPs (of its step: forward, or forward, backward and update in train mode)
    divided by the factor the fastest known algorithm for it saves; ``flops``, when given, are
    the rows' ``analytical_features`` FLOPs already computed. The training-time share and the
    prediction-time floor both count FLOPs here, so the two stay alike."""
    flops = analytical_features(rows)["flops"].to_numpy(float) if flops is None else np.asarray(flops, float)
    fast = np.ones(len(rows))
    for op, index in rows.groupby("op", sort=False).indices.items():
        fast[index] = OPS[str(op)].fast_algorithm_factor(rows.iloc[index])
    return flops / fast


def fastest_share(rows: pd.DataFrame) -> dict[str, float]:
    """Per ``mode``, the largest fraction of its device's peak FLOP/s (``hw_peak_gflops``) any
    row reached in its measured ``time_median_ms``, FLOPs counted by :func:`fewest_flops`.
    Empty when the rows lack times, peaks or modes, or are of an op costnet does not know."""
    needed = ("op", "mode", "time_median_ms", "hw_peak_gflops")
    if rows.empty or any(c not in rows for c in needed) or not rows["op"].astype(str).isin(list(OPS)).all():
        return {}
    gflops = fewest_flops(rows) / rows["time_median_ms"].to_numpy(float) / 1e6
    share = pd.Series(gflops / rows["hw_peak_gflops"].to_numpy(float), index=rows.index)
    share = share[np.isfinite(share) & (share > 0)]
    return {str(mode): float(s.max()) for mode, s in share.groupby(rows.loc[share.index, "mode"].astype(str))}
