"""Model artifacts: every estimator round-trips through the safetensors format, and
files that are not costnet artifacts (pickles above all) are refused without running."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import torch
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeRegressor

from costnet.errors import CostnetError
from costnet.features.analytical import analytical_features
from costnet.nets.arrays import to_arrays
from costnet.nets.estimators import LinearFlops, MLPEstimator, Paleo, Roofline, SklearnEstimator
from costnet.nets.mlp import MLPConfig
from costnet.nets.predictor import FORMAT, KEY, Predictor, load_predictor
from costnet.networks.estimate import read_predictors
from test_models import FEATURES, synthetic


class Payload:
    """Unpickling this creates ``marker``: the stand-in for any code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("regressor", [
    LinearRegression(), DecisionTreeRegressor(random_state=0, min_samples_leaf=3),
    RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=1),
    HistGradientBoostingRegressor(max_iter=60, max_leaf_nodes=31, random_state=0)])
def test_regressor_arrays_predict_what_scikit_learn_does(regressor) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6)).astype(np.float32)
    y = x[:, 0] ** 2 + np.sin(3 * x[:, 1]) + 0.1 * rng.normal(size=len(x))
    regressor.fit(x, y)
    probe = np.vstack([rng.normal(size=(3000, 6)), x[:200]]).astype(np.float32)  # thresholds are midpoints of x
    np.testing.assert_allclose(to_arrays(regressor).predict(probe), regressor.predict(probe), rtol=1e-12, atol=1e-12)


def fitted_estimators() -> list:
    train, val = synthetic(600, 1), synthetic(150, 2)
    mlp = MLPEstimator(FEATURES, MLPConfig(depth=2, width=16, max_epochs=2, patience=2, ensemble=2))
    sklearn = [SklearnEstimator(FEATURES, m, g) for m, g in
               [("tree", {"min_samples_leaf": [5]}), ("forest", {"n_estimators": [10], "n_jobs": [1]}),
                ("gbm", {"max_iter": [40]}), ("linear", {})]]
    return [e.fit(train, val) for e in (mlp, *sklearn, LinearFlops(), Paleo(), Roofline())]


def test_every_estimator_round_trips(tmp_path: Path) -> None:
    test = synthetic(300, 3)
    for i, est in enumerate(fitted_estimators()):
        path = Predictor(est, {"op": "dense", "model": est.kind}).save(tmp_path / f"{i}.safetensors")
        loaded = load_predictor(path)
        assert type(loaded.estimator) is type(est) and loaded.meta == {"op": "dense", "model": est.kind}
        np.testing.assert_allclose(loaded.estimator.predict(test), est.predict(test), rtol=1e-6)
        if isinstance(est, SklearnEstimator):
            assert loaded.estimator.chosen == est.chosen and loaded.estimator.selection_score == est.selection_score


@pytest.mark.parametrize("write", [
    lambda path, payload: torch.save({"format": 1, "estimator": payload}, path),  # a format-1 style .pt
    lambda path, payload: path.write_bytes(pickle.dumps(payload)),
])
def test_a_malicious_pickle_is_refused_without_running(tmp_path: Path, write) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    write(path, Payload(marker))
    with pytest.raises(CostnetError, match="not a costnet model artifact"):
        load_predictor(path)
    assert not marker.exists()


def test_other_versions_and_malformed_metadata_are_refused(tmp_path: Path) -> None:
    def artifact(name: str, header: str | None, arrays: dict | None = None) -> Path:
        path = tmp_path / name
        path.write_bytes(safetensors.numpy.save(arrays or {"w": np.zeros(2)}, metadata=None if header is None
                                                else {KEY: header}))
        return path

    with pytest.raises(CostnetError, match="without costnet metadata"):
        load_predictor(artifact("plain.safetensors", None))
    with pytest.raises(CostnetError, match=f"has format 4; this costnet reads format {FORMAT}"):
        load_predictor(artifact("v4.safetensors", json.dumps({"format": 4})))
    with pytest.raises(CostnetError, match="has format 2; .* changed meaning since: retrain it"):
        load_predictor(artifact("v2.safetensors", json.dumps({"format": 2})))
    with pytest.raises(CostnetError, match="unreadable costnet metadata"):
        load_predictor(artifact("garbled.safetensors", "{not json"))
    with pytest.raises(CostnetError, match="malformed"):
        load_predictor(artifact("nokind.safetensors", json.dumps({"format": FORMAT, "meta": {}, "estimator": {}})))
    good = Predictor(fitted_estimators()[0], {"op": "dense"}).save(tmp_path / "good.safetensors")
    with safetensors.safe_open(str(good), framework="numpy") as f:
        header, arrays = f.metadata()[KEY], {k: f.get_tensor(k) for k in f.keys()}
    arrays["net0.0.weight"] = arrays["net0.0.weight"][:, :3]  # weights of the wrong shape
    with pytest.raises(CostnetError, match="malformed"):
        load_predictor(artifact("shape.safetensors", header, arrays))


def test_a_manifest_cannot_point_outside_its_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "payload.bin").write_bytes(pickle.dumps(Payload(marker)))
    run = tmp_path / "run"
    run.mkdir()
    for entry in ("../elsewhere/payload.bin", str(elsewhere / "payload.bin")):
        (run / "manifest.json").write_text(json.dumps({"artifacts": [{"path": entry}]}))
        with pytest.raises(CostnetError, match="outside its run directory"):
            read_predictors([run])
    (run / "link.safetensors").symlink_to(elsewhere / "payload.bin")
    (run / "manifest.json").write_text(json.dumps({"artifacts": [{"path": "link.safetensors"}]}))
    with pytest.raises(CostnetError, match="outside its run directory"):
        read_predictors([run])
    (run / "manifest.json").write_text("[1, 2")
    with pytest.raises(CostnetError, match="not a costnet run manifest"):
        read_predictors([run])
    assert not marker.exists()


def test_peak_share_is_read_from_the_metadata_and_checked() -> None:
    model = Predictor(LinearFlops(), {"op": "dense", "peak_share": {"forward": 0.5, "train": 0.25}})
    assert (model.peak_share("forward"), model.peak_share("train")) == (0.5, 0.25)
    assert Predictor(LinearFlops(), {"op": "dense"}).peak_share("forward") == 1.0  # not recorded: the peak
    for bad in ({"forward": -1.0}, {"forward": "fast"}, {"forward": True}, [0.5], 0.5):
        with pytest.raises(CostnetError, match="peak_share .*damaged artifact"):
            Predictor(LinearFlops(), {"op": "dense", "peak_share": bad}).peak_share("forward")


class _Calls:
    """An estimator stub: 1 ms per call, and the frames it was asked about."""

    def __init__(self) -> None:
        self.seen: list = []

    def predict(self, frame):  # noqa: ANN001, ANN201
        self.seen.append(frame)
        return np.ones(len(frame))


def test_a_row_wise_call_beyond_the_training_sizes_is_predicted_in_chunks() -> None:
    """A softmax moving 10x the bytes of any training row is ten chunks of its rows; a smaller one,
    an op without row dimensions and an artifact without ``max_bytes`` are predicted whole."""
    import pandas as pd

    small = {"op": "softmax", "mode": "forward", "optimizer": "none", "batch": 2, "rows": 4, "features": 64}
    big = {**small, "batch": 8, "rows": 1000}
    frame = pd.DataFrame([small, big])
    limit = float(analytical_features(pd.DataFrame([{**big, "rows": 100}]))["bytes"].iloc[0])
    stub = _Calls()
    pred = Predictor(stub, {"op": "softmax", "max_bytes": limit}).predict(frame)
    assert pred.tolist() == [1.0, 10.0]
    chunk = stub.seen[0].iloc[1]
    assert (chunk["batch"], chunk["rows"], chunk["features"]) == (800, 1, 64)
    assert stub.seen[0].iloc[0][["batch", "rows"]].tolist() == [2, 4]
    assert Predictor(_Calls(), {"op": "softmax"}).predict(frame).tolist() == [1.0, 1.0]
    with pytest.raises(CostnetError, match="max_bytes"):
        Predictor(_Calls(), {"op": "softmax", "max_bytes": -1}).predict(frame)
    dense = pd.DataFrame([{"op": "dense", "mode": "forward", "optimizer": "none", "batch": 10**6, "in_features": 64, "out_features": 64,
                           "bias": True, "activation": "none"}])
    assert Predictor(_Calls(), {"op": "dense", "max_bytes": 1.0}).predict(dense).tolist() == [1.0]


def test_rows_enriched_by_the_caller_are_used_as_they_are_and_must_be_the_same_rows() -> None:
    """``predict(frame, enrich(frame))`` (a whole network's rows, featurized once for its table
    and its model) predicts what ``predict(frame)`` does; enriched rows of another frame are refused."""
    from costnet.features.transform import enrich

    frame = synthetic(20, 4).drop(columns=["time_median_ms"])
    predictor = Predictor(Roofline().fit(synthetic(50, 1), synthetic(20, 2)), {"op": "dense"})
    np.testing.assert_array_equal(predictor.predict(frame, enrich(frame)), predictor.predict(frame))
    stub = _Calls()
    Predictor(stub, {"op": "dense"}).predict(frame, enrich(frame).assign(marker=1.0))
    assert "marker" in stub.seen[0]  # the caller's rows, not enriched again
    with pytest.raises(CostnetError, match="not the rows of the frame"):
        predictor.predict(frame, enrich(frame.iloc[::-1]))
