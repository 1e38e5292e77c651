"""Dataset directories read in record batches, for data larger than memory.

:class:`Scan` reads the shards of one or more dataset directories (costnet.data.store) with
``pyarrow.dataset``, one record batch of at most ``batch_rows`` rows at a time and only the
columns asked for, keeping the rows :func:`costnet.data.load_dataset` and the local source
keep (status ``ok``; one op; timing not disturbed unless asked). Batches come in a fixed
order, each with its key ``(shard file number, batch number in the file)``, so that several
readers (DataLoader workers, DDP ranks) can share them out by key without talking to each
other, and a pass may visit the files in a shuffled order and still see the same batches.

:class:`Split` assigns each row to train, validation or test by a seeded hash of its identity
(the columns that make two rows the same measurement, costnet.data.merge.IDENTITY, and its
config values): any pass over the data, in any order and any process, sees the same split
without holding it, and repeated measurements of one configuration share a part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from costnet.data.merge import identity_columns
from costnet.data.store import check_schema, shards
from costnet.errors import CostnetError

PARTS = ("train", "val", "test")
# Rows per record batch: one batch's enriched frame (about 100 float columns) is ~13 MB.
BATCH_ROWS = 16_384


@dataclass(frozen=True)
class Scan:
    """Which rows of which directories a pass reads, and how many at a time."""

    roots: tuple[Path, ...]
    op: str | None = None
    devices: tuple[str, ...] | None = None  # hardware ids to keep; None: all
    max_batchsize: int | None = None
    disturbed: str = "drop"  # rows whose timing other work disturbed: drop | keep
    batch_rows: int = BATCH_ROWS

    def __post_init__(self) -> None:
        if self.disturbed not in ("drop", "keep"):
            raise CostnetError(f"dataset.disturbed must be 'drop' or 'keep', got {self.disturbed!r}")
        if self.batch_rows < 1:
            raise CostnetError(f"stream: batch_rows must be >= 1, got {self.batch_rows}")

    def files(self) -> list[Path]:
        """Every shard of every root, in order (the order batch keys number them in)."""
        found = [f for root in self.roots for f in shards(Path(root))]
        if not found:
            raise CostnetError(f"no collected shards in {[str(r) for r in self.roots]}")
        return found

    def schema(self, files: Sequence[Path]) -> pa.Schema:
        """The shards' columns unified; each footer is checked as costnet.data.store.read_shard checks it."""
        schemas = []
        for path in files:
            try:
                schema = pq.read_schema(path)
            except (pa.ArrowException, OSError) as exc:
                raise CostnetError(f"corrupt shard {str(path)!r}: {exc}") from exc
            check_schema(path, schema)
            schemas.append(schema)
        return pa.unify_schemas(schemas, promote_options="default")

    def _filter(self, schema: pa.Schema) -> ds.Expression:
        keep = pc.field("status") == "ok"
        if self.op is not None:
            keep &= pc.field("op") == self.op
        if self.devices is not None:
            keep &= pc.field("hardware_id").isin(list(self.devices))
        if self.max_batchsize is not None and "batch" in schema.names:
            keep &= pc.field("batch") <= self.max_batchsize
        if self.disturbed == "drop":
            keep &= pc.field("disturbed").is_null() | ~pc.field("disturbed")
        return keep

    def _dataset(self) -> tuple[list[Path], pa.Schema, ds.Dataset]:
        files = self.files()
        schema = self.schema(files)
        options = ds.ParquetFragmentScanOptions(page_checksum_verification=True, pre_buffer=False)
        return files, schema, ds.dataset([str(f) for f in files], schema=schema,
                                         format=ds.ParquetFileFormat(default_fragment_scan_options=options))

    def values(self, column: str) -> list[str]:
        """The distinct values (as text) of ``column`` in the kept rows, sorted."""
        files, schema, dataset = self._dataset()
        if column not in schema.names:
            return []
        seen: set[str] = set()
        try:
            for batch in dataset.to_batches(columns=[column], filter=self._filter(schema), batch_size=self.batch_rows,
                                            batch_readahead=0, fragment_readahead=0):
                seen.update(str(v) for v in pc.unique(batch.column(0)).to_pylist() if v is not None)
        except pa.ArrowException as exc:
            raise CostnetError(f"corrupt shard in {[str(r) for r in self.roots]}: {exc}") from exc
        return sorted(seen)

    def batches(self, columns: Sequence[str], select: Callable[[tuple[int, int]], bool] | None = None,
                order: int | None = None) -> Iterator[tuple[tuple[int, int], pa.RecordBatch]]:
        """Record batches of the kept rows, of ``columns`` (those the shards have) and the identity
        columns, with their keys; only those whose key ``select`` accepts (all when None). ``order``: the seed of a
        shuffled file order (None: file order); the batches of a file come in order.

        Batch boundaries depend only on the files and ``batch_rows``, never on ``select`` or
        ``order``, so a key names the same rows in every pass.
        """
        files, schema, dataset = self._dataset()
        # the identity columns always: the split hashes them (Split.parts)
        wanted = [c for c in dict.fromkeys([*columns, *identity_columns(schema.names)]) if c in schema.names]
        fragments = list(dataset.get_fragments())
        visit = np.arange(len(fragments)) if order is None else np.random.default_rng(order).permutation(len(fragments))
        keep = self._filter(schema)
        for i in visit:
            try:
                # one batch in flight per reader: memory stays at a batch's rows, not a file's
                scanned = fragments[i].to_batches(schema=schema, columns=wanted, filter=keep,
                                                  batch_size=self.batch_rows, batch_readahead=0,
                                                  fragment_readahead=0, use_threads=False)
                for k, batch in enumerate(scanned):
                    if select is None or select((int(i), k)):
                        yield (int(i), k), batch
            except pa.ArrowException as exc:
                raise CostnetError(f"corrupt shard {str(files[i])!r}: {exc}") from exc


@dataclass(frozen=True)
class Split:
    """Train / validation / test shares, assigned per row by a seeded hash of its identity."""

    fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.fractions) != len(PARTS) or any(f < 0 for f in self.fractions) \
                or not np.isclose(sum(self.fractions), 1.0):
            raise CostnetError(f"split fractions must be three shares >= 0 summing to 1, got {list(self.fractions)}")

    def parts(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        """Each row's part: 0 train, 1 validation, 2 test (``PARTS``)."""
        columns = identity_columns(batch.schema.names)
        if not columns:
            raise CostnetError("stream: the rows have no identity columns to split them by")
        key = hashlib.sha256(f"costnet-split-{self.seed}".encode()).hexdigest()[:16]
        h = np.zeros(batch.num_rows, np.uint64)
        for name in columns:  # xor: a missing value (a column of another op) leaves a row's hash as it is
            h ^= _column_hash(batch.column(name), name, key)
        h = _finalize(h)
        u = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53  # uniform in [0, 1)
        return np.searchsorted(np.cumsum(self.fractions)[:-1], u, side="right").astype(np.int8)


def _column_hash(column: pa.Array | pa.ChunkedArray, name: str, key: str) -> np.ndarray:
    """A stable 64-bit hash of each value of ``column`` as the text ``name=value`` (SipHash with
    ``key`` once per distinct value: pandas.util.hash_array), 0 where missing; the same in any
    process, batch and dataset, whatever other columns it has."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(pc.cast(column, pa.string()))
    words = np.asarray([f"{name}={w}" for w in encoded.dictionary.to_pylist()] + ["-"], dtype=object)
    values = pd.util.hash_array(words, hash_key=key)
    values[-1] = 0  # missing
    index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return values[index]  # -1: the last entry


def _finalize(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))
