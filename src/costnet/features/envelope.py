"""The range of devices a model was trained on, and a device beyond it seen from inside it.

A network that learned a utilization from four or five GPUs has no grounds to extrapolate it to
a GPU with three times the peak or seven times the L2 of any of them: each device feature is
monotone over the training GPUs, and the network carries that trend on past them. The bounded
MLP (``device_envelope: true``, costnet.nets.mlp.Bounded) therefore reads each device column
clipped to the training rows' range and recomputes the features from the clipped device, while
its bound (the wave-quantized roofline time) keeps the true device: the scale of a faster GPU
still comes from physics, the efficiency from the nearest GPUs the model knows. This is the
clipping trees do by construction (a split never reaches past the last training value).

Measured (README, "Whole models" and "GPUs a model never saw"): on neusight2025's workloads
with each GPU left out, the A100 (the largest GPU, held out) went from 7.1 to 3.8 % mean error
and the P4 (the smallest) from 12.0 to 9.5 %, though the P4's op-level errors rose on every op;
the GPUs inside the range are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from costnet.config import is_number
from costnet.errors import CostnetError
from costnet.features.hardware import DEVICE_COLUMNS
from costnet.features.transform import enrich


class DeviceEnvelope:
    """Per device column, the least and largest value over the training rows; filled one batch
    of rows at a time (:meth:`add`), as the feature scalers are."""

    def __init__(self, bounds: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.bounds: dict[str, tuple[float, float]] = dict(bounds or {})

    def add(self, frame: pd.DataFrame) -> DeviceEnvelope:
        """Widen the envelope to the devices of ``frame``'s rows (unknown values, NaN, are skipped)."""
        for col in DEVICE_COLUMNS:
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(float) if col in frame else np.array([])
            values = values[np.isfinite(values)]
            if len(values):
                lo, hi = self.bounds.get(col, (math.inf, -math.inf))
                self.bounds[col] = (min(lo, float(values.min())), max(hi, float(values.max())))
        return self

    def beyond(self, frame: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
        """The device columns in which some row of ``frame`` lies outside the envelope: the
        farthest such value, and the range."""
        out = {}
        for col, (lo, hi) in self.bounds.items():
            if col in frame:
                values = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
                outside = values[(values < lo) | (values > hi)]
                if len(outside):
                    out[col] = (float(outside[np.argmax(np.abs(outside - (lo + hi) / 2))]), lo, hi)
        return out

    def clip(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with every device column clipped into the envelope and, where that changed a
        value, its analytical, roofline and GPU features recomputed from the clipped device;
        ``frame`` itself when every row lies inside."""
        if not self.beyond(frame):
            return frame
        clipped = frame.copy()
        for col, (lo, hi) in self.bounds.items():
            if col in clipped:
                clipped[col] = np.clip(pd.to_numeric(clipped[col], errors="coerce").to_numpy(float), lo, hi)
        return enrich(clipped)

    def state(self) -> dict[str, list[float]]:
        return {col: [lo, hi] for col, (lo, hi) in self.bounds.items()}

    @classmethod
    def from_state(cls, state: Any) -> DeviceEnvelope:
        """The envelope :meth:`state` described; anything else is one clear error."""
        if not isinstance(state, Mapping):
            raise CostnetError(f"device envelope {state!r} is not a mapping of column to [least, largest]")
        bounds = {}
        for col, pair in state.items():
            ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(is_number(v) for v in pair)
            if col not in DEVICE_COLUMNS or not ok or pair[0] > pair[1]:
                raise CostnetError(f"device envelope: {col!r}: {pair!r} is not a device column's [least, largest]")
            bounds[col] = (float(pair[0]), float(pair[1]))
        return cls(bounds)
