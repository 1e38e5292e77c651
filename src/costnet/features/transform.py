"""Feature sets and the fitted transform from rows to a model's input matrix.

A feature set (``conf/features/*.yaml``) names numeric and categorical columns, each kind as
a list or as named blocks of columns concatenated in order (sets extend one another by blocks).
``FeatureTransform.fit`` learns, on training rows only, the mean and standard
deviation of each numeric column (after ``log1p`` when ``log`` is set) and the
categories of each categorical column; ``transform`` applies them, mapping unseen
categories to all-zero one-hot codes.

Fitting accumulates partial statistics (:class:`FitStatistics`: per numeric column a count,
mean and sum of squared deviations, merged batch by batch; per categorical column the
labels seen), so a fit on one frame and a fit streamed over the batches of a dataset larger
than memory (costnet.nets.streaming) take the same code path and agree to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from costnet.data.schema import CONFIG
from costnet.errors import CostnetError
from costnet.features.analytical import analytical_features, roofline_features
from costnet.features.gpu import gpu_features, wave_bound_ms
from costnet.ops import get_op


def enrich(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus its analytical (and, given hardware columns, roofline and GPU) features."""
    extra = analytical_features(frame)
    parts = [frame.drop(columns=[c for c in extra if c in frame]), extra]
    if all(c in frame for c in ("hw_peak_gflops", "hw_bandwidth_gbs")):
        roof = roofline_features(frame, extra)
        roof["t_bound_ms"] = wave_bound_ms(frame, extra, roof)
        gpu = gpu_features(frame, extra, roof)
        parts += [roof, gpu]
        parts[0] = parts[0].drop(columns=[c for c in (*roof, *gpu) if c in parts[0]])
    return pd.concat(parts, axis=1)


@dataclass(frozen=True)
class FeatureSet:
    """Which columns a model sees (see conf/features/)."""

    name: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    log: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> FeatureSet:
        name = str(cfg.get("name", "custom"))
        numeric, categorical = _columns(cfg.get("numeric"), name), _columns(cfg.get("categorical"), name)
        if not numeric and not categorical:
            raise CostnetError(f"features {cfg.get('name')!r}: no columns")
        return cls(name, numeric, categorical, bool(cfg.get("log", True)))


def _columns(value: Sequence[str] | Mapping[str, Sequence[str]] | None, name: str) -> tuple[str, ...]:
    """A feature set's columns of one kind: a list, or blocks of columns joined in order."""
    blocks = value.values() if isinstance(value, Mapping) else [value or ()]
    columns = tuple(str(c) for block in blocks for c in (block or ()))
    if repeated := sorted({c for c in columns if columns.count(c) > 1}):
        raise CostnetError(f"features {name!r}: columns {repeated} are named more than once")
    return columns


@dataclass
class FeatureTransform:
    """Fitted on training rows; turns any frame of the same layout into a float32 matrix."""

    features: FeatureSet
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    def _check_parameters(self, frame: pd.DataFrame) -> None:
        """Stop at rows that lack a parameter of their own op: a config column may be absent
        or null only in rows of ops without that parameter (e.g. kernel in the dense rows of a
        frame that mixes ops), which read it as 0 (numeric) or "n/a" (categorical)."""
        ops = frame["op"].astype(str) if "op" in frame else None
        present = [get_op(o) for o in ops.unique()] if ops is not None else []
        for col in (c for c in (*self.features.numeric, *self.features.categorical) if c in CONFIG):
            owners = [op.name for op in present if col in op.columns]
            if ops is not None and not owners:
                continue  # no row's op has this parameter (e.g. kernel in a frame of dense rows)
            lacking = frame[col].isna() if col in frame else pd.Series(True, index=frame.index)
            if ops is not None and len(owners) < len(present):
                lacking &= ops.isin(owners)
            if lacking.any():
                op = repr(ops[lacking].iloc[0]) if ops is not None else "unknown: the rows have no op column"
                raise CostnetError(f"features {self.features.name!r}: column {col!r} is "
                                   f"{'null' if col in frame else 'missing'} in {int(lacking.sum())} of {len(frame)} "
                                   f"rows whose op has that parameter (op {op})")

    def _numeric(self, frame: pd.DataFrame) -> np.ndarray:
        """The numeric columns as a float matrix (log1p'd when the set says so)."""
        columns = list(self.features.numeric)
        if unknown := [c for c in columns if c not in frame and c not in CONFIG]:
            raise CostnetError(f"features {self.features.name!r}: rows lack column(s) {unknown}")
        # Config columns of other ops (e.g. kernel for dense rows) are 0 (see _check_parameters).
        # Unknown quantities (NaN, e.g. roofline times without measured peaks) become 0.
        values = np.column_stack([self._number(frame, c) for c in columns]) if columns else np.zeros((len(frame), 0))
        values[~np.isfinite(values)] = 0.0
        if self.features.log:
            if (negative := (values < 0).any(axis=0)).any():
                bad = [c for c, b in zip(columns, negative) if b]
                raise CostnetError(f"features: negative values in {bad} cannot be log-transformed")
            values = np.log1p(values)
        return values

    def _number(self, frame: pd.DataFrame, col: str) -> np.ndarray:
        """Column ``col`` as floats (NaN where missing; zeros where the rows lack it)."""
        if col not in frame:
            return np.zeros(len(frame))
        try:
            return pd.to_numeric(frame[col]).to_numpy(float, na_value=np.nan)
        except (ValueError, TypeError) as exc:
            raise CostnetError(f"features {self.features.name!r}: column {col!r} is not numeric ({exc})") from exc

    def _labels(self, frame: pd.DataFrame, col: str) -> tuple[np.ndarray, list[str]]:
        """Each row's category of ``col`` as an index into the returned labels: the value as
        text, ``n/a`` where it is missing (one conversion per distinct value)."""
        if col not in frame and col not in CONFIG:
            raise CostnetError(f"features {self.features.name!r}: rows lack column {col!r}")
        if col not in frame:
            return np.zeros(len(frame), dtype=np.intp), ["n/a"]
        codes, uniques = pd.factorize(frame[col])
        labels = [str(u) for u in uniques] + ["n/a"]
        return np.where(codes < 0, len(labels) - 1, codes), labels

    def fit(self, frame: pd.DataFrame) -> FeatureTransform:
        """Fit on the training rows ``frame`` (:meth:`statistics` over one batch)."""
        return self.statistics().add(frame).finish()

    def statistics(self) -> FitStatistics:
        """Empty partial statistics of this transform's fit: ``add`` batches of training rows
        (or ``merge`` statistics gathered elsewhere), then ``finish`` sets this transform."""
        return FitStatistics(self, Moments(len(self.features.numeric)),
                             {col: set() for col in self.features.categorical})

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.mean and self.features.numeric:
            raise CostnetError("FeatureTransform used before fit")
        self._check_parameters(frame)
        columns = list(self.features.numeric)
        mean = np.array([self.mean[c] for c in columns], dtype=float)
        std = np.array([self.std[c] for c in columns], dtype=float)
        blocks = [((self._numeric(frame) - mean) / std).astype(np.float32)]
        for col, cats in self.categories.items():
            rows_codes, labels = self._labels(frame, col)
            position = {c: i for i, c in enumerate(cats)}
            codes = np.array([position.get(label, -1) for label in labels])[rows_codes]  # -1: unseen in training
            onehot = np.zeros((len(frame), len(cats)), np.float32)
            rows = np.flatnonzero(codes >= 0)
            onehot[rows, codes[rows]] = 1.0
            blocks.append(onehot)
        return np.concatenate(blocks, axis=1)

    @property
    def width(self) -> int:
        return len(self.features.numeric) + sum(len(c) for c in self.categories.values())

    def state(self) -> dict[str, Any]:
        return {"features": self.features.__dict__, "mean": self.mean, "std": self.std,
                "categories": self.categories}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureTransform:
        f = state["features"]
        fs = FeatureSet(f["name"], tuple(f["numeric"]), tuple(f["categorical"]), f["log"])
        return cls(fs, dict(state["mean"]), dict(state["std"]),
                   {k: list(v) for k, v in state["categories"].items()})


class Moments:
    """Count, mean and population variance of each column of batches of rows, merged one batch
    at a time (Chan, Golub and LeVeque's pairwise update), without holding the rows.

    Values are taken relative to the first row seen (the shift), so a constant column has a
    mean of exactly its value and a variance of exactly 0 however the rows are batched.
    """

    def __init__(self, width: int) -> None:
        self.count = 0
        self.shift = np.zeros(width)
        self.mean = np.zeros(width)  # relative to shift
        self.m2 = np.zeros(width)  # sum of squared deviations from the mean

    def add(self, values: np.ndarray) -> Moments:
        """Count the rows of ``values`` (one column per statistic) in."""
        values = np.asarray(values, float).reshape(len(values), -1)
        if len(values):
            if not self.count:
                self.shift = values[0].copy()
            rel = values - self.shift
            mean = rel.mean(axis=0)
            self._join(len(values), mean, ((rel - mean) ** 2).sum(axis=0))
        return self

    def merge(self, other: Moments) -> Moments:
        """Count the rows ``other`` counted in (e.g. another worker's)."""
        if other.count:
            if not self.count:
                self.shift = other.shift.copy()
            self._join(other.count, other.mean + (other.shift - self.shift), other.m2)
        return self

    def _join(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / total)
        self.count = total

    @property
    def means(self) -> np.ndarray:
        """Each column's mean (NaN before any row)."""
        return self.shift + self.mean if self.count else np.full(len(self.mean), np.nan)

    @property
    def stds(self) -> np.ndarray:
        """Each column's standard deviation (ddof 0; NaN before any row)."""
        return np.sqrt(self.m2 / self.count) if self.count else np.full(len(self.m2), np.nan)


@dataclass
class FitStatistics:
    """What a :class:`FeatureTransform` fit has seen so far: the numeric columns' moments
    (after ``log1p`` when the set says so) and each categorical column's labels."""

    transform: FeatureTransform
    moments: Moments
    labels: dict[str, set[str]]

    def add(self, frame: pd.DataFrame) -> FitStatistics:
        """Count the training rows ``frame`` in (checked as :meth:`FeatureTransform.transform` checks rows)."""
        self.transform._check_parameters(frame)
        self.moments.add(self.transform._numeric(frame))
        for col in self.labels:
            codes, labels = self.transform._labels(frame, col)
            self.labels[col].update(labels[i] for i in np.unique(codes))
        return self

    def merge(self, other: FitStatistics) -> FitStatistics:
        """Count in what ``other`` (statistics of the same feature set) has seen."""
        self.moments.merge(other.moments)
        for col, seen in other.labels.items():
            self.labels[col].update(seen)
        return self

    def finish(self) -> FeatureTransform:
        """Set the transform's means, deviations and categories from the rows seen; returns it."""
        columns = list(self.transform.features.numeric)
        mean, std = self.moments.means, self.moments.stds
        # A column constant in training (a device's spec with one training device) has a std of 0
        # or float noise (1e-15): it is left unscaled, so another device's value cannot blow up.
        scaled = std > 1e-9 * (1 + np.abs(mean))
        self.transform.mean = {c: float(m) for c, m in zip(columns, mean)}
        self.transform.std = {c: float(s) if ok else 1.0 for c, s, ok in zip(columns, std, scaled)}
        self.transform.categories = {col: sorted(seen) for col, seen in self.labels.items()}
        return self.transform
