"""Backward rules for models trained on forward calls only (costnet.networks.backward) and
their use in whole-step predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from costnet.features.hardware import from_catalog
from costnet.hardware.catalog import lookup
from costnet.nets.estimators import Roofline
from costnet.nets.predictor import Predictor
from costnet.networks.backward import backward_ms
from costnet.networks.estimate import Setting, layer_times
from costnet.networks.extract import extract_layers


class Recorder:
    """A forward 'model' whose time is the GEMM's FLOPs (or elements), recording each call."""

    def __init__(self) -> None:
        self.calls: list[pd.DataFrame] = []

    def __call__(self, rows: pd.DataFrame) -> np.ndarray:
        self.calls.append(rows.copy())
        if "in_features" in rows:
            return 2.0 * (rows["batch"] * rows["in_features"] * rows["out_features"]).to_numpy(float)
        if "m" in rows:
            return 2.0 * (rows["batch"] * rows["m"] * rows["k"] * rows["n"]).to_numpy(float)
        return (rows["batch"] * rows["features"]).to_numpy(float)


def test_a_linear_layers_backward_is_its_two_gemms() -> None:
    rows = pd.DataFrame({"op": "dense", "batch": [32, 32], "in_features": [64, 64], "out_features": [16, 16],
                         "bias": True, "activation": "none", "input_grad": [True, False]})
    model = Recorder()
    back = backward_ms(rows, model)
    forward = 2.0 * 32 * 64 * 16
    assert back.tolist() == [2 * forward, forward]  # no input gradient for a layer reading the network's input
    weight, data = model.calls
    assert weight[["batch", "in_features", "out_features"]].iloc[0].tolist() == [64, 32, 16]  # dW = X^T dY
    assert data[["batch", "in_features", "out_features"]].iloc[0].tolist() == [32, 16, 64]  # dX = dY W^T


def test_a_matrix_products_backward_is_one_product_per_operand() -> None:
    rows = pd.DataFrame({"op": "matmul", "batch": [8], "m": [10], "k": [20], "n": [30], "input_grad": [True]})
    model = Recorder()
    assert backward_ms(rows, model)[0] == 2 * (2.0 * 8 * 10 * 20 * 30)
    da, db = (call[["m", "k", "n"]].iloc[0].tolist() for call in model.calls)
    assert da == [10, 30, 20] and db == [20, 10, 30]  # dA = dC B^T, dB = A^T dC


@pytest.mark.parametrize("op, fn, ratio", [("elementwise", "gelu", 1.5), ("elementwise", "add", 0.0),
                                           ("elementwise", "mul", 2.0), ("softmax", None, 1.5),
                                           ("layernorm", None, 2.0), ("dropout", None, 1.0)])
def test_memory_bound_backward_scales_the_forward_by_the_tensors_it_moves(op: str, fn: str | None,
                                                                        ratio: float) -> None:
    rows = pd.DataFrame({"op": op, "batch": [4, 4], "features": [100, 100], "fn": fn, "input_grad": [True, False]})
    assert backward_ms(rows, Recorder()).tolist() == [ratio * 400, 0.0]


def test_no_rule_is_none() -> None:
    assert backward_ms(pd.DataFrame({"op": ["embedding"], "input_grad": [False]}), Recorder()) is None


def test_a_forward_only_model_times_a_training_step_as_forward_plus_backward_rule() -> None:
    """A roofline 'model' marked as trained on forward calls: the step of an MLP is each dense
    layer's forward plus its two backward GEMMs (plus the update in mode=train), while a model
    that saw training steps predicts the step's rows itself."""
    with torch.device("meta"):
        module, x = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 128)), torch.zeros(64, 256)
    layers = extract_layers(module, x)
    hardware = {"device": "V100", **from_catalog(lookup("V100"))}
    forward_only = Predictor(Roofline(), {"op": "dense", "model": "roofline", "train_modes": ["forward"]})
    both = Predictor(Roofline(), {"op": "dense", "model": "roofline", "train_modes": ["forward", "train"]})
    setting = Setting(mode="forward_backward", compute_floor=False)
    dense = layers["op"] == "dense"
    step = layer_times(layers, {"dense": forward_only}, hardware, setting)[dense]
    rows = layers[dense].assign(op="dense", mode="forward", optimizer="none", dtype="float32",
                                **{k: v for k, v in hardware.items() if k.startswith("hw_")})
    expected = forward_only.predict(rows) + backward_ms(rows, forward_only.predict)
    assert np.allclose(step["time_ms"].to_numpy(float), expected)
    assert step["source"].str.contains("backward rule").all()
    train = layer_times(layers, {"dense": forward_only}, hardware, Setting(mode="train", optimizer="adam",
                                                                          compute_floor=False))[dense]
    assert (train["time_ms"].to_numpy(float) > step["time_ms"].to_numpy(float)).all()  # plus the Adam update
    direct = layer_times(layers, {"dense": both}, hardware, setting)[dense]
    assert not direct["source"].str.contains("backward rule").any()
