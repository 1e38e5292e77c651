"""Training the MLP on dataset directories larger than memory, streamed from Parquet.

A :class:`RowStream` reads dataset directories in record batches (costnet.data.stream.Scan),
joins each row's hardware features, and splits the rows into train / validation / test by a
seeded hash of their identity (costnet.data.stream.Split), so every pass sees the same split
without holding the data. :func:`fit_stream` trains an :class:`MLPEstimator` on it:

1. one pass over every batch fits the feature transform and the target's mean and standard
   deviation on the training rows only (costnet.features.transform.FitStatistics and
   Moments: the same code as an in-memory fit, which they match to rounding), and counts
   the rows of each part per batch;
2. each member then trains with Lightning on a :class:`StreamDataModule`, whose
   :class:`StreamDataset` (a ``torch.utils.data.IterableDataset``) yields (x, y) mini-batches
   shuffled within a bounded buffer, its batches shared out between DataLoader workers and,
   under DDP, between processes.

The fitted estimator is an ordinary one: ``Predictor(est, meta).save(path)`` writes an
artifact that ``load_predictor`` reads like any other.

Memory per reading process: one record batch (``batch_rows`` rows as read, then enriched:
about 100 float columns, ~13 MB at 16,384 rows) plus the shuffle buffer (``buffer_rows`` +
``batch_rows`` rows of (features + 1) float32 values, ~12 MB at 65,536 rows and 40 features),
whatever the dataset's size. README "Training on data larger than memory" has measurements.
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from costnet.data.schema import CONFIG
from costnet.data.stream import PARTS, Scan, Split
from costnet.errors import CostnetError
from costnet.features.envelope import DeviceEnvelope
from costnet.features.hardware import dataset_hardware
from costnet.features.transform import Moments, enrich
from costnet.nets.estimators import MLPEstimator, Monitor, measured_times
from costnet.nets.mlp import MLPConfig
from costnet.nets.training import fit_net, rank_and_size

BUFFER_ROWS = 65_536  # rows a shuffle buffer holds (per reading process)
VAL_BATCH = 8192  # rows per validation batch, as train_mlp's
# Columns every pass reads besides the config columns and the feature set's own.
BASE_COLUMNS = ("op", "mode", "optimizer", "dtype", "input_grad", "hardware_id", "time_median_ms")
TRAIN, VAL, TEST = (PARTS.index(p) for p in PARTS)


@functools.lru_cache(maxsize=16)
def _hardware(roots: tuple[Path, ...]) -> pd.DataFrame:
    """Hardware features per ``hardware_id`` from the roots' records (the first root's record
    of an id wins), as costnet.sources.local joins them."""
    tables = [t for t in (dataset_hardware(Path(root)) for root in roots) if len(t)]
    return pd.concat(tables, ignore_index=True).drop_duplicates("hardware_id", ignore_index=True) if tables \
        else pd.DataFrame()


def shard_of(key: tuple[int, int], shards: int) -> int:
    """Which of ``shards`` readers takes the record batch ``key`` (file, batch in file)."""
    return (key[0] + key[1]) % shards


@dataclass(frozen=True)
class RowStream:
    """Rows of dataset directories, batch by batch, split and with features."""

    scan: Scan
    split: Split = Split()
    columns: tuple[str, ...] = ()  # extra columns to read (a feature set's); config columns always

    def batches(self, shard: int = 0, shards: int = 1, order: int | None = None
                ) -> Iterator[tuple[tuple[int, int], pa.RecordBatch, np.ndarray]]:
        """``(key, record batch, each row's part)`` of the batches reader ``shard`` of ``shards``
        takes (:func:`shard_of`), files in the shuffled order ``order`` (None: file order)."""
        select = None if shards == 1 else (lambda key: shard_of(key, shards) == shard)
        for key, batch in self.scan.batches([*BASE_COLUMNS, *CONFIG, *self.columns], select, order):
            yield key, batch, self.split.parts(batch)

    def rows(self, batch: pa.RecordBatch) -> pd.DataFrame:
        """``batch``'s rows as the local source and costnet-train give them: hardware features
        joined, ``device`` = ``hardware_id``, times checked, enriched (costnet.features.enrich)."""
        frame = batch.to_pandas()
        hardware = _hardware(tuple(self.scan.roots))
        if len(frame) and not hardware.empty:
            frame = frame.merge(hardware, on="hardware_id", how="left")
        frame["device"] = frame["hardware_id"]
        measured_times(frame["time_median_ms"])
        return enrich(frame)

    def frames(self, part: int, shard: int = 0, shards: int = 1, order: int | None = None
               ) -> Iterator[pd.DataFrame]:
        """The rows of ``part`` (``PARTS`` index), one enriched frame per record batch."""
        for _, batch, parts in self.batches(shard, shards, order):
            if (mask := parts == part).any():
                yield self.rows(batch.filter(pa.array(mask)))


@dataclass
class StreamCounts:
    """Rows of each part per record batch (what the fitting pass counted), and the modes and
    devices of the training rows."""

    rows: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    modes: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)

    def total(self, part: int) -> int:
        return int(sum(int(n[part]) for n in self.rows.values()))

    def shard_rows(self, part: int, shard: int, shards: int) -> int:
        return int(sum(int(n[part]) for key, n in self.rows.items() if shard_of(key, shards) == shard))


def fit_scalers(est: MLPEstimator, stream: RowStream) -> StreamCounts:
    """One pass: fit ``est``'s feature transform and target scale on the training rows only;
    count every part's rows per batch."""
    stats, logy, counts = est.transform.statistics(), Moments(1), StreamCounts()
    envelope = DeviceEnvelope() if est.cfg.device_envelope else None
    for key, batch, parts in stream.batches():
        counts.rows[key] = np.bincount(parts, minlength=len(PARTS))
        if (train := parts == TRAIN).any():
            frame = stream.rows(batch.filter(pa.array(train)))
            stats.add(frame)
            if envelope:
                envelope.add(frame)
            logy.add(est._log_target(frame))
            counts.modes.update(frame["mode"].astype(str).unique())
            counts.devices.update(frame["device"].astype(str).unique())
    if not counts.total(TRAIN) or not counts.total(VAL):
        raise CostnetError(f"stream: {counts.total(TRAIN)} training and {counts.total(VAL)} validation rows in "
                           f"{[str(r) for r in stream.scan.roots]} (op {stream.scan.op!r}): the MLP needs both")
    stats.finish()
    est.envelope = envelope
    est._scale_target(logy)
    return counts


def _shuffled(x: np.ndarray, y: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """The rows of (x, y) in a random order drawn from ``rng`` (as they are without one)."""
    if rng is None:
        return x, y
    order = rng.permutation(len(y))
    return x[order], y[order]


def _batched(chunks: Iterator[tuple[np.ndarray, np.ndarray]], size: int, buffer_rows: int,
             rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Mini-batches of ``size`` rows of the chunks' rows, each row once; with ``rng``, drawn at
    random from a buffer of at least ``buffer_rows`` rows (fewer at the end), else in order."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    held = 0
    keep = buffer_rows if rng is not None else 0
    for x, y in chunks:
        xs.append(x)
        ys.append(y)
        held += len(y)
        if held < keep + size:
            continue
        x, y = _shuffled(np.concatenate(xs), np.concatenate(ys), rng)
        out = (held - keep) // size * size
        for start in range(0, out, size):
            yield x[start:start + size], y[start:start + size]
        xs, ys, held = [x[out:]], [y[out:]], held - out
    if held:
        x, y = _shuffled(np.concatenate(xs), np.concatenate(ys), rng)
        for start in range(0, held, size):
            yield x[start:start + size], y[start:start + size]


class StreamDataset(IterableDataset):
    """(x, y) mini-batches of one part of a :class:`RowStream`, for ``DataLoader(batch_size=None)``.

    Record batches are shared out by key (:func:`shard_of`) between the ``world`` processes'
    ``workers`` DataLoader workers each (reader ``rank * workers + worker``), so an epoch yields
    every row of the part exactly once. ``shuffle``: each epoch visits the files in a new
    order and draws mini-batches at random from a buffer of ``buffer_rows`` rows per reader.

    Under DDP (``world`` > 1) each process takes its share of the global ``batch_size`` (as
    costnet.nets.training.BatchLoader does) and every process runs the same number of steps:
    the readers with the most batches leave their last few out of the epoch (at most a few
    mini-batches, counted from the fitting pass), so no all-reduce waits for a process that
    has run out.
    """

    def __init__(self, stream: RowStream, part: int, model: MLPEstimator, counts: StreamCounts, batch_size: int,
                 shuffle: bool, seed: int, workers: int = 0, buffer_rows: int = BUFFER_ROWS,
                 rank: int | None = None, world: int | None = None) -> None:
        super().__init__()
        self.stream, self.part, self.model, self.counts = stream, part, model, counts
        self.batch_size, self.shuffle, self.seed, self.buffer_rows = batch_size, shuffle, seed, buffer_rows
        self.workers = max(1, workers)
        if rank is None or world is None:
            rank, world = rank_and_size()
        self.rank, self.world = rank, world
        self._epoch = 0  # counts passes when no DataLoader workers draw fresh seeds

    def _size(self, rank: int) -> int:
        """Rows per mini-batch of process ``rank``: its slice of the global batch."""
        return len(range(rank, self.batch_size, self.world))

    def _own(self, rank: int) -> list[int]:
        """Mini-batches each worker of process ``rank`` has rows for."""
        shards = self.world * self.workers
        return [math.ceil(self.counts.shard_rows(self.part, rank * self.workers + w, shards) / self._size(rank))
                for w in range(self.workers)]

    def quota(self) -> list[int]:
        """Mini-batches each worker of this process yields per epoch: all it has, or under DDP
        the fewest any process has, taken off the workers with the most."""
        quota = self._own(self.rank)
        if self.world > 1:
            excess = sum(quota) - min(sum(self._own(r)) for r in range(self.world))
            for _ in range(excess):
                quota[int(np.argmax(quota))] -= 1
        return quota

    def __len__(self) -> int:
        return sum(self.quota())

    def _chunks(self, shard: int, shards: int, order: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for frame in self.stream.frames(self.part, shard, shards, order):
            x, y = self.model._xy(frame)
            yield x, y.astype(np.float32)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None and info.num_workers != self.workers:
            raise CostnetError(f"StreamDataset was built for {self.workers} DataLoader workers, "
                               f"runs in {info.num_workers}")
        if info is None:
            self._epoch += 1
        rng = None
        order = None
        if self.shuffle:  # a DataLoader draws each worker a fresh seed per epoch (from its generator)
            rng = np.random.default_rng([self.seed, info.seed if info is not None else self._epoch])
            order = int(rng.integers(2**62))
        quota = self.quota()[worker]
        shard, shards = self.rank * self.workers + worker, self.world * self.workers
        batches = _batched(self._chunks(shard, shards, order), self._size(self.rank), self.buffer_rows, rng)
        for _, (x, y) in zip(range(quota), batches):
            yield torch.from_numpy(x), torch.from_numpy(y)


class StreamDataModule(pl.LightningDataModule):
    """Training and validation mini-batches of a :class:`RowStream` for one MLP: ``model`` is the
    estimator with its feature transform and target scale fitted (:func:`fit_scalers`).

    Every process scores all validation rows (as costnet.nets.training.train_mlp does), so
    early stopping and the best epoch agree across DDP processes.
    """

    def __init__(self, stream: RowStream, model: MLPEstimator, counts: StreamCounts, batch_size: int, seed: int,
                 workers: int = 0, buffer_rows: int = BUFFER_ROWS) -> None:
        super().__init__()
        self.stream, self.model, self.counts = stream, model, counts
        self.batch_size, self.seed, self.workers, self.buffer_rows = batch_size, seed, workers, buffer_rows

    def _layout(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else rank_and_size()

    def dataset(self, part: int, rank: int = 0, world: int = 1) -> StreamDataset:
        train = part == TRAIN
        return StreamDataset(self.stream, part, self.model, self.counts, self.batch_size if train else VAL_BATCH,
                             shuffle=train, seed=self.seed, workers=self.workers, buffer_rows=self.buffer_rows,
                             rank=rank if train else 0, world=world if train else 1)

    def _loader(self, dataset: StreamDataset) -> DataLoader:
        # here, in every process: the stream's __len__ counts each worker's own batches (quota), exactly
        warnings.filterwarnings("ignore", r".*IterableDataset. has .__len__. defined.*")
        return DataLoader(dataset, batch_size=None, num_workers=self.workers,
                          generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(TRAIN, *self._layout()))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(VAL))


def fit_stream(est: MLPEstimator, stream: RowStream, workers: int = 0,
               buffer_rows: int = BUFFER_ROWS) -> StreamCounts:
    """Fit ``est`` (an :class:`MLPEstimator`) in place on the training rows of ``stream``,
    early-stopping on its validation rows, never holding more than a few record batches;
    returns what the fitting pass counted. ``workers``: DataLoader worker processes reading
    and featurizing batches (0: this process)."""
    if not isinstance(est, MLPEstimator):
        raise CostnetError(f"only the MLP trains on a stream, not {type(est).__name__}")
    monitor, est.monitor = est.monitor, Monitor()
    counts = fit_scalers(est, stream)
    model = copy.copy(est)  # what the readers need: the fitted transform and target scale, no weights
    model.nets, model.history = [], {}

    def train(net: torch.nn.Module, cfg: MLPConfig, watched: Monitor) -> Mapping[str, float]:
        data = StreamDataModule(stream, model, counts, cfg.batch_size, cfg.seed, workers, buffer_rows)
        steps = len(data.dataset(TRAIN, 0, cfg.devices))
        return fit_net(net, cfg, {"datamodule": data}, steps, watched.loggers, est.y_std, watched.callbacks)

    est._train_members(monitor, train)
    return counts
