"""Datasets streamed from Parquet: the hashed split, the streamed transform fit, the iterable's
epochs (with DataLoader workers and DDP shares) and a short training from a stream."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from costnet.data.schema import COMMON
from costnet.data.store import DatasetStore
from costnet.data.stream import Scan, Split
from costnet.errors import CostnetError
from costnet.features.envelope import DeviceEnvelope
from costnet.features.transform import FeatureSet, FeatureTransform, Moments, enrich
from costnet.nets.estimators import MLPEstimator, Monitor
from costnet.nets.mlp import MLPConfig
from costnet.nets.predictor import Predictor, load_predictor
from costnet.nets.streaming import TEST, TRAIN, VAL, RowStream, StreamDataModule, StreamDataset, fit_scalers, fit_stream
from costnet.ops import get_op
from costnet.sources import load_source

FEATURES = FeatureSet("stream", ("batch", "in_features", "out_features", "kernel", "flops", "bytes", "hw_peak_gflops",
                                 "t_roofline_ms"), ("op", "mode", "optimizer", "bias", "hw_interconnect"))


def _row(i: int, rng: np.random.Generator, key: str, op: str) -> dict:
    row = {name: None for name in COMMON}
    train = bool(rng.random() < 0.5)
    row.update(row_id=f"{key}-{i}", run_key=key, index=i, seed=0, space=op, op=op, mode="train" if train else "forward",
               optimizer=str(rng.choice(["adam", "sgd"])) if train else "none", dtype="float32", input_grad=False,
               device="cpu", hardware_id="cpu-a" if i % 3 else "cpu-b", threads=2, status="ok", est_bytes=1024,
               n_runs=5, n_inner=3, converged=True, disturbed=bool(rng.random() < 0.05),
               timestamp=datetime(2026, 1, 2, tzinfo=timezone.utc), torch_version="2.13.0")
    if rng.random() < 0.03:
        row.update(status="error", error="RuntimeError: boom")
    if op == "dense":
        b, fi, fo = (int(v) for v in rng.integers(1, [64, 1024, 1024]))
        row.update(batch=b, in_features=fi, out_features=fo, bias=bool(rng.random() < 0.5), activation="relu")
        work = b * fi * fo
    else:
        b, size, cin, cout, k = (int(v) for v in rng.integers(1, [8, 32, 16, 16, 4]))
        row.update(batch=b, size=size, channels_in=cin, channels_out=cout, kernel=k, stride=1, padding="same",
                   bias=False, activation="none", groups=1)
        work = b * size * size * cin * cout * k * k
    if row["status"] == "ok":
        row["time_median_ms"] = (1e-5 * work * (3 if train else 1) + 0.02) * float(np.exp(rng.normal(0, 0.03)))
    return row


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1,200 dense rows in 4 shards (two runs, two machines), with error and disturbed
    rows and a shard of conv2d rows (config columns the dense rows lack)."""
    root = tmp_path_factory.mktemp("stream") / "data"
    root.mkdir()
    rng = np.random.default_rng(7)
    for key, start in (("aaaaaaaaaaaa", 0), ("bbbbbbbbbbbb", 1000)):
        store = DatasetStore(root, "dense", key)
        for shard in range(2):
            rows = [_row(start + shard * 300 + j, rng, key, "dense") for j in range(300)]
            store.append(rows, get_op("dense").columns)
    DatasetStore(root, "conv2d", "cccccccccccc").append([_row(j, rng, "cccccccccccc", "conv2d") for j in range(100)],
                                                        get_op("conv2d").columns)
    store.write_json("_hardware/cpu-a.json", {"hardware_id": "cpu-a", "kind": "cpu", "threads": 2,
                                              "measured_peak_gflops": 80.0, "measured_bandwidth_gbs": 15.0})
    store.write_json("_hardware/cpu-b.json", {"hardware_id": "cpu-b", "kind": "cpu", "threads": 2,
                                              "measured_peak_gflops": 120.0, "measured_bandwidth_gbs": 25.0})
    return root


def stream(root: Path, batch_rows: int = 128, seed: int = 0) -> RowStream:
    return RowStream(Scan((root,), "dense", batch_rows=batch_rows), Split((0.7, 0.15, 0.15), seed),
                     FEATURES.numeric + FEATURES.categorical + ("row_id", "index"))


def in_memory(root: Path) -> pd.DataFrame:
    """The rows costnet-train would load (dataset=local), enriched."""
    return enrich(load_source({"name": "local", "path": str(root), "disturbed": "drop"}, "dense"))


def parts(s: RowStream, shard: int = 0, shards: int = 1, order: int | None = None) -> dict[str, int]:
    """row_id -> part over one pass."""
    out: dict[str, int] = {}
    for _, batch, p in s.batches(shard, shards, order):
        for row_id, part in zip(batch.column("row_id").to_pylist(), p):
            assert row_id not in out
            out[row_id] = int(part)
    return out


def test_split_is_deterministic_disjoint_and_covers_every_row(data: Path) -> None:
    every = set(in_memory(data)["row_id"])
    first = parts(stream(data))
    assert set(first) == every  # ok, undisturbed dense rows: each once, in exactly one part
    shares = np.bincount(list(first.values()), minlength=3) / len(first)
    assert np.allclose(shares, [0.7, 0.15, 0.15], atol=0.06)
    # another batch size, a shuffled file order, three readers: the same split
    readers = [parts(stream(data, batch_rows=50), shard, 3, order=5) for shard in range(3)]
    assert sum(len(r) for r in readers) == len(first)
    assert {k: v for r in readers for k, v in r.items()} == first
    other = parts(stream(data, seed=1))
    assert set(other) == every and other != first  # the seed draws another split


def test_streamed_transform_fit_equals_the_in_memory_fit(data: Path) -> None:
    s = stream(data)
    est = MLPEstimator(FEATURES, MLPConfig())
    counts = fit_scalers(est, s)
    train_ids = {k for k, v in parts(s).items() if v == TRAIN}
    rows = in_memory(data)
    train = rows[rows["row_id"].isin(train_ids)]
    assert counts.total(TRAIN) == len(train) and counts.total(VAL) + counts.total(TEST) == len(rows) - len(train)
    memory = FeatureTransform(FEATURES).fit(train)
    assert est.transform.categories == memory.categories
    assert memory.categories["hw_interconnect"] == ["host"] and memory.categories["op"] == ["dense"]
    for name in FEATURES.numeric:
        assert est.transform.mean[name] == pytest.approx(memory.mean[name], rel=1e-9, abs=1e-12), name
        assert est.transform.std[name] == pytest.approx(memory.std[name], rel=1e-9), name
    assert memory.std["kernel"] == 1.0 and memory.mean["kernel"] == 0.0  # constant: exact, left unscaled
    logy = np.log(train["time_median_ms"].to_numpy())
    assert est.y_mean == pytest.approx(logy.mean(), rel=1e-9) and est.y_std == pytest.approx(logy.std(), rel=1e-9)
    # the in-memory fit is the pandas formula it replaced
    values = pd.DataFrame(memory._numeric(train), columns=list(FEATURES.numeric))
    assert np.allclose([memory.mean[c] for c in FEATURES.numeric], values.mean(), rtol=1e-12, atol=1e-12)


def test_streamed_device_envelope_equals_the_in_memory_one(data: Path) -> None:
    s = stream(data)
    est = MLPEstimator(FEATURES, MLPConfig(head="bounded", device_envelope=True))
    fit_scalers(est, s)
    train_ids = {k for k, v in parts(s).items() if v == TRAIN}
    rows = in_memory(data)
    memory = DeviceEnvelope().add(rows[rows["row_id"].isin(train_ids)])
    assert est.envelope is not None and est.envelope.bounds == memory.bounds
    assert memory.bounds["hw_peak_gflops"] == (80.0, 120.0)  # both machines' measured peaks


def test_moments_merge_and_constant_columns() -> None:
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(1e6, 3, 1000), np.full(1000, 0.1)])
    whole = Moments(2).add(values)
    parts_ = [Moments(2).add(values[a:b]) for a, b in ((0, 1), (1, 400), (400, 1000))]
    merged = parts_[0].merge(parts_[1]).merge(parts_[2])
    assert np.allclose(merged.means, values.mean(0), rtol=1e-15) and np.allclose(merged.stds, values.std(0), rtol=1e-9)
    assert np.allclose(whole.stds, values.std(0), rtol=1e-9)
    assert merged.means[1] == 0.1 and merged.stds[1] == 0.0 and whole.means[1] == 0.1


class Rows:
    """A stand-in model whose inputs are each row's ``index``, to count the rows an epoch yields."""

    def _xy(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return frame[["index"]].to_numpy(np.float32), frame["time_median_ms"].to_numpy(float)


def _epoch(loader) -> tuple[list[int], list[int]]:
    seen, sizes = [], []
    for x, y in loader:
        assert x.dtype == torch.float32 and y.dtype == torch.float32 and len(x) == len(y)
        seen += x[:, 0].long().tolist()
        sizes.append(len(y))
    return seen, sizes


@pytest.mark.parametrize("workers", [0, 2])
def test_every_training_row_once_per_epoch(data: Path, workers: int) -> None:
    s = stream(data, batch_rows=64)
    counts = fit_scalers(MLPEstimator(FEATURES, MLPConfig()), s)
    train_rows = sorted(int(f) for frame in s.frames(TRAIN) for f in frame["index"])
    module = StreamDataModule(s, Rows(), counts, batch_size=32, seed=0, workers=workers, buffer_rows=100)
    loader = module.train_dataloader()
    epochs = [_epoch(loader) for _ in range(2)]
    for seen, sizes in epochs:
        assert sorted(seen) == train_rows  # each training row exactly once
        assert len(sizes) == len(loader) and sum(s_ < 32 for s_ in sizes) <= max(1, workers)  # one last batch per reader
    assert epochs[0][0] != epochs[1][0]  # reshuffled
    val, _ = _epoch(module.val_dataloader())
    assert len(val) == counts.total(VAL) and not set(val) & set(train_rows)


def test_ddp_shares_are_disjoint_and_equal_in_steps(data: Path) -> None:
    s = stream(data, batch_rows=40)
    counts = fit_scalers(MLPEstimator(FEATURES, MLPConfig()), s)
    shares = [StreamDataset(s, TRAIN, Rows(), counts, 33, shuffle=True, seed=0, rank=r, world=3) for r in range(3)]
    epochs = [_epoch(share) for share in shares]
    assert len({len(sizes) for _, sizes in epochs}) == 1  # the same number of steps on every process
    assert [len(sizes) for _, sizes in epochs] == [len(share) for share in shares]
    assert {max(sizes) for _, sizes in epochs} == {11}  # each takes a third of the global batch of 33
    rows = [set(seen) for seen, _ in epochs]
    assert not rows[0] & rows[1] and not rows[1] & rows[2] and not rows[0] & rows[2]
    assert sum(len(r) for r in rows) > 0.9 * counts.total(TRAIN)  # at most a few batches left out


def test_training_from_a_stream_learns_and_saves_an_ordinary_artifact(data: Path, tmp_path: Path) -> None:
    losses: list[float] = []

    class Record(__import__("lightning.pytorch").pytorch.Callback):
        def on_validation_end(self, trainer, module) -> None:
            losses.append(float(trainer.callback_metrics["val_loss"]))

    s = stream(data, batch_rows=256)
    est = MLPEstimator(FEATURES, MLPConfig(depth=2, width=32, batch_size=64, max_epochs=8, patience=8, lr=5e-3,
                                           loss="mse", schedule="none"))
    est.watch(Monitor(callbacks=[Record()]))
    counts = fit_stream(est, s, buffer_rows=200)
    assert len(losses) == 8 and min(losses) < 0.5 * losses[0]  # validation loss drops
    assert est.history["best_val_loss"] == pytest.approx(min(losses))
    Predictor(est, {"op": "dense", "train_modes": sorted(counts.modes)}).save(tmp_path / "m.safetensors")
    loaded = load_predictor(tmp_path / "m.safetensors")
    test = pd.concat(list(s.frames(TEST)), ignore_index=True)
    raw = test[[c for c in test if c in COMMON or c in get_op("dense").columns or c.startswith("hw_")]]
    pred = loaded.predict(raw)
    assert np.allclose(pred, est.predict(test)) and np.all(pred > 0)
    assert np.median(np.abs(pred / test["time_median_ms"] - 1)) < 0.5


def test_a_stream_without_validation_rows_is_refused(data: Path) -> None:
    s = RowStream(Scan((data,), "dense"), Split((1.0, 0.0, 0.0)), FEATURES.numeric + FEATURES.categorical)
    with pytest.raises(CostnetError, match="validation rows"):
        fit_scalers(MLPEstimator(FEATURES, MLPConfig()), s)
    assert Counter(Scan((data,), None).values("op")) == Counter(["conv2d", "dense"])


def test_costnet_train_stream_writes_a_run_costnet_evaluate_reads(data: Path, tmp_path: Path) -> None:
    from tests.conftest import run_main

    run = tmp_path / "run"
    code, err = run_main("train", "dataset=local", f"dataset.path={data}", "op=dense", "stream=true",
                         "estimator.max_epochs=2", "estimator.width=16", "estimator.depth=1", "tracking.wandb=disabled",
                         "streaming.batch_rows=200", f"out={run}")
    assert code == 0, err
    assert "baselines ['gbm'] not fitted" in err
    manifest = json.loads((run / "manifest.json").read_text())["artifacts"]
    assert [a["fold"] for a in manifest] == ["cpu-a", "cpu-b"]  # per_device: one model per machine
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["device"]) == ["cpu-a", "cpu-b"] and (metrics["n"] > 0).all()
    predictions = pd.read_parquet(run / "predictions.parquet")
    assert len(predictions) == metrics["n"].sum() and (predictions["predicted_ms"] > 0).all()
    meta = load_predictor(run / manifest[0]["path"]).meta
    assert meta["train_devices"] == ["cpu-a"] and meta["stream"]["train_rows"] > 0
    code, err = run_main("evaluate", f"model={run / manifest[0]['path']}", "dataset=local", f"dataset.path={data}",
                         "devices=[cpu-a]", f"out={tmp_path / 'scores.json'}")
    assert code == 0, err
    assert json.loads((tmp_path / "scores.json").read_text())["cpu-a"]["n"] > 0
