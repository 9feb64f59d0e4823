"""prober.logs' batching handler: every line arrives, in order, within FLUSH_DELAY (errors
and a flush at once), in a few writes rather than one per line."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

from prober.logs import FLUSH_DELAY, BatchingStreamHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def logger_with(stream: CountingStream) -> tuple[logging.Logger, BatchingStreamHandler]:
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.Logger("test-batching")
    logger.addHandler(handler)
    return logger, handler


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_lines_arrive_in_order_in_a_few_writes() -> None:
    stream = CountingStream()
    logger, _ = logger_with(stream)
    for i in range(500):
        logger.warning("line %d", i)
    expected = "".join(f"line {i}\n" for i in range(500))
    assert wait_for(lambda: stream.getvalue() == expected)
    assert stream.writes < 50  # one per batch, not one per line


def test_nothing_is_held_longer_than_the_flush_delay() -> None:
    stream = CountingStream()
    logger, _ = logger_with(stream)
    logger.warning("first")
    started = time.monotonic()
    assert wait_for(lambda: stream.getvalue() == "first\n")
    # Generous for a noisy machine, but far from "only when the next line comes".
    assert time.monotonic() - started < FLUSH_DELAY + 5
    logger.warning("second, after a quiet spell")
    assert wait_for(lambda: stream.getvalue() == "first\nsecond, after a quiet spell\n")


def test_errors_and_flush_write_at_once() -> None:
    stream = CountingStream()
    logger, handler = logger_with(stream)
    logger.warning("pending")
    logger.error("boom")
    assert stream.getvalue() == "pending\nboom\n"  # no waiting: the error took it along
    logger.warning("at exit")
    handler.flush()  # what logging.shutdown() does
    assert stream.getvalue().endswith("at exit\n")


def test_a_closed_stream_does_not_kill_the_flusher() -> None:
    stream = CountingStream()
    logger, handler = logger_with(stream)
    logger.warning("before")
    assert wait_for(lambda: stream.getvalue() == "before\n")
    stream.close()
    logger.warning("into the void")
    time.sleep(FLUSH_DELAY * 3)
    flusher = handler._flusher
    assert flusher is not None
    assert flusher.is_alive()
