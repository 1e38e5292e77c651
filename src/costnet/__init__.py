"""costnet: learn how long deep-learning work takes on a given piece of hardware."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from costnet.nets.predictor import Predictor


def load_predictor(path: Any) -> Predictor:
    """Load a trained cost model; ``.predict(frame)`` returns milliseconds."""
    from costnet.nets.predictor import load_predictor as load

    return load(path)
