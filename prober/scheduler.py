"""When each journey runs: intervals, spread, jitter, overlap, concurrency, rate limits.

- **Spread.** Each journey's runs sit on a grid `offset + k × interval`, where `offset` is a
  deterministic fraction of the interval derived from the journey's name (SHA-256), so 500
  journeys with one interval do not fire in the same millisecond, and a restart keeps
  the same phase. The first run is the next grid point when the interval is at most
  `FIRST_ROUND_SPREAD` (5 s). A longer interval's first run comes sooner than its grid, at
  the same fraction of 5 s, so `/readyz` does not wait a whole interval; the grid takes
  over from the first grid point at least half an interval after it (never a second run
  straight after the first).
- **Jitter.** Each run is delayed by a random `[0, jitter × interval)` on top of its grid time.
- **No overlap.** A journey never overlaps itself: a tick that finds the previous run still
  going is skipped and counted (`on_overrun`).
- **Concurrency.** At most `max_concurrency` runs at once; waiting for a slot shows up as
  schedule lag (`on_lag`: actual start − planned start, jitter included in the plan).
- **Rate limit.** Per host, in `prober.ratelimit` (the journey runner awaits it before
  each request).

Reload (`update`) keeps the schedule and the in-flight run of every journey whose config
did not change; changed journeys restart their schedule (an in-flight run finishes);
removed ones stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prober.config import Defaults, Journey

__all__ = [
    "FIRST_ROUND_SPREAD",
    "Clock",
    "Scheduler",
    "SystemClock",
    "spread_fraction",
]

FIRST_ROUND_SPREAD = 5.0


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The real clock: the event loop's monotonic time and the wall clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


def spread_fraction(name: str) -> float:
    """A stable fraction in [0, 1) from a journey name."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class _Entry:
    journey: Journey
    interval: float
    jitter: float
    grid_offset: float
    timer: asyncio.TimerHandle | None = None  # the next tick
    running: asyncio.Task[None] | None = None


class Scheduler:
    """Runs `run(journey)` for every journey on its schedule until stopped.

    Each journey's next tick is one event-loop timer whose callback starts the run and arms
    the tick after it: no task per journey sleeping between runs, which at 1,000 runs/s
    was a task step, a sleep future and a timer more per run, for nothing.
    """

    def __init__(
        self,
        run: Callable[[Journey], Awaitable[None]],
        *,
        max_concurrency: int,
        clock: Clock | None = None,
        on_lag: Callable[[float], None] = lambda lag: None,
        on_overrun: Callable[[str], None] = lambda name: None,
        rng: random.Random | None = None,
    ) -> None:
        self._run = run
        self._slots = asyncio.Semaphore(max_concurrency)
        self._clock = clock or SystemClock()
        self._on_lag = on_lag
        self._on_overrun = on_overrun
        self._rng = rng or random.Random()
        self._entries: dict[str, _Entry] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Set by update(), which runs in the loop: asyncio.get_running_loop() per tick costs
        # a getpid() system call on Python 3.11.
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def journeys(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def update(self, journeys: Sequence[Journey], defaults: Defaults) -> None:
        """Start, keep, restart or stop journey schedules to match `journeys`."""
        self._loop = asyncio.get_running_loop()
        wanted = {journey.name: journey for journey in journeys}
        for name in list(self._entries):
            entry = self._entries[name]
            journey = wanted.get(name)
            interval = journey.interval_or(defaults) if journey else None
            jitter = journey.jitter_or(defaults) if journey else None
            if journey == entry.journey and (interval, jitter) == (entry.interval, entry.jitter):
                continue
            if entry.timer is not None:
                entry.timer.cancel()
            del self._entries[name]
        for name, journey in wanted.items():
            if name not in self._entries:
                interval = journey.interval_or(defaults)
                fraction = spread_fraction(name)
                entry = _Entry(journey, interval, journey.jitter_or(defaults), fraction * interval)
                self._entries[name] = entry
                now = self._clock.monotonic()
                if interval <= FIRST_ROUND_SPREAD:
                    self._arm_on_grid(entry, math.ceil((now - entry.grid_offset) / interval))
                else:  # sooner than the grid, at the same fraction of FIRST_ROUND_SPREAD
                    self._arm(entry, None, now + fraction * FIRST_ROUND_SPREAD)

    async def stop(self, grace: float) -> bool:
        """Stop scheduling; let in-flight runs finish within `grace` seconds. True if all did."""
        self._stopping = True
        for entry in self._entries.values():
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
        pending = set(self._in_flight)
        if not pending:
            return True
        _, still_running = await asyncio.wait(pending, timeout=grace)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*still_running, return_exceptions=True)
        return not still_running

    def _arm(self, entry: _Entry, index: int | None, planned: float) -> None:
        """Set the entry's timer for its tick planned at `planned` (grid point `index`, or
        None for an early first run), plus this tick's jitter."""
        start_at = planned + self._rng.uniform(0, entry.jitter * entry.interval)
        delay = max(0.0, start_at - self._clock.monotonic())
        assert self._loop is not None
        entry.timer = self._loop.call_later(delay, self._tick, entry, index, planned, start_at)

    def _arm_on_grid(self, entry: _Entry, index: int) -> None:
        self._arm(entry, index, entry.grid_offset + index * entry.interval)

    def _tick(self, entry: _Entry, index: int | None, planned: float, start_at: float) -> None:
        entry.timer = None
        if self._stopping or self._entries.get(entry.journey.name) is not entry:
            return
        if entry.running is not None and not entry.running.done():
            self._on_overrun(entry.journey.name)
        else:
            assert self._loop is not None
            task = self._loop.create_task(self._start(entry.journey, start_at))
            entry.running = task
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        # The next grid point: after this one and after now (skipping any missed ones); after
        # an early first run, at least half an interval after it. Counted in grid indices,
        # not recomputed from float times, which can round back onto the point just used.
        interval, offset = entry.interval, entry.grid_offset
        after_now = math.floor((self._clock.monotonic() - offset) / interval) + 1
        if index is None:
            earliest = math.floor((planned + interval / 2 - offset) / interval) + 1
        else:
            earliest = index + 1
        self._arm_on_grid(entry, max(earliest, after_now))

    async def _start(self, journey: Journey, planned: float) -> None:
        async with self._slots:
            self._on_lag(max(0.0, self._clock.monotonic() - planned))
            with contextlib.suppress(asyncio.CancelledError):
                await self._run(journey)
