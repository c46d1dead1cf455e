"""The packages form layers: each may import only the ones listed before it (no cycles, no upward arrows)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["common", "forms", "warehouse", "sync", "fakes", "amina"]
ALLOWED = {layer: set(LAYERS[: i + 1]) for i, layer in enumerate(LAYERS)}
ALLOWED["fakes"] -= {"warehouse", "sync"}  # test doubles stand beside the sync, never on it
ALLOWED["amina"].add("scheduler")  # `amina schedule` runs scheduler.py, which uses amina's config and jobs


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & {*LAYERS, "scheduler", "bench", "tests"}


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down(layer: str) -> None:
    wrong = {str(p.relative_to(ROOT)): sorted(imported_packages(p) - ALLOWED[layer])
             for p in (ROOT / layer).rglob("*.py")}
    assert {k: v for k, v in wrong.items() if v} == {}


def modules_imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


def test_cli_and_demo_do_not_import_each_other() -> None:
    assert "amina.cli" not in modules_imported(ROOT / "amina" / "demo.py")
    assert "amina.cli" not in modules_imported(ROOT / "amina" / "show.py")
