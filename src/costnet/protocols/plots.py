"""Predicted-vs-measured scatter plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def scatter(frame: pd.DataFrame, pred: np.ndarray, title: str, path: Path) -> Path:
    """Log-log scatter of predicted against measured time, one colour per device."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    y = frame["time_median_ms"].to_numpy(float)
    for device in sorted(frame["device"].astype(str).unique()):
        mask = (frame["device"].astype(str) == device).to_numpy()
        ax.scatter(y[mask], pred[mask], s=3, alpha=0.4, label=device)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)", title=title)
    ax.legend(markerscale=4, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
