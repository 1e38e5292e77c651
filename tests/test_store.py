"""Dataset storage: schema round trip, atomic shards, clear errors on damage."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from costnet.data import load_dataset
from costnet.data.schema import COMMON, CONFIG
from costnet.data.store import DatasetStore, ensure_writable, read_table
from costnet.errors import CostnetError
from costnet.ops import get_op
from tests.conftest import run_main


def row(index: int, op: str = "dense", status: str = "ok") -> dict:
    base = {name: None for name in COMMON}
    base.update(row_id=f"abcdef012345-{index}", run_key="abcdef012345", index=index, seed=0, space=op, op=op,
                mode="train", optimizer="adam", dtype="float32", input_grad=False, device="cpu",
                hardware_id="cpu-x", threads=2, status=status, est_bytes=1024, time_median_ms=1.5 + index,
                n_runs=5, n_inner=3, converged=True, timestamp=datetime(2026, 1, 2, tzinfo=timezone.utc),
                torch_version="2.13.0")
    if status != "ok":
        base.update(error="RuntimeError: boom", time_median_ms=None)
    if op == "dense":
        base.update(batch=4, in_features=7, out_features=9, bias=True, activation="relu")
    else:
        base.update(batch=2, size=8, channels_in=3, channels_out=5, kernel=3, stride=1, padding="same",
                    bias=False, activation="none", groups=1)
    return base


def test_round_trip_keeps_values_and_types(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, "dense", "abcdef012345")
    rows = [row(0), row(1), row(2, status="error")]
    store.append(rows, get_op("dense").columns)
    frame = load_dataset(tmp_path, include_failed=True)
    assert list(frame["index"]) == [0, 1, 2]
    assert frame.loc[0, "time_median_ms"] == 1.5 and frame.loc[1, "in_features"] == 7
    assert frame["bias"].dtype == bool and frame["timestamp"].dt.tz is not None
    assert frame.loc[2, "error"] == "RuntimeError: boom" and pd.isna(frame.loc[2, "time_median_ms"])
    assert len(load_dataset(tmp_path)) == 2  # failures dropped by default


def test_ops_with_different_columns_unify(tmp_path: Path) -> None:
    DatasetStore(tmp_path, "dense", "abcdef012345").append([row(0)], get_op("dense").columns)
    DatasetStore(tmp_path, "conv2d", "0123456789ab").append([row(0, "conv2d")], get_op("conv2d").columns)
    frame = read_table(tmp_path)
    assert set(frame["op"]) == {"dense", "conv2d"}
    assert list(frame.columns[: len(COMMON)]) == list(COMMON)
    dense = frame[frame["op"] == "dense"].iloc[0]
    assert pd.isna(dense["kernel"]) and dense["in_features"] == 7
    assert set(frame.columns) <= set(COMMON) | set(CONFIG)


def test_resume_bookkeeping_and_sequence(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, "dense", "abcdef012345")
    first = store.append([row(0), row(1)], get_op("dense").columns)
    second = store.append([row(5)], get_op("dense").columns)
    assert first.name.endswith("-00000.parquet") and second.name.endswith("-00001.parquet")
    assert store.finished() == {0, 1, 5}
    assert DatasetStore(tmp_path, "dense", "ffffffffffff").finished() == set()


def test_stray_temporary_files_are_not_data(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, "dense", "abcdef012345")
    store.append([row(0)], get_op("dense").columns)
    (tmp_path / ".dense-abcdef012345-00001.parquet.x1.tmp").write_bytes(b"half a shard")
    assert len(load_dataset(tmp_path)) == 1
    with store.locked():  # a new run of the same key clears its own leftovers
        pass
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_shard_is_named_and_left_alone(tmp_path: Path) -> None:
    DatasetStore(tmp_path, "dense", "abcdef012345").append([row(0)], get_op("dense").columns)
    bad = tmp_path / "dense-abcdef012345-00001.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(CostnetError, match=r"corrupt shard .*dense-abcdef012345-00001\.parquet"):
        load_dataset(tmp_path)
    assert bad.read_bytes() == b"not parquet at all"


def test_second_collector_on_the_same_run_is_refused(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, "dense", "abcdef012345")
    with store.locked():
        with pytest.raises(CostnetError, match="another process"):
            with DatasetStore(tmp_path, "dense", "abcdef012345").locked():
                pass


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_unwritable_directory_is_named() -> None:
    with pytest.raises(CostnetError, match="'/proc/costnet-test/out' is not writable"):
        ensure_writable(Path("/proc/costnet-test/out"))  # not writable even for root


def test_file_in_the_way_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CostnetError, match=r"output directory .*file/out.* is not writable"):
        ensure_writable(blocker / "out")


def test_missing_dataset_is_named(tmp_path: Path) -> None:
    with pytest.raises(CostnetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


def _dataset(root: Path, rows: list[dict], key: str = "abcdef012345", hardware: str = "cpu-x") -> Path:
    root.mkdir(parents=True)
    store = DatasetStore(root, "dense", key)
    store.append([{**r, "run_key": key, "row_id": f"{key}-{r['index']}"} for r in rows], get_op("dense").columns)
    store.write_json(f"_hardware/{hardware}.json", {"hardware_id": hardware, "kind": "cpu"})
    return root


def test_merge_drops_repeated_measurements_keeps_records_and_leaves_inputs_alone(tmp_path: Path) -> None:
    from costnet.data.merge import merge

    a = _dataset(tmp_path / "a", [row(0), {**row(1), "in_features": 8}])
    b = _dataset(tmp_path / "b", [{**row(0), "time_median_ms": 9.0}, {**row(2), "in_features": 11}],
                 key="0123456789ab", hardware="cpu-y")
    before = {p: p.read_bytes() for p in sorted([*a.rglob("*"), *b.rglob("*")]) if p.is_file()}
    summary = merge([a, b], tmp_path / "out")
    assert (summary.rows_in, summary.duplicates_dropped, summary.rows_out) == (4, 1, 3)
    merged = read_table(tmp_path / "out")
    assert len(merged) == 3 and merged.loc[merged["in_features"] == 7, "time_median_ms"].tolist() == [1.5]  # a's
    assert sorted(p.name for p in (tmp_path / "out" / "_hardware").iterdir()) == ["cpu-x.json", "cpu-y.json"]
    record = json.loads((tmp_path / "out" / "_merge.json").read_text())
    assert [s["rows"] for s in record["sources"]] == [2, 2] and [s["kept"] for s in record["sources"]] == [2, 1]
    assert {p: p.read_bytes() for p in before} == before  # inputs untouched
    assert len(pd.read_parquet(tmp_path / "out")) == 3
    with pytest.raises(CostnetError, match="is one of the inputs"):
        merge([a], a)


def test_merge_refuses_another_schema_version_naming_the_file(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from costnet.data.merge import merge

    a = _dataset(tmp_path / "a", [row(0)])
    b = _dataset(tmp_path / "b", [row(1)], key="0123456789ab")
    (shard,) = b.glob("*.parquet")
    table = pq.read_table(shard)
    pq.write_table(table.replace_schema_metadata({"costnet_schema_version": "0"}), shard)
    with pytest.raises(CostnetError, match=f"incompatible shard {str(shard)!r}: schema version '0'"):
        merge([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_merge_command_form(tmp_path: Path) -> None:
    a = _dataset(tmp_path / "a", [row(0)])
    b = _dataset(tmp_path / "b", [{**row(1), "in_features": 8}], key="0123456789ab")
    code, err = run_main("data", "merge", str(a), str(b), f"out={tmp_path / 'out'}")
    assert code == 0, err
    assert len(read_table(tmp_path / "out")) == 2
    code, err = run_main("data", "merge", str(a))
    assert code == 2 and "exactly one out=DIR" in err
