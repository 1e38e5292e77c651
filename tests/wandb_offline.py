"""Read what an offline W&B run wrote, without the network (a test helper).

An offline run keeps its records in ``run-<id>.wandb``: a log of 32 KiB blocks, each
record a 7-byte header (CRC32C, length, type: 1 full, 2 first, 3 middle, 4 last
fragment) and a protobuf ``wandb_internal_pb2.Record`` (the layout of wandb's
LevelDB-style transaction log, sdk/internal/datastore.py in wandb < 0.19). wandb
>= 0.19 reads it in Go only, so these few lines read it here.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK, HEADER = 32768, 7
FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version


def records(path: Path) -> Iterator[pb.Record]:
    """Every record of a ``.wandb`` file, fragments joined."""
    data = path.read_bytes()
    ident, magic, _ = FILE_HEADER.unpack_from(data)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, parts = FILE_HEADER.size, []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        if left < HEADER or (kind == 0 and length == 0):  # block trailer padding
            pos += left
            continue
        parts.append(data[pos + HEADER:pos + HEADER + length])
        pos += HEADER + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


@dataclass
class OfflineRun:
    """The parts of one offline run a dashboard shows."""

    name: str = ""
    group: str = ""
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history_keys: set[str] = field(default_factory=set)
    media: list[Path] = field(default_factory=list)


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(directory: Path) -> OfflineRun:
    """Name, group, job type, config, final summary, logged keys and media of one run directory."""
    run = OfflineRun(media=sorted((directory / "files" / "media").rglob("*.*")))
    for record in records(next(directory.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group, run.job_type = record.run.display_name, record.run.run_group, record.run.job_type
            run.config.update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run.config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            run.summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "history":
            run.history_keys.update(_key(i) for i in record.history.item)
    return run
