"""Shared fixtures: no network, small fast collection configs."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
from unittest import mock

import pytest
from hydra.core.global_hydra import GlobalHydra

from costnet.config import repo_root

os.environ.setdefault("WANDB_MODE", "disabled")

# Fast settings for collection tests: tiny timing budgets, no peak measurement.
FAST = ["measure_peaks=false", "progress=false", "timing.min_runs=2", "timing.max_runs=3",
        "timing.budget_s=0.005", "timing.warmup_runs=1", "timing.min_block_s=0.0005"]
TINY_DENSE = ["space=dense", "space.params.batch.high=4", "space.params.in_features.high=64",
              "space.params.out_features.high=64"]

# The six-GPU data of Justus et al. 2018, beside the checkout; tests that read it skip without it.
JUSTUS = repo_root().parent / "shared" / "datasets" / "justus2018"
needs_justus = pytest.mark.skipif(not JUSTUS.is_dir(), reason="needs ../shared/datasets/justus2018")


def run_cli(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m costnet.cli.<module> ARGS`` with W&B disabled; output captured as text."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", f"costnet.cli.{module}", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def run_main(module: str, *args: str) -> tuple[int, str]:
    """``costnet.cli.<module>.main()`` in this process with ``args`` as its command line:
    the exit status and what it wrote to stderr (faster than :func:`run_cli`)."""
    stderr = io.StringIO()
    GlobalHydra.instance().clear()
    try:
        with mock.patch.object(sys, "argv", [f"costnet-{module}", *args]), contextlib.redirect_stderr(stderr):
            importlib.import_module(f"costnet.cli.{module}").main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        GlobalHydra.instance().clear()
    return code, stderr.getvalue()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep hardware caches out of the user's home directory."""
    monkeypatch.setenv("COSTNET_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
