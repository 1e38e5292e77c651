"""Backward time of a layer predicted by a model that only saw forward calls.

A model trained on forward timings (neusight2025's ops, for one) cannot time a backward pass
directly; these rules build it from forward calls the model can time:

- dense (batch B, in I, out O), Y = X W: the weight gradient dW = X^T dY is a dense call of I
  rows from B to O features, the input gradient dX = dY W^T one of B rows from O to I (skipped
  where the layer reads only the network's input, ``input_grad`` False): the two GEMMs of a
  linear layer's backward, each predicted by the forward model at its own shape.
- matmul (batch b; A of m x k, B of k x n), C = A B: dA = dC B^T is a matmul of m x n by n x k,
  dB = A^T dC one of k x m by m x n (both operands take a gradient).
- memory-bound ops: the forward call's predicted time scaled by the tensors the backward
  kernel moves over those the forward moves (``MEMORY_RATIO``, from PyTorch's derivative
  formulas, tools/autograd/derivatives.yaml).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

# Backward time over forward time of memory-bound ops: tensors read and written by the backward
# over those of the forward (each tensor the size of the output). A unary function reads x and dy
# and writes dx (3 against 2); a product needs one per operand (mul, div, pow: 6 against 3); an
# addition hands dy on to both operands unchanged (no kernel); softmax reads y and dy, writes dx
# (3 against 2); layer norm reads x and dy, writes dx and reduces dgamma and dbeta in a second
# kernel (4 against 2); dropout multiplies dy by the saved mask as the forward multiplied x (1).
MEMORY_RATIO = {"softmax": 1.5, "layernorm": 2.0, "dropout": 1.0}
ELEMENTWISE_RATIO = {"add": 0.0, "addu": 0.0, "mul": 2.0, "mulu": 1.0, "div": 2.0, "divu": 1.0, "pow": 2.0, "powu": 1.5}
UNARY_RATIO = 1.5

Predict = Callable[[pd.DataFrame], np.ndarray]


def _dense(rows: pd.DataFrame, predict: Predict) -> np.ndarray:
    b, fin, fout = (rows[c].to_numpy() for c in ("batch", "in_features", "out_features"))
    weight = predict(rows.assign(batch=fin, in_features=b, out_features=fout, bias=False, activation="none"))
    data = predict(rows.assign(in_features=fout, out_features=fin, bias=False, activation="none"))
    return weight + np.where(rows["input_grad"].to_numpy(bool), data, 0.0)


def _matmul(rows: pd.DataFrame, predict: Predict) -> np.ndarray:
    m, k, n = (rows[c].to_numpy() for c in ("m", "k", "n"))
    return predict(rows.assign(k=n, n=k)) + predict(rows.assign(m=k, k=m, n=n))


def _memory(rows: pd.DataFrame, predict: Predict) -> np.ndarray:
    op = str(rows["op"].iloc[0])
    if op == "elementwise":
        ratio = rows["fn"].map(lambda fn: ELEMENTWISE_RATIO.get(str(fn), UNARY_RATIO)).to_numpy(float)
    else:
        ratio = np.full(len(rows), MEMORY_RATIO[op])
    return ratio * predict(rows) * rows["input_grad"].to_numpy(float)


RULES: dict[str, Callable[[pd.DataFrame, Predict], np.ndarray]] = {
    "dense": _dense, "matmul": _matmul, "elementwise": _memory, "softmax": _memory, "layernorm": _memory,
    "dropout": _memory}


def backward_ms(rows: pd.DataFrame, predict: Predict) -> np.ndarray | None:
    """Backward time (ms) of forward-mode ``rows`` of one op from the forward model ``predict``;
    None where no rule covers the op."""
    rule = RULES.get(str(rows["op"].iloc[0]))
    return None if rule is None else rule(rows, predict)
