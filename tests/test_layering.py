"""costnet's packages depend on each other one way: no package loop, and no package
imports the command-line layer (README, "Package map")."""

from __future__ import annotations

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

import costnet

ROOT = Path(costnet.__file__).parent


def package_imports() -> dict[str, set[str]]:
    """For each top-level package or module of costnet, the others it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if package == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "costnet" and len(parts) > 1 and parts[1] != package:
                    graph[package].add(parts[1])
    return graph


def test_the_reader_sees_imports() -> None:
    graph = package_imports()
    assert "ops" in graph["features"] and "protocols" in graph["cli"]


def test_no_package_loop() -> None:
    try:
        list(graphlib.TopologicalSorter(package_imports()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"costnet packages import each other in a loop: {exc.args[1]}") from None


def test_only_the_cli_imports_the_cli() -> None:
    upward = sorted(package for package, deps in package_imports().items() if "cli" in deps and package != "cli")
    assert not upward, f"packages importing costnet.cli: {upward}"
