"""A readable summary of a dataset directory (``costnet-data info``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from costnet.data.store import read_hardware, read_table


def flagged(frame: pd.DataFrame) -> pd.Series:
    """Whether each row's timing was disturbed by other work (column ``disturbed``; False where
    unknown: datasets collected before costnet watched for interference)."""
    if "disturbed" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["disturbed"].fillna(False).astype(bool)


def disturbance(frame: pd.DataFrame) -> str:
    """How many timed rows other work disturbed, and how many were timed unwatched."""
    ok = frame[frame["status"] == "ok"]
    known = int(ok["disturbed"].notna().sum()) if "disturbed" in ok else 0
    count = int(flagged(ok).sum())
    line = (f"disturbed: {count} of {len(ok)} timed rows "
            f"({100 * count / known if known else 0:.1f} %) kept samples that other work disturbed")
    if known < len(ok):
        line += f"; {len(ok) - known} rows were collected without interference checks"
    return line


def info(root: Path) -> str:
    """Rows per device, op and mode; time ranges; failures."""
    frame = read_table(root)
    if frame.empty:
        return f"{root}: no rows"
    parts = [f"{root}: {len(frame)} rows in {frame['run_key'].nunique()} run(s), "
             f"{(frame['status'] == 'ok').sum()} ok", disturbance(frame)]
    hardware = read_hardware(root)
    if not hardware.empty and "name" in hardware:
        parts.append("\nhardware\n" + hardware.set_index("hardware_id")[["name"]].to_string())
    counts = frame.pivot_table(index=["hardware_id", "op", "mode"], columns="status",
                               values="row_id", aggfunc="count", fill_value=0)
    parts.append("\nrows per device, op and mode\n" + counts.to_string())
    ok = frame[frame["status"] == "ok"]
    if not ok.empty:
        times = ok.groupby(["op", "mode"])["time_median_ms"].describe(percentiles=[0.5])
        times = times.rename(columns={"50%": "median"})[["count", "min", "median", "mean", "max"]]
        parts.append("\nmedian time per call (ms)\n" + times.to_string(float_format=lambda v: f"{v:.4g}"))
    failed = frame[frame["status"] != "ok"]
    if not failed.empty:
        reasons = failed["error"].str.slice(0, 100).value_counts().head(10)
        parts.append("\nfailures (most common)\n" + reasons.to_string())
    else:
        parts.append("\nfailures: none")
    return "\n".join(parts)
