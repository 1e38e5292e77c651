"""The one schema of costnet datasets: a row per (layer configuration, mode, device).

Every shard holds the common columns and the config columns of its op; reading a
dataset unifies them (config columns an op lacks are null). Times are in
milliseconds, per call of the timed step.

Common columns
--------------
row_id        ``<run_key>-<index>``, unique in a dataset
run_key       hash of everything that defines a collection run except its size ``n``
index         position of the configuration in the run's seeded sequence
seed          the run's seed; configuration ``index`` is drawn from ``(seed, index)``
space, op     the space it was sampled from and the layer type
mode          ``forward`` (inference, no autograd) or ``train`` (forward, MSE loss,
              backward, optimizer step)
optimizer     ``none`` in forward mode, else sgd, momentum, adagrad, adadelta, adam, rmsprop
dtype         float32, float64, float16 or bfloat16
input_grad    whether the training step also computes the input's gradient
device        torch device string (``cpu``, ``cuda:0``)
hardware_id   key of the hardware record in ``_hardware/<hardware_id>.json``
threads       CPU threads torch used
status        ``ok``; ``error`` (the step failed: out of memory, invalid shape...);
              ``skipped`` (the memory guard refused it before allocating)
error         the error or skip reason, null when ok
est_bytes     the memory guard's estimate of the tensors' footprint, bytes
time_*_ms     median, mean, min, max, std and interquartile range over samples
n_runs        samples taken; each sample is the mean of ``n_inner`` back-to-back calls
converged     the samples' relative spread reached the configured threshold
retimed_blocks  timed blocks dropped and timed again because other work disturbed them
disturbed     true when re-timing ran out (disturbed blocks are among the samples) or
              other processes used more than timing.max_others cores meanwhile, so
              the times may be too long (costnet.timing.interference); null in
              datasets collected before costnet noticed interference
wait_share    time this process's threads waited for a CPU while timing, over the
              time timed (null where the kernel does not report it)
others_cores  cores other processes used while this row was timed
timed_s       seconds inside timed regions for this row (warm-up excluded)
wall_s        seconds the whole row took (build, warm-up, timing)
timestamp     UTC time the row finished
*_version     python, torch, CUDA, cuDNN, MKL and oneDNN versions
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"
STATUSES = ("ok", "error", "skipped")

COMMON: dict[str, pa.DataType] = {
    "row_id": pa.string(),
    "run_key": pa.string(),
    "index": pa.int64(),
    "seed": pa.int64(),
    "space": pa.string(),
    "op": pa.string(),
    "mode": pa.string(),
    "optimizer": pa.string(),
    "dtype": pa.string(),
    "input_grad": pa.bool_(),
    "device": pa.string(),
    "hardware_id": pa.string(),
    "threads": pa.int64(),
    "status": pa.string(),
    "error": pa.string(),
    "est_bytes": pa.int64(),
    "time_median_ms": pa.float64(),
    "time_mean_ms": pa.float64(),
    "time_min_ms": pa.float64(),
    "time_max_ms": pa.float64(),
    "time_std_ms": pa.float64(),
    "time_iqr_ms": pa.float64(),
    "n_runs": pa.int64(),
    "n_inner": pa.int64(),
    "converged": pa.bool_(),
    "retimed_blocks": pa.int64(),
    "disturbed": pa.bool_(),
    "wait_share": pa.float64(),
    "others_cores": pa.float64(),
    "timed_s": pa.float64(),
    "wall_s": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "python_version": pa.string(),
    "torch_version": pa.string(),
    "cuda_version": pa.string(),
    "cudnn_version": pa.string(),
    "mkl_version": pa.string(),
    "onednn_version": pa.string(),
}

# Config columns of every op (see costnet.ops); spatial layers are square.
CONFIG: dict[str, pa.DataType] = {
    "batch": pa.int64(),
    "size": pa.int64(),  # input height = width
    "channels_in": pa.int64(),
    "channels_out": pa.int64(),
    "kernel": pa.int64(),
    "stride": pa.int64(),
    "padding": pa.string(),  # same | valid (TensorFlow's rules)
    "bias": pa.bool_(),
    "activation": pa.string(),
    "groups": pa.int64(),
    "pool": pa.string(),  # max | avg
    "in_features": pa.int64(),
    "out_features": pa.int64(),
    "m": pa.int64(),
    "k": pa.int64(),
    "n": pa.int64(),
    "heads": pa.int64(),
    "seq_len": pa.int64(),
    "head_dim": pa.int64(),
    "causal": pa.bool_(),
    "features": pa.int64(),
    "hidden_size": pa.int64(),
    "layers": pa.int64(),
    "rows": pa.int64(),  # softmax rows per sample
    "fn": pa.string(),  # elementwise function (relu, gelu, add...)
    "p": pa.float64(),  # dropout probability
    "target_size": pa.int64(),  # adaptive pooling output height = width
    "vocab": pa.int64(),  # embedding rows
}


def arrow_schema(config_columns: tuple[str, ...]) -> pa.Schema:
    """The Arrow schema of a shard whose op has ``config_columns``."""
    fields = [pa.field(name, dtype) for name, dtype in COMMON.items()]
    fields += [pa.field(name, CONFIG[name]) for name in config_columns]
    return pa.schema(fields, metadata={"costnet_schema_version": SCHEMA_VERSION})


def column_order(columns: list[str]) -> list[str]:
    """Common columns first, then config columns in schema order, then anything else."""
    known = [c for c in (*COMMON, *CONFIG) if c in columns]
    return known + [c for c in columns if c not in known]


def schema_problem(schema: pa.Schema) -> str | None:
    """What is wrong with a shard's schema (unknown version, unknown column, another type),
    or None when every column is one of the schema's with its type."""
    version = (schema.metadata or {}).get(b"costnet_schema_version", b"").decode(errors="replace")
    if version != SCHEMA_VERSION:
        return f"schema version {version!r}, this costnet reads {SCHEMA_VERSION!r}"
    known = {**COMMON, **CONFIG}
    for field in schema:
        if field.name not in known:
            return f"unknown column {field.name!r}"
        if field.type != known[field.name] and not pa.types.is_null(field.type):
            return f"column {field.name!r} is {field.type}, the schema says {known[field.name]}"
    return None
