"""Helpers shared by the benchmarks: a sample API in its own process, medians."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["median", "sample_api_process"]


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def sample_api_process(*extra: str) -> Iterator[str]:
    """The bundled sample API in a child process (its CPU is not the client's); yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "prober.demo", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "listening on" in line:
                break
        else:
            raise RuntimeError("sample API did not start")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)
