"""Parquet-sharded dataset directories: atomic appends, resume, hardware records.

Layout of a dataset directory::

    <space>-<run_key>-<seq>.parquet   shards, written whole to a temporary file,
                                      fsynced, then renamed into place
    <space>-<run_key>-<i>of<N>-<seq>.parquet
                                      shards of slice i of a run collected by N jobs
    _hardware/<hardware_id>.json      one record per machine (and thread count)
    _runs/<run_key>.json              the resolved config of each collection run

A shard only ever appears complete, so a run killed at any moment leaves
nothing half-written; rows still in memory are simply collected again. Side
records and lock files start with ``_`` or ``.``, which Parquet readers skip
(pyarrow.dataset's ``ignore_prefixes``, pandas, polars, DuckDB), so the
directory is a plain Parquet dataset: ``pd.read_parquet(DIR)`` reads its rows.
Directories written before (``hardware/``, ``runs/``) still load.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from costnet.data.schema import arrow_schema, column_order, schema_problem
from costnet.errors import CostnetError

_UMASK = os.umask(0)
os.umask(_UMASK)

HARDWARE_DIR, RUNS_DIR = "_hardware", "_runs"
OLD_HARDWARE_DIR, OLD_RUNS_DIR = "hardware", "runs"  # before side records were hidden from Parquet readers
SHARD = re.compile(r"^(?P<space>.+)-(?P<run_key>[0-9a-f]{12})(?:-(?P<part>\d+of\d+))?-(?P<seq>\d{5})\.parquet$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a synced temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes private files; shards are ordinary ones
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def ensure_writable(path: Path, file: bool = False) -> None:
    """Create the directory ``path`` (with ``file``, the directory of the file ``path``) if
    needed and prove it writable, or stop naming ``path``."""
    root = path.parent if file else path
    try:
        if file and path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if root.exists() and not root.is_dir():  # mkdir would say "File exists"
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise CostnetError(f"output {'file' if file else 'directory'} {str(path)!r} is not writable: "
                           f"{exc.strerror or exc}") from exc


@contextlib.contextmanager
def staged_dir(target: Path, marker: str) -> Iterator[Path]:
    """A fresh directory beside ``target`` to write a result into, which replaces ``target``
    (only then removing a previous result there) when the block ends; on any failure it is
    removed and ``target`` is left as it was. ``target`` may be absent, empty or a previous
    result (a directory holding ``marker``); anything else is refused, never replaced. A
    process killed outright leaves ``.<name>.staging-<pid>`` beside ``target``."""
    if target.exists() and not (target / marker).is_file() and (not target.is_dir() or any(target.iterdir())):
        raise CostnetError(f"{str(target)!r} exists and holds no {marker} of an earlier run: "
                           "remove it or write elsewhere")
    ensure_writable(target)  # an empty target is allowed, and a failure names it
    staging = target.parent / f".{target.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)  # an earlier process's, with the same pid
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def shards(root: Path, run_key: str | None = None, part: str | None = None) -> list[Path]:
    """The dataset's shard files (of one run if ``run_key`` is given, and of one slice of it if
    ``part`` is: ``""`` for a single-process run's own), sorted."""
    if not root.is_dir():
        raise CostnetError(f"dataset directory {str(root)!r} does not exist")
    found = []
    for path in sorted(root.iterdir()):
        match = SHARD.match(path.name)
        if match and (run_key is None or match["run_key"] == run_key) and (part is None or (match["part"] or "") == part):
            found.append(path)
    return found


def read_shard(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One shard as an Arrow table; a damaged file stops with its name.

    Data pages carry CRC checksums (written since costnet noticed silent corruption;
    verified whenever present), and the footer's columns and types must be the schema's,
    so a damaged byte becomes an error rather than a different value.
    """
    try:
        table = pq.read_table(path, columns=list(columns) if columns else None, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CostnetError(f"corrupt shard {str(path)!r}: {exc}") from exc
    check_schema(path, table.schema)
    return table


def check_schema(path: Path, schema: pa.Schema) -> None:
    """Stop with the file's name when a shard's columns or types are not costnet's schema
    (``incompatible``: another costnet version wrote it; ``corrupt``: anything else)."""
    if problem := schema_problem(schema):
        kind = "incompatible" if problem.startswith("schema version") else "corrupt"
        raise CostnetError(f"{kind} shard {str(path)!r}: {problem}")


def read_table(root: Path) -> pd.DataFrame:
    """Every shard of ``root`` as one frame (unified columns, schema order)."""
    tables = [read_shard(p) for p in shards(root)]
    if not tables:
        return pd.DataFrame(columns=column_order([]))
    table = pa.concat_tables(tables, promote_options="default")
    frame = table.to_pandas()
    return frame[column_order(list(frame.columns))]


class DatasetStore:
    """Appends rows of one collection run (or of one slice of it, ``part`` = ``"<i>of<N>"``:
    jobs collecting slices of one run never write, lock or clean up the same files) to a
    dataset directory."""

    def __init__(self, root: Path, space: str, run_key: str, part: str = "") -> None:
        self.root, self.space, self.run_key, self.part = root, space, run_key, part
        self.stem = f"{run_key}-{part}" if part else run_key

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run's lock file so two processes never collect the same run."""
        with open(self.root / f".{self.stem}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                what = f"slice {self.part} of run {self.run_key}" if self.part else f"run {self.run_key}"
                raise CostnetError(f"another process is collecting {what} into {str(self.root)!r}") from exc
            self._remove_stale_temporaries()
            yield

    def _remove_stale_temporaries(self) -> None:
        for path in self.root.glob(f".{self.space}-{self.stem}-[0-9][0-9][0-9][0-9][0-9].parquet.*.tmp"):
            path.unlink(missing_ok=True)

    def finished(self) -> set[int]:
        """Indices of configurations this run already wrote (in any slice)."""
        done: set[int] = set()
        for path in shards(self.root, self.run_key):
            done.update(read_shard(path, ["index"]).column("index").to_pylist())
        return done

    def append(self, rows: list[Mapping[str, Any]], config_columns: tuple[str, ...]) -> Path:
        """Write ``rows`` as the run's next shard, atomically."""
        existing = shards(self.root, self.run_key, self.part)
        seq = int(SHARD.match(existing[-1].name)["seq"]) + 1 if existing else 0
        path = self.root / f"{self.space}-{self.stem}-{seq:05d}.parquet"
        table = pa.Table.from_pylist(list(rows), schema=arrow_schema(config_columns))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, write_page_checksum=True)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        return path

    def write_json(self, relative: str, record: Mapping[str, Any]) -> None:
        """Write a JSON side file (hardware record, run config) atomically."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(record, indent=2, sort_keys=True, default=str).encode())


def read_hardware(root: Path) -> pd.DataFrame:
    """The dataset's hardware records, one row per ``hardware_id`` (a record in both the
    current and the old side directory counts once)."""
    records: dict[str, Any] = {}
    for folder in (HARDWARE_DIR, OLD_HARDWARE_DIR):
        for path in sorted((root / folder).glob("*.json")):
            try:
                records.setdefault(path.stem, json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise CostnetError(f"corrupt hardware record {str(path)!r}: {exc}") from exc
    return pd.DataFrame.from_records(list(records.values()))
