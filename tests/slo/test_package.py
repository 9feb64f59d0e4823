"""`slo` stays a pure core: its public names are pinned and no module reaches for I/O,
the clock or `prober`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import slo

SLO_DIR = Path(slo.__file__).parent
FORBIDDEN = {"prober", "os", "socket", "time", "datetime", "logging", "sqlite3", "random", "asyncio", "threading"}


def test_all_is_sorted_and_complete() -> None:
    """`slo.__all__` is sorted and every name in it exists."""
    assert list(slo.__all__) == sorted(slo.__all__)
    assert all(hasattr(slo, name) for name in slo.__all__)


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
