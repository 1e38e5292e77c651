"""A trained cost model as one artifact: estimator, fitted features and config.

``load_predictor(path).predict(frame)`` returns milliseconds for rows of any
known layout (a costnet dataset or an adapted published one); it needs the
estimator classes but none of the training code path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from costnet.errors import CostnetError
from costnet.features.transform import enrich
from costnet.nets.estimators import Estimator, MLPEstimator

FORMAT = 1


class Predictor:
    """An estimator with what it was trained on."""

    def __init__(self, estimator: Estimator, meta: Mapping[str, Any]) -> None:
        self.estimator, self.meta = estimator, dict(meta)

    @property
    def op(self) -> str:
        return str(self.meta["op"])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted time per call (ms) of each row; every row must be of the model's op
        (``op`` holds costnet's op names, published datasets' rows included: costnet.sources)."""
        if "op" not in frame:
            raise CostnetError(f"the rows have no op column: this model predicts {self.op} layers only")
        if (wrong := frame["op"].astype(str) != self.op).any():
            raise CostnetError(f"this model predicts {self.op} layers only; {int(wrong.sum())} of {len(frame)} rows "
                               f"are of op {sorted(frame.loc[wrong, 'op'].astype(str).unique())}")
        return self.estimator.predict(enrich(frame))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": FORMAT, "meta": self.meta, "estimator": self.estimator.state()}, path)
        return path


def load_predictor(path: str | Path) -> Predictor:
    """Load an artifact written by :meth:`Predictor.save`."""
    path = Path(path)
    if not path.is_file():
        raise CostnetError(f"model artifact {str(path)!r} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CostnetError(f"model artifact {str(path)!r} cannot be read: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CostnetError(f"{str(path)!r} is not a costnet model artifact (format {FORMAT})")
    state = blob["estimator"]
    estimator = MLPEstimator.from_state(state) if state["kind"] == "mlp" else state["object"]
    return Predictor(estimator, blob["meta"])
