"""``costnet.predict_model``: a whole model's step time on a device, from per-op cost models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from costnet.nets.predictor import Predictor
from costnet.networks.estimate import Setting, hardware_features, layer_times, load_models
from costnet.networks.extract import extract_layers


@dataclass(frozen=True)
class ModelPrediction:
    """A model's predicted step: ``batch_ms`` in all, and one row per traced call in ``layers``
    (op, how it was timed in ``source``, ``flops``, ``time_ms``, ``share``)."""

    batch_ms: float
    hardware: dict[str, Any]
    layers: pd.DataFrame


def predict_model(model: nn.Module, example_inputs: torch.Tensor | tuple[torch.Tensor, ...], hardware: str,
                  models: Mapping[str, Predictor] | Iterable[str | Path] = (), mode: str = "forward",
                  optimizer: str = "sgd", dtype: str = "float32", hardware_specs: str | Path | None = None,
                  method: str = "auto", **analytical: Any) -> ModelPrediction:
    """The step time of ``model`` called on ``example_inputs`` (build both on the meta device:
    only shapes are read) on ``hardware`` (a catalog name, ``local``, or a GPU of the spec-sheet
    file ``hardware_specs``), from ``models`` (predictors by op, or artifact files and
    costnet-train run directories). ``mode``: forward, forward_backward or train; ``analytical``:
    ``ppp_comp``, ``ppp_mem``, ``compute_floor``, ``kernel_gap_ms``, ``pass_ratio`` of
    :class:`costnet.networks.estimate.Setting`."""
    setting = Setting(mode, optimizer, dtype, **analytical)
    device = hardware_features(hardware, Path(hardware_specs) if hardware_specs else None)
    chosen = dict(models) if isinstance(models, Mapping) else load_models(list(models), hardware)
    table = layer_times(extract_layers(model, example_inputs, method), chosen, device, setting)
    return ModelPrediction(float(table["time_ms"].sum()), device, table)
