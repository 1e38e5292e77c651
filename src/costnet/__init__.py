"""costnet: learn how long deep-learning work takes on a given piece of hardware."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from costnet.nets.predictor import Predictor
    from costnet.networks.api import ModelPrediction


def load_predictor(path: Any) -> Predictor:
    """Load a trained cost model; ``.predict(frame)`` returns milliseconds."""
    from costnet.nets.predictor import load_predictor as load

    return load(path)


def predict_model(model: Any, example_inputs: Any, hardware: str, **options: Any) -> ModelPrediction:
    """A whole model's step time from per-op cost models (:func:`costnet.networks.api.predict_model`)."""
    from costnet.networks.api import predict_model as predict

    return predict(model, example_inputs, hardware, **options)
