"""Fitted scikit-learn regressors as plain arrays, and their prediction in numpy.

A model artifact must load without running code, so the regressors a baseline fits
(costnet.nets.selection.REGRESSORS) are saved as what they are: a linear model's
coefficients, or every tree's nodes (split feature, threshold, children, leaf
value, where missing values go). Prediction walks the trees with the same rule
scikit-learn applies, ``x[feature] <= threshold`` goes left and NaN follows
``missing_go_to_left`` (sklearn/tree/_tree.pyx ``apply_dense``;
sklearn/ensemble/_hist_gradient_boosting/_predictor.pyx), so a loaded model predicts
what the fitted one did, independent of the scikit-learn version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from costnet.errors import CostnetError

PAIRS_PER_CHUNK = 1 << 22  # (row, tree) pairs walked at once: a few int64 arrays of this length, ~100 MB


@dataclass(frozen=True)
class LinearArrays:
    """y = x @ coef + intercept."""

    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) @ self.coef + self.intercept

    def arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": "linear", "intercept": self.intercept}, {"coef": self.coef}


@dataclass(frozen=True)
class TreeArrays:
    """y = base + scale * (sum over trees of the leaf each row reaches).

    Nodes of all trees in flat arrays; ``roots`` holds each tree's first node, a leaf has
    feature -1, and children are indices into the flat arrays.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    missing_left: np.ndarray
    roots: np.ndarray
    base: float
    scale: float

    def __post_init__(self) -> None:
        n = len(self.feature)
        if not all(len(a) == n for a in (self.threshold, self.left, self.right, self.value, self.missing_left)):
            raise CostnetError("tree arrays differ in length")
        inner = self.feature >= 0
        children = np.concatenate([self.left[inner], self.right[inner], self.roots])
        if len(children) and (children.min() < 0 or children.max() >= n):
            raise CostnetError("tree arrays point outside their nodes")
        if inner.any() and not (self.left[inner] > np.flatnonzero(inner)).all():
            raise CostnetError("tree arrays are not in depth-first order (a child before its parent)")

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if len(self.feature) and self.feature.max() >= x.shape[1]:
            raise CostnetError(f"trees split on feature {int(self.feature.max())} of {x.shape[1]} inputs")
        out = np.empty(len(x))
        step = max(1, PAIRS_PER_CHUNK // max(1, len(self.roots)))
        for start in range(0, len(x), step):
            out[start:start + step] = self._walk(x[start:start + step])
        return self.base + self.scale * out

    def _walk(self, x: np.ndarray) -> np.ndarray:
        """Sum over trees of the leaf values each row of ``x`` reaches: every (row, tree)
        pair steps down one level at a time, and pairs drop out at their leaf."""
        n, width = x.shape
        node = np.tile(self.roots, n)
        offset = np.repeat(np.arange(n) * width, len(self.roots))  # where each pair's row starts in x
        flat = x.ravel()
        active, at = np.arange(len(node)), node
        while active.size:
            feature = self.feature[at]
            inner = feature >= 0
            active, at, feature = active[inner], at[inner], feature[inner]
            v = flat[offset[active] + feature]
            left = v <= self.threshold[at]
            if (missing := np.isnan(v)).any():
                left = np.where(missing, self.missing_left[at] == 1, left)
            at = np.where(left, self.left[at], self.right[at])
            node[active] = at
        return self.value[node].reshape(n, len(self.roots)).sum(axis=1)

    def arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return ({"kind": "trees", "base": self.base, "scale": self.scale},
                {"feature": self.feature, "threshold": self.threshold, "left": self.left, "right": self.right,
                 "value": self.value, "missing_left": self.missing_left, "roots": self.roots})


def _stack(trees: list[dict[str, np.ndarray]], base: float, scale: float) -> TreeArrays:
    """One TreeArrays of trees given with tree-local child indices."""
    offsets = np.cumsum([0] + [len(t["feature"]) for t in trees])
    cat = {k: np.concatenate([t[k] for t in trees]) if trees else np.zeros(0) for k in
           ("feature", "threshold", "left", "right", "value", "missing_left")}
    shift = np.concatenate([np.full(len(t["feature"]), o) for t, o in zip(trees, offsets)]) if trees else 0
    inner = cat["feature"] >= 0
    return TreeArrays(cat["feature"].astype(np.int64), cat["threshold"].astype(np.float64),
                      np.where(inner, cat["left"] + shift, -1).astype(np.int64),
                      np.where(inner, cat["right"] + shift, -1).astype(np.int64),
                      cat["value"].astype(np.float64), cat["missing_left"].astype(np.uint8),
                      offsets[:-1].astype(np.int64), float(base), float(scale))


def _cart(tree: Any) -> dict[str, np.ndarray]:
    """A fitted sklearn.tree._tree.Tree (leaves: children -1)."""
    leaf = tree.children_left < 0
    missing = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, np.uint8))
    return {"feature": np.where(leaf, -1, tree.feature), "threshold": tree.threshold,
            "left": tree.children_left, "right": tree.children_right, "value": tree.value[:, 0, 0],
            "missing_left": np.asarray(missing)}


def _hist(nodes: np.ndarray) -> dict[str, np.ndarray]:
    """The nodes of a fitted histogram-GBM TreePredictor."""
    if nodes["is_categorical"].any():
        raise CostnetError("gradient boosting with categorical splits cannot be saved as arrays")
    leaf = nodes["is_leaf"] == 1
    return {"feature": np.where(leaf, -1, nodes["feature_idx"]), "threshold": nodes["num_threshold"],
            "left": nodes["left"].astype(np.int64), "right": nodes["right"].astype(np.int64),
            "value": nodes["value"], "missing_left": nodes["missing_go_to_left"]}


def to_arrays(regressor: Any) -> LinearArrays | TreeArrays:
    """The array form of a fitted regressor of costnet.nets.selection.REGRESSORS."""
    # imported here: loading and predicting an artifact needs no scikit-learn (0.75 s to import)
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.tree import DecisionTreeRegressor

    if isinstance(regressor, LinearRegression):
        return LinearArrays(np.asarray(regressor.coef_).ravel(), float(np.ravel(regressor.intercept_)[0]))
    if isinstance(regressor, DecisionTreeRegressor):
        return _stack([_cart(regressor.tree_)], 0.0, 1.0)
    if isinstance(regressor, RandomForestRegressor):
        return _stack([_cart(t.tree_) for t in regressor.estimators_], 0.0, 1.0 / len(regressor.estimators_))
    if isinstance(regressor, HistGradientBoostingRegressor):
        if regressor.loss != "squared_error":  # other losses predict through a link function
            raise CostnetError(f"gradient boosting with loss {regressor.loss!r} cannot be saved as arrays")
        trees = [_hist(p.nodes) for (p,) in regressor._predictors]
        return _stack(trees, float(np.ravel(regressor._baseline_prediction)[0]), 1.0)
    raise CostnetError(f"no array form for {type(regressor).__name__}")


def from_arrays(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> LinearArrays | TreeArrays:
    """The model :meth:`arrays` described (``meta`` from JSON, ``arrays`` from the artifact)."""
    kind = meta.get("kind")
    if kind == "linear":
        return LinearArrays(np.asarray(arrays["coef"]), float(meta["intercept"]))
    if kind == "trees":
        return TreeArrays(*(np.asarray(arrays[k]) for k in
                            ("feature", "threshold", "left", "right", "value", "missing_left", "roots")),
                          float(meta["base"]), float(meta["scale"]))
    raise CostnetError(f"unknown regressor array kind {kind!r}")
