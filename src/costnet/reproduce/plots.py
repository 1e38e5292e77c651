"""Figures of the reproduced experiments."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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


def predicted_vs_measured(ax: Axes, groups: dict[str | None, pd.DataFrame], title: str, **marker: Any) -> None:
    """Predicted against measured time (log-log) with the y = x line over all points: one series
    per group (``measured_ms``, ``predicted_ms``), labelled by its key for a legend."""
    both = pd.concat(list(groups.values()))[["measured_ms", "predicted_ms"]]
    lo, hi = float(both.min().min()), float(both.max().max())
    for label, part in groups.items():
        ax.scatter(part["measured_ms"], part["predicted_ms"], label=label, **marker)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)", title=title)


def scatter_grid(preds: pd.DataFrame, titles: dict[str, str], path: Path) -> str:
    """Predicted against measured time (log-log), one panel per device: ``preds`` has
    device, measured_ms and predicted_ms; ``titles`` gives each panel's title."""
    devices = sorted(preds["device"].unique())
    cols = min(3, len(devices))
    rows = math.ceil(len(devices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.8 * rows), squeeze=False)
    for ax, device in zip(axes.flat, devices):
        predicted_vs_measured(ax, {None: preds[preds["device"] == device]}, titles[device], s=2, alpha=0.3)
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
