"""Logs: JSON lines on stdout in the watched API's own shape, or text for people.

JSON fields: `timestamp` (RFC 3339 UTC, milliseconds), `level`, `message`, `service`, and
where they apply `journey`, `step`, `run_id`, `request_id`, `duration_ms`, `status_code`,
`reason` — so one pipeline (Fluentd/Vector → CloudWatch/ELK) takes both the API's logs and
prober's. Every line passes through `redact` as it is written: the one place, so no
caller can forget.

One line per journey run at info (`journey run`), one per step at debug (`step`).

Lines are written in batches by a background thread, at most `FLUSH_DELAY` after they are
logged (errors at once): a write per line was a system call per run, 5% of the CPU per
probe at 1,000 runs/s. So a line reaches the pipe within 100 ms, and a kill -9 can lose the
last 100 ms of lines; a normal exit (logging.shutdown) writes everything.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from prober.redaction import redact
from prober.results import RunResult

__all__ = [
    "FLUSH_DELAY",
    "LOGGER",
    "BatchingStreamHandler",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "log_run",
]

#: The longest a written line waits before its stream is flushed.
FLUSH_DELAY = 0.1

LOGGER = logging.getLogger("prober")
_FIELDS = (
    "journey",
    "step",
    "run_id",
    "request_id",
    "duration_ms",
    "status_code",
    "reason",
    "success",
    "failed_step",
    "lag_affected",
    "errors",
    "path",
    "listen",
    "version",
    "alert",
    "notifier",
    "values",
    "inconclusive",
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        """RFC 3339 UTC with milliseconds; the date part is formatted once a second."""
        second = int(created)
        if second != self._second:
            self._second, self._second_text = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
            )
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            "service": self.service,
            "logger": record.name,
        }
        for name in _FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        extras = " ".join(
            f"{name}={record.__dict__[name]}"
            for name in _FIELDS
            if record.__dict__.get(name) is not None
        )
        text = f"{stamp} {record.levelname.lower():<7} {record.getMessage()}" + (
            f"  {extras}" if extras else ""
        )
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes in batches: lines are kept until a background thread
    writes and flushes them, `FLUSH_DELAY` after the first (errors and exit at once). It
    batches whatever the stream's own buffering (PYTHONUNBUFFERED=1 in the image), and the
    thread sleeps while nothing is logged."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._dirty = threading.Event()
        self._flusher: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record) + self.terminator)
            if record.levelno >= logging.ERROR:
                self.flush()
            elif not self._dirty.is_set():
                if self._flusher is None:
                    self._flusher = threading.Thread(
                        target=self._flush_forever, name="log-flusher", daemon=True
                    )
                    self._flusher.start()
                self._dirty.set()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # an RLock: emit() holds it already
            if self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                self.stream.write(text)
            super().flush()

    def _flush_forever(self) -> None:
        while True:
            self._dirty.wait()
            time.sleep(FLUSH_DELAY)
            self._dirty.clear()  # before flushing: a line logged meanwhile sets it again
            try:
                self.flush()
            except (OSError, ValueError):
                # The stream is gone (closed, or a broken pipe): nobody can read these lines;
                # the next emit() or flush() on the caller's side reports it as logging does.
                with self.lock:  # type: ignore[union-attr]
                    self._pending.clear()


def configure_logging(
    *, service: str, fmt: str = "json", level: str = "info", stream: TextIO | None = None
) -> None:
    # Per-record work no formatter here reads (the logging HOWTO's "Optimization"): the
    # caller's file and line (a stack walk per record), thread, process and multiprocessing
    # names. At a thousand runs a second that was a third of the cost of a log line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchingStreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False


def log_run(result: RunResult, *, lag_affected: bool = False, inconclusive: bool = False) -> None:
    """One info line per run (warning when it failed); one debug line per step."""
    failure = result.failure
    message = "journey run succeeded"
    if failure is not None:
        message = f"journey run failed at step {result.failed_step}: {failure.message}"
    LOGGER.log(
        logging.INFO if result.success else logging.WARNING,
        message,
        extra={
            "journey": result.journey,
            "run_id": result.run_id,
            "success": result.success,
            "duration_ms": round(result.duration_seconds * 1000, 3),
            "failed_step": result.failed_step,
            "reason": failure.reason if failure else None,
            "status_code": result.failed.status_code if result.failed else None,
            "lag_affected": lag_affected or None,
            "inconclusive": inconclusive or None,
        },
    )
    if LOGGER.isEnabledFor(logging.DEBUG):
        for step in result.steps:
            LOGGER.debug(
                step.failure.message if step.failure else "step ok",
                extra={
                    "journey": result.journey,
                    "step": step.name,
                    "run_id": result.run_id,
                    "request_id": step.request_id,
                    "duration_ms": round(step.duration_seconds * 1000, 3),
                    "status_code": step.status_code,
                    "reason": step.failure.reason if step.failure else None,
                },
            )
