"""GPU spec sheets in NeuSight's format (``devices.json`` or ``devices.parquet`` of the
neusight2025 dataset, Lee et al. ASPLOS 2025; its README, "devices.* columns"): one record per
GPU with ``gpu`` (the name torch reports), ``gpu_short`` and the fields of ``SPEC_FIELDS``.
A GPU costnet has never seen is described by such a file alone; its features come from
costnet.features.hardware.spec_sheet_hardware."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from costnet.errors import CostnetError

# A spec sheet's fields, each a positive number.
SPEC_FIELDS = ("dev_mem_gb", "mem_bw_gbps", "num_sm", "cores_per_sm", "freq_mhz", "fp32_peak_gflops", "l2_cache_mb")


def read_spec_sheets(file: Path) -> pd.DataFrame:
    """The spec sheets of ``file`` (JSON list of records, or Parquet), one row per GPU, checked:
    every field present and a positive number, no GPU twice."""
    try:
        sheets = pd.DataFrame(json.loads(file.read_text())) if file.suffix == ".json" else pd.read_parquet(file)
    except FileNotFoundError as exc:
        raise CostnetError(f"spec-sheet file {str(file)!r} not found") from exc
    except Exception as exc:  # JSON and pyarrow raise several types for damaged files
        raise CostnetError(f"cannot read spec-sheet file {str(file)!r}: {exc}") from exc
    if missing := [c for c in ("gpu", "gpu_short", *SPEC_FIELDS) if c not in sheets]:
        raise CostnetError(f"spec-sheet file {str(file)!r} lacks column(s) {missing}")
    values = sheets[list(SPEC_FIELDS)].apply(pd.to_numeric, errors="coerce")
    if not (good := values > 0).all(axis=None):
        row, field = good.reset_index(drop=True).stack().loc[lambda ok: ~ok].index[0]
        raise CostnetError(f"spec-sheet file {str(file)!r}: {field} of {sheets['gpu'].iloc[row]!r} must be a "
                           f"positive number, got {sheets[field].tolist()[row]!r}")
    if repeated := sorted(set(sheets["gpu"][sheets["gpu"].duplicated()])):
        raise CostnetError(f"spec-sheet file {str(file)!r} has several spec sheets of GPU(s) {repeated}")
    return sheets

