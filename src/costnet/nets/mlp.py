"""The MLP regressor's architecture and config (plain torch: loading a trained
model needs nothing more; training lives in costnet.nets.training)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from costnet.errors import CostnetError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class MLPConfig:
    """Architecture and training of the MLP (see conf/estimator/mlp.yaml)."""

    depth: int = 4
    width: int = 256
    dropout: float = 0.0
    activation: str = "relu"
    loss: str = "mse"  # on standardized log time: mse | l1 | huber; or relative: mean |pred / y - 1|
    lr: float = 2e-3
    weight_decay: float = 1e-5
    schedule: str = "cosine"  # cosine | plateau | none
    batch_size: int = 512
    max_epochs: int = 300
    patience: int = 40  # epochs without validation improvement before stopping
    seed: int = 0
    ensemble: int = 1  # MLPs trained from seeds seed, seed + 1, ...; predictions averaged in log space
    relative_to: str = "none"  # none: regress log time; roofline: log(time / roofline estimate)
    progress: bool = False

    def __post_init__(self) -> None:
        if self.depth < 1 or self.width < 1:
            raise CostnetError(f"mlp: depth and width must be >= 1, got {self.depth}, {self.width}")
        if self.activation not in ACTIVATIONS:
            raise CostnetError(f"mlp: unknown activation {self.activation!r}: choose from {list(ACTIVATIONS)}")
        if self.loss not in LOSSES:
            raise CostnetError(f"mlp: unknown loss {self.loss!r}: choose from {list(LOSSES)}")
        if self.schedule not in ("cosine", "plateau", "none"):
            raise CostnetError(f"mlp: unknown schedule {self.schedule!r}: choose from cosine, plateau, none")
        if self.relative_to not in ("none", "roofline"):
            raise CostnetError(f"mlp: relative_to must be 'none' or 'roofline', got {self.relative_to!r}")
        if self.ensemble < 1:
            raise CostnetError(f"mlp: ensemble must be >= 1, got {self.ensemble}")
        if not 0 <= self.dropout < 1:
            raise CostnetError(f"mlp: dropout must be in [0, 1), got {self.dropout}")


class RelativeError(nn.Module):
    """Mean |pred / y - 1| computed from standardized log times (``scale``: the log-time std)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.expm1((pred - target) * self.scale).abs().mean()


LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": lambda: nn.HuberLoss(delta=0.5), "relative": RelativeError}


def build_mlp(inputs: int, cfg: MLPConfig) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units, then one output."""
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(cfg.depth):
        layers += [nn.Linear(width, cfg.width), ACTIVATIONS[cfg.activation]()]
        if cfg.dropout:
            layers.append(nn.Dropout(cfg.dropout))
        width = cfg.width
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)
