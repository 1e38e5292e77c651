"""Where a result came from: the git commit, the resolved config and hashes of the input data."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from costnet.config import repo_root
from costnet.errors import CostnetError
from costnet.sources import source

CHUNK = 1 << 20  # bytes read at a time when hashing
PACKAGES = ("costnet", "torch", "lightning", "scikit-learn", "numpy", "pandas")


class MissingInput(CostnetError):
    """An experiment's input data is not there: the experiment is skipped, not failed."""


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """``{"commit": sha or "unknown", "dirty": bool or None}`` of the checkout costnet runs from;
    dirty means uncommitted changes to tracked or untracked files (``git status --porcelain``)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    status = _git("status", "--porcelain")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def data_hashes(files: Iterable[Path]) -> dict[str, Any]:
    """SHA-256 of each input file and one digest over all of them; files are named relative
    to their common directory (``root``), so a copy elsewhere hashes the same."""
    paths = sorted(Path(f).resolve() for f in files)
    if not paths:
        return {"root": None, "files": {}, "sha256": None}
    root = Path(os.path.commonpath([p.parent for p in paths]))
    each = {str(p.relative_to(root)): file_sha256(p) for p in paths}
    combined = hashlib.sha256("".join(f"{h}  {name}\n" for name, h in each.items()).encode()).hexdigest()
    return {"root": str(root), "files": each, "sha256": combined}


def dataset_files(dataset: Mapping[str, Any]) -> list[Path]:
    """The files a costnet-train dataset config (conf/dataset/) reads (its source's
    ``files``). Raises ``MissingInput`` when they are absent."""
    kind = source(dataset)  # an unknown dataset is an error, not missing input
    try:
        return kind.files(dataset)
    except CostnetError as exc:
        raise MissingInput(str(exc)) from exc


def versions() -> dict[str, str]:
    """Python and the versions of the packages that compute the results."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def provenance(config: Mapping[str, Any], inputs: Iterable[Path], code: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """Commit, software versions, the resolved config and the input data's hashes; ``code`` is
    the ``git_state()`` taken when the experiment started (the code that ran), else taken now."""
    return {**(code or git_state()), "versions": versions(), "config": dict(config), "data": data_hashes(inputs)}
