"""Training the MLP with PyTorch Lightning: early stopping, best-epoch weights, loggers."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from costnet.nets.mlp import LOSSES, MLPConfig, RelativeError
from costnet.tracking import quiet_lightning


class LitRegressor(pl.LightningModule):
    """Regresses standardized log time; logs train and validation losses."""

    def __init__(self, net: nn.Module, cfg: MLPConfig, steps_per_epoch: int, y_scale: float) -> None:
        super().__init__()
        self.net, self.cfg, self.steps_per_epoch = net, cfg, steps_per_epoch
        self.loss = RelativeError(y_scale) if cfg.loss == "relative" else LOSSES[cfg.loss]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        loss = self.loss(self(batch[0]), batch[1])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[1]))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        pred = self(batch[0])
        self.log("val_loss", self.loss(pred, batch[1]), batch_size=len(batch[1]))
        self.log("val_mae_log", (pred - batch[1]).abs().mean(), batch_size=len(batch[1]))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        if self.cfg.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.cfg.max_epochs * self.steps_per_epoch)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if self.cfg.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=10)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}
        return opt


class BatchLoader:
    """Shuffled mini-batches by tensor indexing (no per-row collation)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
        self.batch_size, self.shuffle = batch_size, shuffle
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return max(1, -(-len(self.y) // self.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.y), generator=self.gen) if self.shuffle else torch.arange(len(self.y))
        for start in range(0, len(self.y), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx], self.y[idx]


class BestWeights(pl.Callback):
    """Keeps the weights of the best validation epoch, in memory."""

    def __init__(self) -> None:
        self.best, self.state = float("inf"), None

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        loss = float(trainer.callback_metrics.get("val_loss", float("inf")))
        if loss < self.best and not trainer.sanity_checking:
            self.best, self.state = loss, copy.deepcopy(module.net.state_dict())


def train_mlp(net: nn.Module, cfg: MLPConfig, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
              y_val: np.ndarray, loggers: list[Any] | bool = False, y_scale: float = 1.0,
              callbacks: Sequence[pl.Callback] = ()) -> Mapping[str, float]:
    """Fit ``net`` in place on (x, y), early-stopping on (x_val, y_val); restore the best epoch.

    ``y`` is standardized log time; ``y_scale`` (its standard deviation) lets the
    relative-error loss work in milliseconds' ratios. ``callbacks`` join the
    trainer's own (e.g. costnet.sweeps.pruning's Optuna pruning).
    """
    quiet_lightning()  # again: importing Lightning set its loggers back to INFO
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    net.train()  # predict() left it in eval mode, which would turn dropout off while training
    train = BatchLoader(x, y, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val = BatchLoader(x_val, y_val, 8192, shuffle=False, seed=cfg.seed)
    module = LitRegressor(net, cfg, len(train), y_scale)
    best = BestWeights()
    trainer = pl.Trainer(
        max_epochs=cfg.max_epochs, accelerator="cpu", devices=1, deterministic=True, logger=loggers,
        callbacks=[best, pl.callbacks.EarlyStopping("val_loss", patience=cfg.patience), *callbacks],
        enable_checkpointing=False, enable_progress_bar=cfg.progress, enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=max(1, len(train)),
    )
    trainer.fit(module, train, val)
    if best.state is not None:
        net.load_state_dict(best.state)
    return {"epochs": trainer.current_epoch, "best_val_loss": best.best}
