"""The architecture is enforced, not hoped for: imports only point down the layers.

See src/perphedge/__init__.py and docs/architecture.md. A module's imports of other perphedge
packages must be in its package's allowed set, and third-party edges (ccxt, sqlite3, plotly,
typer/rich) stay in the one place that owns them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "perphedge"

ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "units": {"errors"},
    "mechanics": {"errors", "units", "mechanics"},
    "strategies": {"errors", "units", "mechanics", "strategies"},
    "venues": {"errors", "units", "mechanics", "venues"},
    "data": {"errors", "units", "mechanics", "venues", "data"},
    "engine": {"errors", "units", "mechanics", "strategies", "data", "engine"},
    "report": {"errors", "units", "mechanics", "engine", "report", "data"},
    "scan": {"errors", "units", "mechanics", "venues", "data", "scan"},
    "keeper": {"errors", "units", "mechanics", "venues", "strategies", "engine", "data", "keeper"},
    "cli": {"errors", "units", "mechanics", "venues", "strategies", "engine", "data", "report", "scan",
            "keeper", "cli"},
}

# third-party module -> the packages allowed to import it
OWNED_IMPORTS: dict[str, set[str]] = {
    "ccxt": {"venues"},
    "sqlite3": {"keeper"},
    "plotly": {"report"},
    "typer": {"cli"},
    "rich": {"cli"},
}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_follow_the_layers(path: Path) -> None:
    layer = _layer(path)
    if layer == "__init__":
        return
    allowed = ALLOWED[layer]
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "perphedge":
            parts = name.split(".")
            if len(parts) == 1:
                continue
            assert parts[1] in allowed, f"{path.relative_to(SRC)} imports {name}: {layer} may not import {parts[1]}"
        elif top in OWNED_IMPORTS:
            assert layer in OWNED_IMPORTS[top], f"{path.relative_to(SRC)} imports {top}; only {OWNED_IMPORTS[top]} may"


def test_mechanics_and_strategies_do_no_io() -> None:
    forbidden = {"os", "pathlib", "sqlite3", "socket", "requests", "ccxt", "time", "datetime", "pandas"}
    for path in _modules():
        if _layer(path) in {"mechanics", "strategies"}:
            for name in _imports(path):
                top = name.split(".")[0]
                assert top not in forbidden, f"{path.relative_to(SRC)} imports {name}: pure layers do no I/O"
