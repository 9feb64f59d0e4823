"""prober.scheduler on a real event loop with short intervals: the spread first round, the
grid after it, jitter, no overlap, max_concurrency, reload and stop.

Timing assertions leave room for a noisy machine: a run may start late, never early."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from prober import eventloop
from prober import scheduler as scheduler_module
from prober.config import Journey, ProberConfig, parse_config
from prober.scheduler import Scheduler, spread_fraction

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return eventloop.run(coroutine)


def config(
    names: list[str], interval: str = "200ms", jitter: str = "0%", **extra: str
) -> ProberConfig:
    options = "".join(f", {key}: {value}" for key, value in extra.items())
    return parse_config(
        "target: {base_url: 'http://127.0.0.1:1'}\n"
        f"defaults: {{interval: {interval}, jitter: {jitter}{options}}}\n"
        "journeys:\n"
        + "".join(f"  - {{name: {name}, steps: [{{name: s, url: /}}]}}\n" for name in names)
    )


class Recorder:
    """A `run` for the scheduler that records when each journey started and how many of
    its runs (and of all runs) were going at once."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.running: dict[str, int] = defaultdict(int)
        self.most_at_once: dict[str, int] = defaultdict(int)
        self.total_running = 0
        self.most_total = 0

    async def __call__(self, journey: Journey) -> None:
        name = journey.name
        self.starts[name].append(time.monotonic())
        self.running[name] += 1
        self.total_running += 1
        self.most_at_once[name] = max(self.most_at_once[name], self.running[name])
        self.most_total = max(self.most_total, self.total_running)
        try:
            await asyncio.sleep(self.duration)
        finally:
            self.running[name] -= 1
            self.total_running -= 1


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def scheduler(run_journey: Callable[[Journey], Awaitable[None]], **kwargs: Any) -> Scheduler:
    return Scheduler(run_journey, max_concurrency=kwargs.pop("max_concurrency", 100), **kwargs)


def schedule_until(
    cfg: ProberConfig, record: Recorder, done: Callable[[], bool], grace: float = 1.0, **kwargs: Any
) -> float:
    """Schedule `cfg`'s journeys into `record` until `done()`, then stop; when it began."""

    async def main() -> float:
        sched = scheduler(record, **kwargs)
        began = time.monotonic()
        sched.update(cfg.journeys, cfg.defaults)
        await until(done)
        await sched.stop(grace)
        return began

    return run(main())


def each_ran(record: Recorder, names: list[str], times: int) -> Callable[[], bool]:
    return lambda: all(len(record.starts[name]) >= times for name in names)


def test_spread_fraction_is_stable_and_spread() -> None:
    names = [f"journey-{i}" for i in range(500)]
    fractions = [spread_fraction(name) for name in names]
    assert fractions == [spread_fraction(name) for name in names]
    assert all(0 <= fraction < 1 for fraction in fractions)
    # 500 journeys over 100 equal slices of the interval: none holds a crowd.
    slices: dict[int, int] = defaultdict(int)
    for fraction in fractions:
        slices[int(fraction * 100)] += 1
    assert max(slices.values()) <= 15


def test_short_interval_runs_on_its_grid_from_the_first_run() -> None:
    """Interval 0.3 s: every run, the first included, is on the journey's grid
    (offset = fraction × interval), one interval apart."""
    names = [f"j{i}" for i in range(20)]
    cfg = config(names, interval="300ms")
    record = Recorder()
    began = schedule_until(cfg, record, each_ran(record, names, 4))
    for name in names:
        starts = record.starts[name]
        assert starts[0] - began < 0.3 + 0.1
        for start in starts:
            phase = (start - spread_fraction(name) * 0.3) % 0.3
            assert min(phase, 0.3 - phase) < 0.05  # late on a busy machine, never much
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert statistics.median(gaps) == pytest.approx(0.3, abs=0.05)


def test_long_interval_runs_early_first_then_joins_its_grid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An interval longer than the first-round spread: the first run comes at fraction ×
    spread, and the next is the first grid point at least half an interval after it."""
    monkeypatch.setattr(scheduler_module, "FIRST_ROUND_SPREAD", 0.2)
    names = [f"j{i}" for i in range(10)]
    cfg = config(names, interval="500ms")
    record = Recorder()
    began = schedule_until(cfg, record, each_ran(record, names, 3))
    for name in names:
        first, second, third = record.starts[name][:3]
        assert first - began == pytest.approx(spread_fraction(name) * 0.2, abs=0.05)
        assert second - first >= 0.25 - 0.002  # never straight after the first
        phase = (second - spread_fraction(name) * 0.5) % 0.5
        assert min(phase, 0.5 - phase) < 0.05  # on the grid
        assert third - second == pytest.approx(0.5, abs=0.05)


def test_jitter_delays_within_its_share_of_the_interval() -> None:
    """Jitter 50% of 200 ms: each run lands in [grid point, grid point + 100 ms), and the
    runs of one journey spread over that window instead of sharing one offset."""
    names = [f"j{i}" for i in range(10)]
    cfg = config(names, interval="200ms", jitter="50%")
    record = Recorder()
    schedule_until(cfg, record, each_ran(record, names, 5), rng=random.Random(7))
    for name in names:
        grid_offset = spread_fraction(name) * 0.2
        offsets = [(start - grid_offset + 0.01) % 0.2 - 0.01 for start in record.starts[name][:5]]
        # Never early (a loop timer's millisecond aside); late by at most a busy machine's.
        assert all(-0.002 <= offset < 0.1 + 0.05 for offset in offsets)
        assert max(offsets) - min(offsets) > 0.005


def test_a_journey_never_overlaps_itself_and_overruns_are_counted() -> None:
    """Runs that take 2.5 intervals: the ticks that find one going are skipped, counted."""
    cfg = config(["slow"], interval="100ms")
    record = Recorder(duration=0.25)
    overruns: list[str] = []
    schedule_until(cfg, record, each_ran(record, ["slow"], 4), on_overrun=overruns.append)
    assert record.most_at_once["slow"] == 1
    assert set(overruns) == {"slow"}
    assert len(overruns) >= len(record.starts["slow"])  # at least one skip per run


def test_max_concurrency_bounds_runs_at_once_and_waiting_is_lag() -> None:
    names = [f"j{i}" for i in range(12)]
    cfg = config(names, interval="1s")
    record = Recorder(duration=0.5)  # about six due at once for three slots
    lags: list[float] = []
    schedule_until(
        cfg, record, each_ran(record, names, 1), grace=2.0, max_concurrency=3, on_lag=lags.append
    )
    assert record.most_total == 3
    assert max(lags) >= 0.1  # some waited for a slot, and it shows as lag


def test_reload_keeps_unchanged_restarts_changed_and_stops_removed() -> None:
    cfg = config(["kept", "changed", "removed"], interval="200ms")
    new = parse_config(  # "changed" now runs every 100 ms: restarted
        "target: {base_url: 'http://127.0.0.1:1'}\n"
        "defaults: {interval: 200ms, jitter: 0%}\n"
        "journeys:\n"
        "  - {name: kept, steps: [{name: s, url: /}]}\n"
        "  - {name: changed, interval: 100ms, steps: [{name: s, url: /}]}\n"
    )
    record = Recorder()

    async def main() -> tuple[float, float]:
        sched = scheduler(record)
        sched.update(cfg.journeys, cfg.defaults)
        await until(lambda: all(len(record.starts[n]) >= 2 for n in ("kept", "changed", "removed")))
        kept_before = list(record.starts["kept"])
        sched.update(new.journeys, new.defaults)
        assert sched.journeys == ("kept", "changed")
        reloaded = time.monotonic()
        await until(lambda: len(record.starts["kept"]) >= len(kept_before) + 3)
        await until(lambda: len([t for t in record.starts["changed"] if t > reloaded]) >= 5)
        removed_after = [t for t in record.starts["removed"] if t > reloaded + 0.01]
        assert removed_after == []
        await sched.stop(1.0)
        return kept_before[-1], reloaded

    last_before, _ = run(main())
    kept = record.starts["kept"]
    # Unchanged: still on its grid (the reload did not restart its phase).
    after = [t for t in kept if t > last_before]
    assert (after[0] - last_before) == pytest.approx(0.2, abs=0.1)
    changed = record.starts["changed"]
    assert statistics.median([b - a for a, b in itertools.pairwise(changed[-4:])]) == pytest.approx(
        0.1, abs=0.06
    )


def test_stop_drains_in_flight_runs_within_grace() -> None:
    cfg = config(["a", "b"], interval="100ms")

    async def main(duration: float, grace: float) -> tuple[bool, int]:
        record = Recorder(duration=duration)
        sched = scheduler(record)
        sched.update(cfg.journeys, cfg.defaults)
        await until(lambda: record.total_running > 0)
        drained = await sched.stop(grace)
        starts = sum(len(v) for v in record.starts.values())
        await asyncio.sleep(0.3)  # nothing more is started after stop
        assert sum(len(v) for v in record.starts.values()) == starts
        return drained, record.total_running

    assert run(main(duration=0.05, grace=5.0)) == (True, 0)
    assert run(main(duration=30.0, grace=0.1)) == (False, 0)  # cancelled at the grace
