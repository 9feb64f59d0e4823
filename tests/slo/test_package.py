"""`slo` stays a pure core: its public names are pinned and no module reaches for I/O,
the clock or `prober`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import slo

SLO_DIR = Path(slo.__file__).parent
FORBIDDEN = {
    "prober",
    "os",
    "socket",
    "time",
    "datetime",
    "logging",
    "sqlite3",
    "random",
    "asyncio",
    "threading",
}


def test_all_is_unique_and_complete() -> None:
    """`slo.__all__` (kept sorted by ruff's RUF022) names each public name once, and each exists."""
    assert len(slo.__all__) == len(set(slo.__all__))
    assert all(hasattr(slo, name) for name in slo.__all__)
    modules = (
        "alerting",
        "budget",
        "dashboard",
        "engine",
        "policies",
        "promrules",
        "rules",
        "windows",
    )
    public = {name for module in modules for name in getattr(slo, module).__all__}
    assert set(slo.__all__) == public


@pytest.mark.parametrize("module", sorted(path.name for path in SLO_DIR.glob("*.py")))
def test_module_is_pure(module: str) -> None:
    """No slo module imports prober, the clock, the filesystem or the network."""
    tree = ast.parse((SLO_DIR / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported & FORBIDDEN == set()
