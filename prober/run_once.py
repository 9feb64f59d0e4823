"""`prober run-once`: the post-deploy gate.

Journeys run concurrently (at most `defaults.max_concurrency` at once), each its
iterations one after another; the report keeps the config's journey order.

`--wait-ready` first polls the first selected journey's first step, with exponential
backoff (0.25 s doubling to 5 s, plus jitter), until it passes or the time is up — a
deploy that is still rolling out. Not ready in time is a failed gate (exit 1), with
the last failure printed.
"""

from __future__ import annotations

import asyncio
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from prober import eventloop
from prober.config import Journey, ProberConfig
from prober.errors import UsageError
from prober.journey import JourneyRunner
from prober.redaction import redact
from prober.report import (
    JourneyReport,
    Report,
    evaluate_gates,
    render_json,
    render_summary,
    write_junit,
)
from prober.results import RunResult
from prober.wiring import build_runner

__all__ = [
    "NotReady",
    "RunOnceOptions",
    "check_report_path",
    "execute",
    "run_once",
    "select_journeys",
    "wait_until_ready",
]


@dataclass(frozen=True)
class RunOnceOptions:
    journeys: tuple[str, ...] = ()
    iterations: int = 1
    base_url: str | None = None
    json_path: str | None = None
    junit_path: str | None = None
    wait_ready: float | None = None


def select_journeys(config: ProberConfig, names: tuple[str, ...]) -> tuple[Journey, ...]:
    """The named journeys in config order (all when none are named)."""
    known = [journey.name for journey in config.journeys]
    for name in names:
        if name not in known:
            guess = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else f" (known: {', '.join(known)})"
            raise UsageError(f"--journey: unknown journey {name!r}{hint}")
    return tuple(journey for journey in config.journeys if not names or journey.name in names)


def run_once(config: ProberConfig, options: RunOnceOptions, *, out: TextIO, err: TextIO) -> int:
    """Run, print the summary, write the reports; the exit code."""
    journeys = select_journeys(config, options.journeys)
    for flag, path in (("--json", options.json_path), ("--junit", options.junit_path)):
        if path:
            check_report_path(flag, path)
    outcome = eventloop.run(execute(config, journeys, options))
    if isinstance(outcome, NotReady):
        print(redact(outcome.describe()), file=err)
        return 1
    out.write(render_summary(outcome))
    out.flush()
    if options.json_path:
        Path(options.json_path).write_text(render_json(outcome), encoding="utf-8")
    if options.junit_path:
        write_junit(outcome, options.junit_path)
    return 0 if outcome.success else 1


def check_report_path(flag: str, path: str) -> None:
    """A report must be writable where it is asked for, checked before anything runs: a
    failure to write it after the journeys ran would read as a failed journey (exit 1)."""
    target = Path(path)
    directory = target.parent
    if target.is_dir():
        raise UsageError(f"{flag}: cannot write {path}: it is a directory")
    if not directory.is_dir():
        raise UsageError(f"{flag}: cannot write {path}: no directory {directory}")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{flag}: cannot write {path}: permission denied")
    if not target.exists() and not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: cannot write {path}: directory {directory} is not writable")


@dataclass(frozen=True)
class NotReady:
    """`--wait-ready` ran out of time."""

    journey: str
    waited: float
    last: RunResult | None

    def describe(self) -> str:
        detail = ""
        if self.last is not None and self.last.failure is not None:
            failure = self.last.failure
            detail = f": step {self.last.failed_step}: {failure.reason}: {failure.message}"
        return f"prober: {self.journey} not ready after {self.waited:g}s{detail}"


async def execute(
    config: ProberConfig, journeys: tuple[Journey, ...], options: RunOnceOptions
) -> Report | NotReady:
    runner = build_runner(config, base_url=options.base_url)
    if options.wait_ready is not None:
        ready, last = await wait_until_ready(runner, journeys[0], options.wait_ready)
        if not ready:
            return NotReady(journeys[0].name, options.wait_ready, last)
    limit = asyncio.Semaphore(config.defaults.max_concurrency)

    async def iterate(journey: Journey) -> JourneyReport:
        runs = []
        for _ in range(options.iterations):
            async with limit:
                runs.append(await runner.run(journey))
        return JourneyReport(
            journey.name, tuple(runs), evaluate_gates(config.gates_for(journey), runs)
        )

    return Report(tuple(await asyncio.gather(*(iterate(journey) for journey in journeys))))


async def wait_until_ready(
    runner: JourneyRunner, journey: Journey, within: float
) -> tuple[bool, RunResult | None]:
    """Poll the journey's first step until it passes; `(ready, last attempt)`."""
    import tenacity  # only for --wait-ready: ~9 ms to import

    last: RunResult | None = None
    try:
        async for attempt in tenacity.AsyncRetrying(
            stop=tenacity.stop_after_delay(within),
            wait=tenacity.wait_exponential(multiplier=0.25, max=5) + tenacity.wait_random(0, 0.1),
            retry=tenacity.retry_if_result(lambda result: not result.success),
        ):
            with attempt:
                last = await runner.run(journey, steps=1)
            if attempt.retry_state.outcome is not None and not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(last)
    except tenacity.RetryError:
        return False, last
    return last is not None and last.success, last
