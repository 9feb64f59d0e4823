"""Which event loop prober runs on.

uvloop (libuv) when it is installed — it is a dependency on Linux and macOS — because the
daemon is CPU-bound on one core at scale and uvloop's transports and scheduling cut the
CPU per probe by a fifth (bench/daemon_throughput.py: 786 → 977 runs/s, schedule lag p99
0.9 s → 23 ms). `PROBER_EVENT_LOOP=asyncio` forces the standard loop (for debugging, or a
platform without uvloop); prober's own code only uses the asyncio API, so both behave alike
and the test suite runs on both (in-process tests on asyncio, subprocess tests on uvloop).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "run"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for the standard loop."""
    if os.environ.get("PROBER_EVENT_LOOP", "auto") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
