"""Training the MLP with PyTorch Lightning: early stopping, best-epoch weights, loggers,
and data-parallel training over several CPU processes (DDP, ``devices`` > 1)."""

from __future__ import annotations

import copy
import csv
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from costnet.nets.mlp import LOSSES, MLPConfig, RelativeError
from costnet.tracking import quiet_lightning


def rank_and_size() -> tuple[int, int]:
    """This process's rank and the number of training processes: (0, 1) outside DDP."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class LitRegressor(pl.LightningModule):
    """Regresses standardized log time; logs train and validation losses."""

    def __init__(self, net: nn.Module, cfg: MLPConfig, steps_per_epoch: int, y_scale: float) -> None:
        super().__init__()
        self.net, self.cfg, self.steps_per_epoch = net, cfg, steps_per_epoch
        self.loss = RelativeError(y_scale) if cfg.loss == "relative" else LOSSES[cfg.loss]()

    def __setstate__(self, state: dict[str, Any]) -> None:
        quiet_lightning()  # a process DDP spawned starts with Lightning's console defaults again
        super().__setstate__(state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def on_train_start(self) -> None:
        if self.trainer.world_size > 1:  # spawned with one random state: draw different dropout masks
            torch.manual_seed(self.cfg.seed + self.global_rank)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        loss = self.loss(self(batch[0]), batch[1])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[1]), sync_dist=self._sync)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        pred = self(batch[0])
        # every process scores all validation rows with the same weights: the values agree, the
        # mean over processes (sync_dist) only makes that explicit to Lightning
        self.log("val_loss", self.loss(pred, batch[1]), batch_size=len(batch[1]), sync_dist=self._sync)
        self.log("val_mae_log", (pred - batch[1]).abs().mean(), batch_size=len(batch[1]), sync_dist=self._sync)

    @property
    def _sync(self) -> bool:
        return self.trainer.world_size > 1

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
    """Shuffled mini-batches by tensor indexing (no per-row collation).

    ``shard``: under DDP each process takes its share of every batch. ``batch_size`` stays
    the global batch: all processes draw the same seeded permutation, cut it into the same
    batches, and process r of n takes the r-th of n near-equal slices of each; DDP averages
    the gradients, so a step sees the rows one process would see. Every process runs the
    same number of steps (a last batch of fewer rows than processes is dropped), so no
    all-reduce waits for a process that has run out of batches.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                 shard: bool = False) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
        self.batch_size, self.shuffle, self.shard = batch_size, shuffle, shard
        self.gen = torch.Generator().manual_seed(seed)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for DDP's spawned processes) as numpy arrays: torch would send the tensors
        through shared memory, which fails for tensors made by ``torch.from_numpy`` and for
        the generator's state ("bad value(s) in fds_to_keep")."""
        return {**self.__dict__, "x": self.x.numpy(), "y": self.y.numpy(), "gen": self.gen.get_state().numpy()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        gen = torch.Generator()
        gen.set_state(torch.from_numpy(state["gen"]))
        self.__dict__.update(state, x=torch.from_numpy(state["x"]), y=torch.from_numpy(state["y"]), gen=gen)

    def _batches(self) -> int:
        count, rest = divmod(len(self.y), self.batch_size)
        return count + (rest >= (rank_and_size()[1] if self.shard else 1))

    def __len__(self) -> int:
        return max(1, self._batches())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rank, size = rank_and_size() if self.shard else (0, 1)
        order = torch.randperm(len(self.y), generator=self.gen) if self.shuffle else torch.arange(len(self.y))
        for start in range(0, self._batches() * self.batch_size, self.batch_size):
            idx = order[start:start + self.batch_size]
            if size > 1:
                idx = idx.tensor_split(size)[rank]
            yield self.x[idx], self.y[idx]


class BestWeights(pl.Callback):
    """Keeps the weights of the best validation epoch, in memory, and puts them back in the
    net when training ends; the best loss and the epochs run go into the trainer's
    ``callback_metrics`` (``best_val_loss``, ``epochs``). Under DDP every process holds the
    same weights and validation losses, so all pick the same epoch; Lightning's spawn
    launcher sends process 0's final weights and ``callback_metrics`` back to the caller."""

    def __init__(self) -> None:
        self.best, self.state = float("inf"), None

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        loss = float(trainer.callback_metrics.get("val_loss", float("inf")))
        if loss < self.best and not trainer.sanity_checking:
            self.best, self.state = loss, copy.deepcopy(module.net.state_dict())

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.state is not None:
            module.net.load_state_dict(self.state)
        trainer.callback_metrics["best_val_loss"] = torch.tensor(self.best, dtype=torch.float64)
        trainer.callback_metrics["epochs"] = torch.tensor(trainer.current_epoch)


def strategy(devices: int) -> Any:
    """Lightning's strategy for ``devices`` CPU processes: one process as ever, or DDP over gloo.

    DDP starts its processes with ``spawn`` (``fork`` in an interactive session, where
    spawn cannot import ``__main__``): Lightning's default, ``popen``, runs the command
    line again per process, which breaks under pytest, in notebooks and in any caller that
    is not a training script. Spawned processes get a pickled copy of the trainer, module
    and data; process 0's final weights and ``callback_metrics`` come back through
    Lightning's launcher (a temporary checkpoint file and a queue), which is why
    :class:`BestWeights` restores the best epoch before training ends.
    """
    if devices == 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    interactive = hasattr(sys, "ps1") or bool(sys.flags.interactive)  # as Lightning tells
    return DDPStrategy(process_group_backend="gloo", start_method="fork" if interactive else "spawn")


def train_mlp(net: nn.Module, cfg: MLPConfig, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
              y_val: np.ndarray, loggers: list[Any] | bool = False, y_scale: float = 1.0,
              callbacks: Sequence[pl.Callback] = ()) -> Mapping[str, float]:
    """Fit ``net`` in place on (x, y), early-stopping on (x_val, y_val); restore the best epoch.

    ``y`` is standardized log time; ``y_scale`` (its standard deviation) lets the
    relative-error loss work in milliseconds' ratios. ``callbacks`` join the
    trainer's own (e.g. costnet.sweeps.pruning's Optuna pruning).

    ``cfg.devices`` > 1 trains data-parallel over that many CPU processes (DDP, gloo; see
    :func:`strategy`): ``cfg.batch_size`` is the global batch, shared out by
    :class:`BatchLoader`; every process scores the whole validation set, so early stopping
    and the best epoch agree across processes and with a one-process run up to the order
    of floating-point sums (tests/test_ddp.py).
    """
    train = BatchLoader(x, y, cfg.batch_size, shuffle=True, seed=cfg.seed, shard=True)
    val = BatchLoader(x_val, y_val, 8192, shuffle=False, seed=cfg.seed)
    return fit_net(net, cfg, {"train_dataloaders": train, "val_dataloaders": val}, len(train), loggers, y_scale,
                   callbacks)


def fit_net(net: nn.Module, cfg: MLPConfig, data: Mapping[str, Any], steps_per_epoch: int,
            loggers: list[Any] | bool = False, y_scale: float = 1.0,
            callbacks: Sequence[pl.Callback] = ()) -> Mapping[str, float]:
    """:func:`train_mlp` on any data: ``data`` holds ``Trainer.fit``'s data arguments (training
    and validation dataloaders, or a ``datamodule``: costnet.nets.streaming), and
    ``steps_per_epoch`` the optimizer steps of an epoch (the cosine schedule's period)."""
    quiet_lightning()  # again: importing Lightning set its loggers back to INFO
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    net.train()  # predict() left it in eval mode, which would turn dropout off while training
    module = LitRegressor(net, cfg, steps_per_epoch, y_scale)
    best = BestWeights()
    trainer = pl.Trainer(
        max_epochs=cfg.max_epochs, accelerator="cpu", devices=cfg.devices, strategy=strategy(cfg.devices),
        deterministic=True, logger=loggers,
        callbacks=[best, pl.callbacks.EarlyStopping("val_loss", patience=cfg.patience), *callbacks],
        enable_checkpointing=False, enable_progress_bar=cfg.progress, enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=max(1, steps_per_epoch),
    )
    port = os.environ.get("MASTER_PORT")  # DDP picks a free port and leaves it in os.environ
    csv_logs = [lg.experiment for lg in trainer.loggers if isinstance(lg, pl.loggers.CSVLogger)] \
        if cfg.devices > 1 else []  # made now: made after the fit, they would delete process 0's metrics.csv
    try:
        trainer.fit(module, **data)
    finally:
        if port is None:
            os.environ.pop("MASTER_PORT", None)
    for writer in csv_logs:  # later metrics (costnet.tracking.finish) join the columns process 0 wrote
        if os.path.isfile(writer.metrics_file_path):
            with open(writer.metrics_file_path, newline="") as file:
                writer.metrics_keys = sorted(set(writer.metrics_keys) | set(next(csv.reader(file), [])))
    done = trainer.callback_metrics  # BestWeights put the best epoch's weights back in net
    return {"epochs": int(done.get("epochs", trainer.current_epoch)),
            "best_val_loss": float(done.get("best_val_loss", best.best))}
