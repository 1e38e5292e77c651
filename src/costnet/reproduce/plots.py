"""Figures of the reproduced experiments."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def save(fig: Figure, path: Path) -> str:
    """Write ``fig`` as a PNG and close it; returns the file name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def scatter_grid(preds: pd.DataFrame, titles: dict[str, str], path: Path) -> str:
    """Predicted against measured time (log-log), one panel per device: ``preds`` has
    device, measured_ms and predicted_ms; ``titles`` gives each panel's title."""
    devices = sorted(preds["device"].unique())
    cols = min(3, len(devices))
    rows = math.ceil(len(devices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.8 * rows), squeeze=False)
    for ax, device in zip(axes.flat, devices):
        part = preds[preds["device"] == device]
        lo = float(part[["measured_ms", "predicted_ms"]].min().min())
        hi = float(part[["measured_ms", "predicted_ms"]].max().max())
        ax.scatter(part["measured_ms"], part["predicted_ms"], s=2, alpha=0.3)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)", title=titles[device])
    for ax in axes.flat[len(devices):]:
        ax.axis("off")
    return save(fig, path)


def bars(ax: Axes, table: pd.DataFrame, ylabel: str, title: str) -> None:
    """Grouped bars: one group per row of ``table`` (its index), one bar per column."""
    width = 0.8 / max(1, len(table.columns))
    x = np.arange(len(table))
    for i, column in enumerate(table.columns):
        ax.bar(x + i * width, table[column].to_numpy(float), width, label=str(column))
    ax.set_xticks(x + width * (len(table.columns) - 1) / 2, [str(i) for i in table.index], rotation=20)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=7)


def panels(count: int, width: float = 5.5, height: float = 4.0) -> tuple[Figure, list[Axes]]:
    """A figure of ``count`` side-by-side axes."""
    fig, axes = plt.subplots(1, count, figsize=(width * count, height), squeeze=False)
    return fig, list(axes[0])
