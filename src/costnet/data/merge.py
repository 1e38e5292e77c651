"""Merge dataset directories into a new one (``costnet-data merge A B ... out=DIR``).

Every input shard is checked (schema version, columns and types: one message names the
file); rows repeated across inputs (the same configuration, mode, optimizer, dtype and
hardware id) are kept once, the first input's; every hardware record and run config is
kept; ``_merge.json`` records the sources and row counts. The inputs are only read, and
the output appears whole or not at all (costnet.data.store.staged_dir).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from costnet.data.schema import COMMON, CONFIG
from costnet.data.store import (HARDWARE_DIR, OLD_HARDWARE_DIR, OLD_RUNS_DIR, RUNS_DIR, SHARD, DatasetStore,
                                read_shard, shards, staged_dir)
from costnet.errors import CostnetError

MARKER = "_merge.json"
# What makes two rows the same measurement target; the config columns of their op join these.
IDENTITY = ("op", "mode", "optimizer", "dtype", "input_grad", "hardware_id")


@dataclass
class MergeSummary:
    """What a merge read and wrote."""

    out: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    rows_in: int = 0
    duplicates_dropped: int = 0
    rows_out: int = 0


def identity_columns(names: Sequence[str]) -> list[str]:
    """The columns of ``names`` that identify a measurement: the identity, then config values."""
    return [c for c in (*IDENTITY, *CONFIG) if c in names]


def _identity(table: pa.Table) -> pd.Series:
    """One hashable key per row: its identity columns and config values."""
    columns = identity_columns(table.column_names)
    frame = table.select(columns).to_pandas()
    return pd.Series(list(zip(*(frame[c].astype(str) for c in columns))), index=frame.index)


def _side_records(root: Path, folders: tuple[str, ...], into: Path) -> None:
    """Copy the JSON records of ``folders`` (current name first) into ``into``; the first copy
    of a name wins."""
    into.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        for path in sorted((root / folder).glob("*.json")):
            if not (into / path.name).exists():
                shutil.copyfile(path, into / path.name)


def merge(inputs: list[Path], out: Path) -> MergeSummary:
    """Merge the dataset directories ``inputs`` into the new directory ``out``."""
    if not inputs:
        raise CostnetError("costnet-data merge needs at least one input directory")
    resolved = [p.resolve() for p in inputs]
    if out.resolve() in resolved or any(out.resolve().is_relative_to(p) for p in resolved):
        raise CostnetError(f"out={str(out)!r} is one of the inputs or inside one: merge writes a new directory")
    summary = MergeSummary(str(out))
    seen: set[tuple[str, ...]] = set()
    with staged_dir(out, MARKER) as staging:
        for root in inputs:
            files = shards(root)
            if not files:
                raise CostnetError(f"{str(root)!r} holds no costnet shards")
            source = {"path": str(root), "shards": len(files), "rows": 0, "kept": 0}
            for path in files:
                table = read_shard(path)  # names the file on a schema version or column mismatch
                keys = _identity(table)
                fresh = ~keys.isin(seen) & ~keys.duplicated()
                seen.update(keys[fresh])
                source["rows"] += table.num_rows
                source["kept"] += int(fresh.sum())
                if fresh.any():
                    match = SHARD.match(path.name)
                    store = DatasetStore(staging, match["space"], match["run_key"], match["part"] or "")
                    config = tuple(c for c in table.column_names if c in CONFIG)
                    kept = table.filter(pa.array(fresh.to_numpy()))
                    rows = kept.select([c for c in (*COMMON, *config) if c in kept.column_names]).to_pylist()
                    store.append(rows, config)
            _side_records(root, (HARDWARE_DIR, OLD_HARDWARE_DIR), staging / HARDWARE_DIR)
            _side_records(root, (RUNS_DIR, OLD_RUNS_DIR), staging / RUNS_DIR)
            summary.sources.append(source)
            summary.rows_in += source["rows"]
            summary.rows_out += source["kept"]
        summary.duplicates_dropped = summary.rows_in - summary.rows_out
        (staging / MARKER).write_text(json.dumps(asdict(summary), indent=2))
    return summary
