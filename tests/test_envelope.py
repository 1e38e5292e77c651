"""The device envelope: a bounded MLP sees a device beyond its training devices clipped into
their range, while its bound keeps the device's own specs (costnet.features.envelope)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.numpy
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.features.envelope import DeviceEnvelope
from costnet.features.transform import FeatureSet, enrich
from costnet.nets.estimators import MLPEstimator
from costnet.nets.mlp import MLPConfig
from costnet.nets.predictor import KEY, Predictor, load_predictor
from costnet.networks.estimate import layer_times
from costnet.networks.extract import extract_layers
from tests.test_models import synthetic

# The device enters the network through its peak and the compute-time estimate, as in features=gpu.
FEATURES = FeatureSet("t", ("batch", "in_features", "out_features", "flops", "bytes", "hw_peak_gflops",
                            "t_compute_ms"), ("mode",))
CFG = MLPConfig(depth=2, width=32, max_epochs=5, patience=5, batch_size=128, head="bounded", device_envelope=True)


def on_device(frame: pd.DataFrame, peak: float, bandwidth: float) -> pd.DataFrame:
    """``frame``'s layers on a device of ``peak`` GFLOP/s and ``bandwidth`` GB/s, features recomputed."""
    moved = frame.assign(hw_peak_gflops=peak, hw_bandwidth_gbs=bandwidth)
    return enrich(moved.drop(columns=[c for c in moved if c.startswith("t_")]))


@pytest.fixture(scope="module")
def trained() -> MLPEstimator:
    """Trained on synthetic's two devices: peaks 250 and 1000 GFLOP/s, bandwidths 25 and 100 GB/s."""
    return MLPEstimator(FEATURES, CFG).fit(synthetic(800, 1), synthetic(100, 2))


def test_a_device_beyond_the_training_range_is_seen_clipped_with_its_own_bound(trained: MLPEstimator) -> None:
    test = synthetic(200, 3)
    assert trained.envelope is not None and trained.envelope.clip(test) is test  # inside: untouched
    assert trained.envelope.bounds["hw_peak_gflops"] == (250.0, 1000.0)
    edge, faster = on_device(test, 1000.0, 100.0), on_device(test, 4000.0, 400.0)
    x_edge, x_faster = trained._x(edge), trained._x(faster)
    # the network reads the faster device as the fastest it saw...
    np.testing.assert_array_equal(x_faster[:, :-1], x_edge[:, :-1])
    # ...and scales by the faster device's own bound, a quarter of the edge's for these rows
    np.testing.assert_allclose(x_faster[:, -1], np.log(faster["t_roofline_ms"].to_numpy()), rtol=1e-6)
    predicted = trained.predict(faster)
    assert (predicted >= faster["t_roofline_ms"].to_numpy() * (1 - 1e-6)).all()
    assert (predicted < trained.predict(edge)).all()
    predictor = Predictor(trained, {"op": "dense"})
    assert predictor.beyond(faster) == {"hw_peak_gflops": (4000.0, 250.0, 1000.0),
                                        "hw_bandwidth_gbs": (400.0, 25.0, 100.0)}
    assert predictor.beyond(edge) == {}


def test_the_envelope_round_trips_and_widens_when_adapted(trained: MLPEstimator, tmp_path: Path) -> None:
    faster = on_device(synthetic(100, 4), 4000.0, 400.0)
    loaded = load_predictor(Predictor(trained, {"op": "dense"}).save(tmp_path / "m.safetensors"))
    assert loaded.estimator.envelope.bounds == trained.envelope.bounds
    np.testing.assert_allclose(loaded.predict(faster), trained.predict(faster), rtol=1e-5)
    rows = faster.assign(time_median_ms=faster["t_roofline_ms"] * 3)
    adapted = trained.adapt(rows, synthetic(10, 5), synthetic(10, 6), finetune={"max_epochs": 1, "patience": 1})
    assert adapted.envelope.bounds["hw_peak_gflops"] == (250.0, 4000.0)  # its rows are training rows now
    assert adapted.envelope.clip(faster) is faster
    assert trained.envelope.bounds["hw_peak_gflops"] == (250.0, 1000.0)  # the original is left as it was


def test_the_envelope_is_fitted_batch_by_batch_and_skips_unknown_values() -> None:
    rows = pd.DataFrame({"hw_peak_gflops": [5.0, 9.0, 7.0], "hw_sm_count": [np.nan, 40.0, 80.0]})
    whole = DeviceEnvelope().add(rows)
    batched = DeviceEnvelope().add(rows.iloc[:1]).add(rows.iloc[1:])
    assert whole.bounds == batched.bounds == {"hw_peak_gflops": (5.0, 9.0), "hw_sm_count": (40.0, 80.0)}
    assert DeviceEnvelope.from_state(whole.state()).bounds == whole.bounds


def test_device_envelope_needs_the_bounded_head() -> None:
    with pytest.raises(CostnetError, match="device_envelope needs head=bounded"):
        MLPConfig(device_envelope=True)


@pytest.mark.parametrize("envelope", [{"hw_peak_gflops": [1000.0, 250.0]}, {"hw_peak_gflops": [1.0]},
                                      {"hw_peak_gflops": ["a", 2.0]}, {"batch": [1.0, 2.0]}, [1.0, 2.0], None])
def test_a_damaged_envelope_is_one_clear_error(trained: MLPEstimator, tmp_path: Path, envelope: object) -> None:
    path = Predictor(trained, {"op": "dense"}).save(tmp_path / "m.safetensors")
    with safetensors.safe_open(str(path), framework="numpy") as f:
        header, arrays = json.loads(f.metadata()[KEY]), {k: f.get_tensor(k) for k in f.keys()}
    if envelope is None:
        del header["estimator"]["envelope"]
    else:
        header["estimator"]["envelope"] = envelope
    path.write_bytes(safetensors.numpy.save(arrays, metadata={KEY: json.dumps(header)}))
    with pytest.raises(CostnetError, match="malformed.*envelope"):
        load_predictor(path)


def test_a_network_layer_on_a_device_beyond_the_range_says_so(trained: MLPEstimator) -> None:
    layers = extract_layers(nn.Sequential(nn.Linear(512, 256)), torch.randn(16, 512))
    models = {"dense": Predictor(trained, {"op": "dense", "model": "bounded"})}
    inside = layer_times(layers, models, {"device": "mid", "hw_peak_gflops": 500.0, "hw_bandwidth_gbs": 50.0})
    beyond = layer_times(layers, models, {"device": "big", "hw_peak_gflops": 4000.0, "hw_bandwidth_gbs": 50.0})
    dense = layers["op"] == "dense"
    assert inside.loc[dense, "source"].eq("model:bounded").all()
    assert beyond.loc[dense, "source"].str.endswith("(device beyond the trained range: seen clipped)").all()
