"""The MLP regressor's architecture and config (plain torch: loading a trained
model needs nothing more; training lives in costnet.nets.training)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from costnet.errors import CostnetError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


# The bounded head's bounds: the column of each row's bound time (ms), see costnet.features.gpu.
BOUNDS = {"roofline": "t_roofline_ms", "wave": "t_bound_ms"}


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
    head: str = "free"  # free: any time; bounded: never below the roofline bound (costnet.nets.mlp.Bounded)
    bound: str = "roofline"  # the bounded head's bound: roofline (t_roofline_ms) or wave (t_bound_ms)
    device_envelope: bool = False  # bounded head: the network sees devices clipped to the training range
    devices: int = 1  # CPU processes; > 1: data-parallel (DDP over gloo), batch_size is then the global batch
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
        if self.head not in ("free", "bounded"):
            raise CostnetError(f"mlp: head must be 'free' or 'bounded', got {self.head!r}")
        if self.bound not in BOUNDS:
            raise CostnetError(f"mlp: bound must be one of {list(BOUNDS)}, got {self.bound!r}")
        if self.device_envelope and self.head != "bounded":
            raise CostnetError("mlp: device_envelope needs head=bounded, whose bound keeps the true device's "
                               "scale (a free head would predict a faster GPU as the fastest it saw)")
        if self.head == "bounded" and self.relative_to != "none":
            raise CostnetError("mlp: head=bounded already predicts time relative to the roofline; use relative_to=none")
        if not 1 <= self.devices <= self.batch_size:
            raise CostnetError(f"mlp: devices must be >= 1 and at most batch_size ({self.batch_size}), "
                               f"got {self.devices}")
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


class Bounded(nn.Sequential):
    """A physics-bounded head: time is never below the device's roofline bound.

    The input's last column is the row's log roofline bound b (ms); the layers read the
    other columns and give z. The time is ``exp(b) / u + overhead`` with utilization
    ``u = exp(-softplus(z))`` in (0, 1] and a learned per-launch overhead (ms), computed in
    log space: ``log t = logaddexp(b + softplus(z), log_overhead)``.
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        self.log_overhead = nn.Parameter(torch.tensor(-5.0))  # e^-5 ms = 7 us, about one kernel launch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = super().forward(x[:, :-1]).squeeze(-1)
        return torch.logaddexp(x[:, -1] + nn.functional.softplus(z), self.log_overhead).unsqueeze(-1)


def build_mlp(inputs: int, cfg: MLPConfig) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units, then one output (through :class:`Bounded`
    for ``head: bounded``, which then takes one more input, the log bound)."""
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(cfg.depth):
        layers += [nn.Linear(width, cfg.width), ACTIVATIONS[cfg.activation]()]
        if cfg.dropout:
            layers.append(nn.Dropout(cfg.dropout))
        width = cfg.width
    layers.append(nn.Linear(width, 1))
    return Bounded(*layers) if cfg.head == "bounded" else nn.Sequential(*layers)
