"""Estimators, artifacts, protocols and metrics on synthetic rows with known answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costnet.features.transform import FeatureSet, enrich
from costnet.nets.estimators import LinearFlops, MLPEstimator, Paleo, SklearnEstimator
from costnet.nets.mlp import MLPConfig
from costnet.nets.predictor import Predictor, load_predictor
from costnet.protocols.folds import make_folds
from costnet.protocols.metrics import metrics

FEATURES = FeatureSet("t", ("batch", "in_features", "out_features", "flops", "bytes"), ("device", "mode"))
DEVICES = {"fast": (1000.0, 100.0), "slow": (250.0, 25.0)}  # peak GFLOP/s, bandwidth GB/s


def synthetic(n: int, seed: int = 0, ppp: float = 0.5) -> pd.DataFrame:
    """Dense rows whose time is exactly PALEO's with a known PPP, plus 2 % noise."""
    rng = np.random.default_rng(seed)
    device = rng.choice(list(DEVICES), n)
    frame = pd.DataFrame({
        "op": "dense", "device": device, "batch": rng.integers(1, 64, n),
        "in_features": rng.integers(1, 4096, n), "out_features": rng.integers(1, 4096, n),
        "bias": True, "activation": "none", "mode": rng.choice(["forward", "train"], n),
        "dtype": "float32", "input_grad": False,
        "hw_peak_gflops": [DEVICES[d][0] for d in device], "hw_bandwidth_gbs": [DEVICES[d][1] for d in device],
    })
    frame["optimizer"] = np.where(frame["mode"] == "train", "sgd", "none")
    frame = enrich(frame)
    t = frame["t_compute_ms"] / ppp + frame["t_memory_ms"]
    frame["time_median_ms"] = t * np.exp(rng.normal(0, 0.02, n))
    return frame


def test_metrics_on_hand_computed_values() -> None:
    m = metrics(np.array([1.0, 2.0, 4.0]), np.array([1.05, 1.8, 4.5]))
    assert m["rmse_ms"] == pytest.approx(np.sqrt((0.0025 + 0.04 + 0.25) / 3))
    assert m["mae_ms"] == pytest.approx(0.75 / 3) and m["mre"] == pytest.approx((0.05 + 0.1 + 0.125) / 3)
    assert m["within_10pct"] == pytest.approx(2 / 3) and m["spearman"] == pytest.approx(1.0)


def test_paleo_recovers_platform_percent_of_peak() -> None:
    frame = synthetic(2000, ppp=0.4)
    paleo = Paleo().fit(frame, frame.iloc[:0])
    assert paleo.ppp()["fast"] == pytest.approx(0.4, rel=0.05) and paleo.ppp()["slow"] == pytest.approx(0.4, rel=0.05)
    assert metrics(frame["time_median_ms"].to_numpy(), paleo.predict(frame))["mre"] < 0.03


def test_linear_flops_is_one_line_per_device() -> None:
    frame = synthetic(500)
    frame["time_median_ms"] = np.where(frame["device"] == "fast", 1e-9, 4e-9) * frame["flops"] + 0.5
    model = LinearFlops().fit(frame, frame.iloc[:0])
    assert model.lines["fast"][0] == pytest.approx(1e-9) and model.lines["slow"][1] == pytest.approx(0.5)


def test_mlp_learns_and_is_deterministic() -> None:
    train, val, test = synthetic(3000, 1), synthetic(300, 2), synthetic(500, 3)
    cfg = MLPConfig(depth=2, width=64, max_epochs=40, patience=40, batch_size=256, seed=7)
    a = MLPEstimator(FEATURES, cfg).fit(train, val)
    b = MLPEstimator(FEATURES, cfg).fit(train, val)
    pa = a.predict(test)
    assert np.array_equal(pa, b.predict(test))  # seeded and deterministic on CPU
    assert metrics(test["time_median_ms"].to_numpy(), pa)["mre"] < 0.10


def test_gbm_grid_is_chosen_on_validation(tmp_path: Path) -> None:
    train, val = synthetic(1500, 1), synthetic(300, 2)
    gbm = SklearnEstimator(FEATURES, "gbm", {"learning_rate": [0.1], "max_leaf_nodes": [7, 31]}).fit(train, val)
    assert gbm.chosen["max_leaf_nodes"] in (7, 31)
    assert metrics(val["time_median_ms"].to_numpy(), gbm.predict(val))["mre"] < 0.1


def test_artifact_round_trip_without_lightning(tmp_path: Path) -> None:
    train, test = synthetic(800, 1), synthetic(50, 3)
    est = MLPEstimator(FEATURES, MLPConfig(depth=1, width=16, max_epochs=3, patience=3)).fit(train, train)
    path = Predictor(est, {"op": "dense", "train_devices": ["fast", "slow"]}).save(tmp_path / "m.pt")
    test.drop(columns=[c for c in test if c.startswith(("flops", "bytes", "t_"))]).to_parquet(tmp_path / "rows.parquet")
    expected = est.predict(test)
    script = (
        "import sys; sys.modules['lightning'] = None; sys.modules['lightning.pytorch'] = None\n"
        "import numpy as np, pandas as pd, costnet\n"
        f"p = costnet.load_predictor({str(path)!r})\n"
        f"np.save({str(tmp_path / 'pred.npy')!r}, p.predict(pd.read_parquet({str(tmp_path / 'rows.parquet')!r})))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert np.allclose(np.load(tmp_path / "pred.npy"), expected, rtol=1e-5)
    assert load_predictor(path).meta["train_devices"] == ["fast", "slow"]


def test_protocol_folds_never_leak() -> None:
    frame = synthetic(1000)
    per_device = make_folds(frame, {"name": "per_device", "split": [0.8, 0.1, 0.1]}, 0)
    assert [f.name for f in per_device] == ["fast", "slow"]
    for fold in per_device:
        parts = [set(fold.train.index), set(fold.val.index), set(fold.test.index)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert set(fold.train["device"]) == {fold.name}
        assert len(fold.train) == pytest.approx(0.8 * (frame["device"] == fold.name).sum(), abs=1)
    for fold in make_folds(frame, {"name": "lodo", "val_fraction": 0.1}, 0):
        held = fold.test_devices[0]
        assert held not in set(fold.train["device"]) | set(fold.val["device"])
        assert len(fold.test) == (frame["device"] == held).sum()


def test_ensemble_with_relative_loss_round_trips(tmp_path: Path) -> None:
    train, test = synthetic(1500, 1), synthetic(300, 3)
    cfg = MLPConfig(depth=2, width=64, max_epochs=30, patience=30, batch_size=128, loss="relative", ensemble=2)
    est = MLPEstimator(FEATURES, cfg).fit(train, synthetic(200, 2))
    assert len(est.nets) == 2
    single = np.exp(np.mean([np.log(MLPEstimator.from_state({**est.state(), "weights": [w]}).predict(test))
                             for w in est.state()["weights"]], axis=0))
    assert np.allclose(est.predict(test), single, rtol=1e-5)  # the ensemble averages log times
    loaded = load_predictor(Predictor(est, {"op": "dense"}).save(tmp_path / "e.pt"))
    assert np.allclose(loaded.predict(test), est.predict(enrich(test)), rtol=1e-5)
    assert metrics(test["time_median_ms"].to_numpy(), est.predict(test))["mre"] < 0.25


def test_roofline_relative_target_carries_to_an_unseen_device() -> None:
    """Trained on one device only, the roofline-relative MLP still scales to another's peaks."""
    rows = synthetic(4000, 1)
    fast, slow = rows[rows["device"] == "fast"], rows[rows["device"] == "slow"]
    features = FeatureSet("t", ("batch", "in_features", "out_features", "flops", "bytes"), ("mode",))
    errors = {}
    for relative_to in ("none", "roofline"):
        cfg = MLPConfig(depth=2, width=64, max_epochs=30, patience=30, batch_size=128, relative_to=relative_to)
        est = MLPEstimator(features, cfg).fit(fast, fast.iloc[:200])
        errors[relative_to] = metrics(slow["time_median_ms"].to_numpy(), est.predict(slow))["mre"]
    assert errors["roofline"] < 0.15 < errors["none"]
