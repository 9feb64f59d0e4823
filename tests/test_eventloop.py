"""The event loop choice: uvloop when installed, the standard loop when asked."""

from __future__ import annotations

import asyncio

import pytest

from prober import eventloop


def test_uvloop_is_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """With uvloop installed (a dependency on Linux) the daemon runs on it."""
    monkeypatch.delenv("PROBER_EVENT_LOOP", raising=False)

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert eventloop.run(loop_module()).startswith("uvloop")


def test_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PROBER_EVENT_LOOP=asyncio` forces the standard loop."""
    monkeypatch.setenv("PROBER_EVENT_LOOP", "asyncio")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert eventloop.run(loop_module()).startswith("asyncio")
