"""A trained cost model as one artifact: estimator, fitted features and config.

``load_predictor(path).predict(frame)`` returns milliseconds for rows of any
known layout (a costnet dataset or an adapted published one); it needs the
estimator classes but none of the training code path.

An artifact is a safetensors file (https://github.com/huggingface/safetensors): named
arrays (MLP weights, tree nodes) and one JSON document in its header metadata (format
version, what the model was trained on, the fitted feature transform, the estimator's
parameters). Loading it parses JSON and arrays only; nothing in the file can run code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors
import safetensors.numpy

from costnet.config import is_number
from costnet.data.store import atomic_write_bytes
from costnet.errors import CostnetError
from costnet.features.transform import enrich
from costnet.nets.estimators import Estimator, LinearFlops, MLPEstimator, Paleo, Roofline, SklearnEstimator
from costnet.ops import get_op

# 1: a torch pickle (never loaded: unpickling runs code); 2: safetensors with JSON metadata;
# 3: the same, with features whose meaning changed (a batched matmul's GEMM view is one matrix of
# the batch, with gemm_count; the bounded head's bound), so a format-2 model would mispredict.
FORMAT = 3
KEY = "costnet"  # the metadata entry holding the JSON document
KINDS: dict[str, type[Estimator]] = {cls.kind: cls for cls in (MLPEstimator, SklearnEstimator, LinearFlops, Paleo,
                                                                Roofline)}


class Predictor:
    """An estimator with what it was trained on."""

    def __init__(self, estimator: Estimator, meta: Mapping[str, Any]) -> None:
        self.estimator, self.meta = estimator, dict(meta)

    @property
    def op(self) -> str:
        return str(self.meta["op"])

    def peak_share(self, mode: str) -> float:
        """The largest share of its device's peak FLOP/s a training row of ``mode`` reached
        (:func:`costnet.features.roof.fastest_share`); 1 (the device's peak) when the artifact does not
        record it: artifacts of streamed training and of costnet before it."""
        shares = self.meta.get("peak_share") or {}
        value = shares.get(mode, 1.0) if isinstance(shares, Mapping) else None
        if not is_number(value, positive=True):
            raise CostnetError(f"the {self.op} model's peak_share for mode {mode!r} is not a positive number "
                               f"(peak_share: {shares!r}): a damaged artifact")
        return float(value)

    def beyond(self, rows: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
        """The device columns in which ``rows`` lie beyond the devices the model was trained on,
        each with the farthest value and the training range, where the model clips its view of
        the device to that range (``device_envelope``, costnet.features.envelope); else empty."""
        envelope = self.estimator.envelope
        return envelope.beyond(rows) if envelope else {}

    def predict(self, frame: pd.DataFrame, enriched: pd.DataFrame | None = None) -> np.ndarray:
        """Predicted time per call (ms) of each row; every row must be of the model's op
        (``op`` holds costnet's op names, published datasets' rows included: costnet.sources).
        ``enriched``: ``enrich(frame)`` where the caller has computed it already."""
        if "op" not in frame:
            raise CostnetError(f"the rows have no op column: this model predicts {self.op} layers only")
        if (wrong := frame["op"].astype(str) != self.op).any():
            raise CostnetError(f"this model predicts {self.op} layers only; {int(wrong.sum())} of {len(frame)} rows "
                               f"are of op {sorted(frame.loc[wrong, 'op'].astype(str).unique())}")
        if enriched is None:
            enriched = enrich(frame)
        elif not enriched.index.equals(frame.index):
            raise CostnetError("the enriched rows handed to predict are not the rows of the frame")
        chunked, chunks = self.chunked(frame, enriched["bytes"].to_numpy(float))
        return chunks * self.estimator.predict(enriched if chunked is frame else enrich(chunked))

    def chunked(self, frame: pd.DataFrame, nbytes: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """Each row moving more bytes (``nbytes``, its analytical ``bytes``) than any training row
        (``max_bytes``) as ``k`` equal chunks of its op's independent rows (``Op.row_dims``: all of
        them in the first, the others 1, the layout neusight2025 timed), with ``k``; rows within
        range, rows of ops without ``row_dims`` and artifacts that do not record ``max_bytes``
        (streamed training, costnet before it) as they are (k = 1).

        A row-wise op's time grows linearly with its rows once they fill the device; a model
        asked far beyond its training sizes need not (README, "Beyond the sizes the op models
        saw")."""
        chunks = np.ones(len(frame))
        limit, dims = self.meta.get("max_bytes"), get_op(self.op).row_dims
        if limit is not None and not is_number(limit, positive=True):
            raise CostnetError(f"the {self.op} model's max_bytes is not a positive number ({limit!r}): "
                               "a damaged artifact")
        if not dims or limit is None:
            return frame, chunks
        rows = np.prod([frame[d].to_numpy(float) for d in dims], axis=0)
        k = np.minimum(np.ceil(nbytes / limit), rows)
        if not (over := k > 1).any():
            return frame, chunks
        chunks[over] = k[over]
        frame = frame.copy()
        frame[dims[0]] = np.where(over, np.ceil(rows / np.maximum(k, 1)), frame[dims[0]])
        for d in dims[1:]:
            frame[d] = np.where(over, 1, frame[d])
        return frame, chunks

    def save(self, path: str | Path) -> Path:
        """Write the artifact atomically: a crash leaves the old file or the new one, never half of one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc, arrays = self.estimator.state()
        header = json.dumps({"format": FORMAT, "meta": self.meta, "estimator": doc}, allow_nan=False)
        atomic_write_bytes(path, safetensors.numpy.save(arrays, metadata={KEY: header}))
        return path


def load_predictor(path: str | Path) -> Predictor:
    """Load an artifact written by :meth:`Predictor.save`; anything else is refused with one message."""
    path = Path(path)
    if not path.is_file():
        raise CostnetError(f"model artifact {str(path)!r} not found")
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            header = (f.metadata() or {}).get(KEY)
            arrays = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:
        raise CostnetError(f"{str(path)!r} is not a costnet model artifact (a safetensors file; artifacts of "
                           f"costnet before format 2 were pickles, which are never loaded: retrain): "
                           f"{exc}") from exc
    if header is None:
        raise CostnetError(f"{str(path)!r} is a safetensors file without costnet metadata, not a model artifact")
    try:
        blob = json.loads(header)
        version = blob["format"]
    except (ValueError, TypeError, KeyError) as exc:
        raise CostnetError(f"model artifact {str(path)!r}: unreadable costnet metadata ({exc})") from exc
    if version != FORMAT:
        raise CostnetError(f"model artifact {str(path)!r} has format {version!r}; this costnet reads format {FORMAT}"
                           + (" (its features changed meaning since: retrain it)" if version == 2 else ""))
    try:
        doc = blob["estimator"]
        return Predictor(KINDS[doc["kind"]].from_state(doc, arrays), blob["meta"])
    except (LookupError, TypeError, ValueError, RuntimeError, AttributeError, CostnetError) as exc:
        raise CostnetError(f"model artifact {str(path)!r} is malformed: {exc!r}") from exc
