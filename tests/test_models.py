"""Estimators, artifacts, protocols and metrics on synthetic rows with known answers."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch import Callback
from omegaconf import DictConfig
from sklearn.model_selection import KFold
from sklearn.tree import DecisionTreeRegressor

from costnet.config import compose
from costnet.errors import CostnetError
from costnet.features.transform import FeatureSet, FeatureTransform, enrich
from costnet.nets.estimators import LinearFlops, MLPEstimator, Monitor, Paleo, SklearnEstimator
from costnet.nets.mlp import MLPConfig
from costnet.nets.predictor import Predictor, load_predictor
from costnet.protocols.folds import make_folds
from costnet.protocols import evaluate as evaluate_module
from costnet.protocols import train as train_module
from costnet.protocols.evaluate import run_evaluation
from costnet.protocols.metrics import metrics, metrics_by
from costnet.protocols.train import load_rows, run_training

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
    assert model.coef["fast"][0] == pytest.approx(1e-9) and model.coef["slow"][1] == pytest.approx(0.5)


def test_mlp_learns_and_is_deterministic() -> None:
    train, val, test = synthetic(3000, 1), synthetic(300, 2), synthetic(500, 3)
    cfg = MLPConfig(depth=2, width=64, max_epochs=40, patience=40, batch_size=256, seed=7)
    a = MLPEstimator(FEATURES, cfg).fit(train, val)
    b = MLPEstimator(FEATURES, cfg).fit(train, val)
    pa = a.predict(test)
    assert np.array_equal(pa, b.predict(test))  # seeded and deterministic on CPU
    assert metrics(test["time_median_ms"].to_numpy(), pa)["mre"] < 0.10


def test_grid_point_is_chosen_on_validation() -> None:
    """The chosen point is the one with the lowest validation MRE, here not the grid's first."""
    train, val = synthetic(1000, 1), synthetic(300, 2)
    leaves = [5, 1, 50]
    tree = SklearnEstimator(FEATURES, "tree", {"min_samples_leaf": leaves}).fit(train, val)
    scores = [metrics(val["time_median_ms"].to_numpy(),
                      SklearnEstimator(FEATURES, "tree", {"min_samples_leaf": [leaf]}).fit(train, val).predict(val))["mre"]
              for leaf in leaves]
    assert tree.chosen == {"min_samples_leaf": leaves[int(np.argmin(scores))]} != {"min_samples_leaf": leaves[0]}
    assert tree.selection_score == pytest.approx(min(scores))
    assert metrics(val["time_median_ms"].to_numpy(), tree.predict(val))["mre"] == pytest.approx(min(scores))


def test_grid_point_is_chosen_by_cross_validation() -> None:
    """With cv_folds the point with the lowest mean MRE over KFold splits of training and
    validation rows together wins, and is refitted on all of them."""
    rows = synthetic(600, 1)
    train, val = rows.iloc[:500], rows.iloc[500:]
    leaves = [20, 1, 5]
    tree = SklearnEstimator(FEATURES, "tree", {"min_samples_leaf": leaves}, seed=3, cv_folds=3).fit(train, val)
    x, log_y = FeatureTransform(FEATURES).fit(rows).transform(rows), np.log(rows["time_median_ms"].to_numpy())
    scores = [np.mean([np.mean(np.abs(np.expm1(DecisionTreeRegressor(min_samples_leaf=leaf, random_state=3)
                                               .fit(x[a], log_y[a]).predict(x[b]) - log_y[b])))
                       for a, b in KFold(3, shuffle=True, random_state=3).split(x)]) for leaf in leaves]
    best = leaves[int(np.argmin(scores))]
    assert tree.chosen == {"min_samples_leaf": best} != {"min_samples_leaf": leaves[0]}
    assert tree.selection_score == pytest.approx(min(scores))
    refit = DecisionTreeRegressor(min_samples_leaf=best, random_state=3).fit(x, log_y)
    assert np.allclose(tree.predict(rows), np.exp(refit.predict(x)))


class Epochs(Callback):
    """Records the epochs a Lightning training validates."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        self.seen.append(trainer.current_epoch)


def test_one_interface_for_every_estimator() -> None:
    """Every estimator is watched, fitted on (train, val), adapted to a new device's rows into
    a copy and asked for its validation loss alike; only the MLP trains with Lightning."""
    train, val, new = synthetic(800, 1), synthetic(200, 2), synthetic(300, 3, ppp=0.2)
    cfg = MLPConfig(depth=2, width=32, max_epochs=4, patience=4, batch_size=128)
    makers = [lambda: MLPEstimator(FEATURES, cfg), lambda: SklearnEstimator(FEATURES, "tree", {"min_samples_leaf": [5]}),
              LinearFlops, Paleo]
    for make in makers:
        est, epochs = make(), Epochs()
        est.watch(Monitor(callbacks=[epochs]))
        before = est.fit(train, val).predict(new)
        adapted = est.adapt(new.iloc[:100], train, val, {"max_epochs": 3}, "body")
        assert np.array_equal(est.predict(new), before) and not np.array_equal(adapted.predict(new), before)
        mlp = isinstance(est, MLPEstimator)
        assert epochs.seen == ([0, 1, 2, 3] if mlp else []) and (est.validation_loss is not None) == mlp
        if mlp:  # fine-tuned with the body frozen: only the output layer moved
            for a, b in zip(est.nets[0][:-1].parameters(), adapted.nets[0][:-1].parameters()):
                assert torch.equal(a, b)
            est.fit(train, val)
            assert epochs.seen == [0, 1, 2, 3]  # the monitor watched one fit only
        else:  # refitted with the rows added
            fresh = make().fit(pd.concat([train, new.iloc[:100]]), val)
            assert np.array_equal(adapted.predict(new), fresh.predict(new))


def test_artifact_round_trip_without_lightning(tmp_path: Path) -> None:
    train, test = synthetic(800, 1), synthetic(50, 3)
    est = MLPEstimator(FEATURES, MLPConfig(depth=1, width=16, max_epochs=3, patience=3)).fit(train, train)
    path = Predictor(est, {"op": "dense", "train_devices": ["fast", "slow"]}).save(tmp_path / "m.safetensors")
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
    def member(net: torch.nn.Sequential) -> np.ndarray:
        alone = copy.copy(est)
        alone.nets = [net]
        return alone.predict(test)

    single = np.exp(np.mean([np.log(member(net)) for net in est.nets], axis=0))
    assert np.allclose(est.predict(test), single, rtol=1e-5)  # the ensemble averages log times
    loaded = load_predictor(Predictor(est, {"op": "dense"}).save(tmp_path / "e.safetensors"))
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


@pytest.mark.parametrize("bad", [np.inf, np.nan, 0.0, -1.0])
def test_training_refuses_times_that_are_not_positive_and_finite(bad: float) -> None:
    train = enrich(synthetic(200))
    train.loc[train.index[7], "time_median_ms"] = bad
    with pytest.raises(CostnetError, match=r"time_median_ms must be positive and finite.*: 1 of \d+ rows"):
        LinearFlops().fit(train, train)


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity are not numbers."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON")
    return json.loads(text, parse_constant=refuse)


def tiny_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: pd.DataFrame, *overrides: str) -> DictConfig:
    """costnet-train's config for a linear_flops run on ``rows`` (served as the dataset) into tmp_path/run."""
    monkeypatch.setattr(train_module, "load_source", lambda cfg, op: rows)
    return compose("train", ["op=dense", "estimator=linear_flops", "baselines=[]", "plots=false",
                             "tracking.wandb=disabled", f"out={tmp_path / 'run'}", *overrides])


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_scores_refuse_test_rows_whose_time_is_not_positive_and_finite(bad: float) -> None:
    test = synthetic(40)
    test.loc[test.index[3], "time_median_ms"] = bad
    with pytest.raises(CostnetError, match=r"time_median_ms must be positive and finite for every row: 1 of \d+ rows"):
        metrics_by(test, np.ones(len(test)), ["device"])


def test_training_refuses_a_bad_time_before_fitting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = synthetic(100)
    rows.loc[rows.index[5], "time_median_ms"] = 0.0  # whichever fold it falls in
    fitted = []
    monkeypatch.setattr(LinearFlops, "fit", lambda self, *a: fitted.append(1))
    with pytest.raises(CostnetError, match=r"time_median_ms must be positive and finite for every row: 1 of 100 rows "
                                           r"are not \(e\.g\. 0\.0\)"):
        run_training(tiny_training(tmp_path, monkeypatch, rows))
    assert not fitted


def test_undefined_scores_are_null_in_metrics_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One test row per device: its R^2 and Spearman's rho are undefined, null in costnet-train's
    and costnet-evaluate's JSON, never NaN."""
    rows = synthetic(100)
    run_training(tiny_training(tmp_path, monkeypatch, rows, "max_rows=10"))
    scores = strict_json((tmp_path / "run" / "metrics.json").read_text())["linear_flops"]
    assert {fold: (s[fold]["n"], s[fold]["r2"], s[fold]["spearman"]) for fold, s in scores.items()} == {
        "fast": (1, None, None), "slow": (1, None, None)}

    artifact = tmp_path / "run" / "artifacts" / "fast-linear_flops.safetensors"
    monkeypatch.setattr(evaluate_module, "load_source", lambda cfg, op: rows.iloc[:1])
    run_evaluation(compose("evaluate", [f"model={artifact}", f"out={tmp_path / 'scores.json'}"]))
    one = strict_json((tmp_path / "scores.json").read_text())
    assert list(one.values())[0]["r2"] is None


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_evaluation_refuses_a_model_without_finite_predictions(bad: float) -> None:
    with pytest.raises(CostnetError, match=r"the model predicts no finite time for 1 of 40 rows \(e\.g\. (nan|inf) ms\)"):
        metrics_by(synthetic(40), np.r_[np.ones(39), bad], ["device"])


def test_an_artifact_scores_rows_of_its_own_op_only(tmp_path: Path) -> None:
    rows = synthetic(50)
    model = load_predictor(Predictor(LinearFlops().fit(rows, rows), {"op": "dense"}).save(tmp_path / "m.safetensors"))
    conv = rows.assign(op="conv2d", size=8, kernel=3, channels_in=4, channels_out=4, stride=1, padding="same",
                       groups=1).iloc[:7]
    with pytest.raises(CostnetError, match=re.escape("this model predicts dense layers only; 7 of 57 rows are of op "
                                                     "['conv2d']")):
        model.predict(pd.concat([rows, conv]))
    with pytest.raises(CostnetError, match="the rows have no op column"):
        model.predict(rows.drop(columns="op"))
    assert len(model.predict(rows)) == 50


@pytest.mark.parametrize("max_rows", [0, -5, "all"])
def test_max_rows_is_null_or_a_positive_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_rows: Any) -> None:
    """max_rows=0 used to mean no limit and max_rows=-5 to drop five rows of each device."""
    cfg = tiny_training(tmp_path, monkeypatch, synthetic(100), f"max_rows={max_rows}")
    with pytest.raises(CostnetError, match=re.escape(f"max_rows must be null or a positive integer, got {max_rows!r}")):
        load_rows(cfg)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_rerun_that_fails_leaves_the_previous_run_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_training(tiny_training(tmp_path, monkeypatch, synthetic(100)))
    before = files(tmp_path / "run")
    assert {"manifest.json", "metrics.json", "artifacts/fast-linear_flops.safetensors"} <= set(before)
    save = Predictor.save

    def save_then_fail(self: Predictor, path: Path) -> Path:
        save(self, path)
        raise OSError("disk full")

    monkeypatch.setattr(Predictor, "save", save_then_fail)
    with pytest.raises(OSError, match="disk full"):  # after the rerun's first artifact
        run_training(tiny_training(tmp_path, monkeypatch, synthetic(100, seed=1)))
    assert files(tmp_path / "run") == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging directory left behind


def test_a_rerun_replaces_a_run_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_training(tiny_training(tmp_path, monkeypatch, synthetic(100)))
    (tmp_path / "run" / "stale.txt").write_text("from an older run")
    run_training(tiny_training(tmp_path, monkeypatch, synthetic(100, seed=1)))
    assert not (tmp_path / "run" / "stale.txt").exists() and (tmp_path / "run" / "manifest.json").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a run")
    with pytest.raises(CostnetError, match=re.escape(f"{str(mine)!r} exists and holds no manifest.json of an "
                                                     "earlier run: remove it or write elsewhere")):
        run_training(tiny_training(tmp_path, monkeypatch, synthetic(100), f"out={mine}"))
    assert files(mine) == {"notes.txt": b"not a run"}


def test_bounded_head_never_predicts_below_the_roofline(tmp_path: Path) -> None:
    """The physics-bounded MLP: every prediction at least the roofline bound, also for rows far
    outside the training range, and it learns the synthetic PALEO time; it round-trips."""
    train, val, test = synthetic(1500, 1), synthetic(200, 2), synthetic(300, 3)
    cfg = MLPConfig(depth=2, width=64, max_epochs=30, patience=30, batch_size=128, head="bounded")
    est = MLPEstimator(FEATURES, cfg).fit(train, val)
    far = test.assign(batch=test["batch"] * 1000)  # far outside the training range
    far = enrich(far.drop(columns=[c for c in far if c.startswith(("flops", "bytes", "t_"))]))
    for rows in (test, far):
        assert (est.predict(rows) >= rows["t_roofline_ms"].to_numpy() * (1 - 1e-6)).all()
    assert metrics(test["time_median_ms"].to_numpy(), est.predict(test))["mre"] < 0.25
    loaded = load_predictor(Predictor(est, {"op": "dense"}).save(tmp_path / "b.safetensors"))
    assert np.allclose(loaded.predict(test), est.predict(test), rtol=1e-5)
    with pytest.raises(CostnetError, match="head must be"):
        MLPConfig(head="capped")


def test_bounded_head_with_the_wave_bound_never_predicts_below_it() -> None:
    """bound=wave: every prediction at least the wave-quantized bound, which is itself never
    below the roofline and, for these small-batch GEMMs on 80 SMs, often above it."""
    def rows(n: int, seed: int) -> pd.DataFrame:
        frame = synthetic(n, seed)
        return enrich(frame.assign(hw_sm_count=80.0).drop(columns=[c for c in frame if c.startswith("t_")]))
    train, val, test = rows(800, 1), rows(100, 2), rows(200, 3)
    assert (test["t_bound_ms"] >= test["t_roofline_ms"]).all() and (test["t_bound_ms"] > 1.5 * test["t_roofline_ms"]).any()
    cfg = MLPConfig(depth=2, width=32, max_epochs=5, patience=5, batch_size=128, head="bounded", bound="wave")
    est = MLPEstimator(FEATURES, cfg).fit(train, val)
    assert (est.predict(test) >= test["t_bound_ms"].to_numpy() * (1 - 1e-6)).all()
    with pytest.raises(CostnetError, match="bound must be one of"):
        MLPConfig(head="bounded", bound="tiles")
