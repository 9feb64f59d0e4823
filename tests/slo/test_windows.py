"""The window stores (`slo.windows`) against DESIGN's exact definition, by brute force.

The guarantee under test (the module docstring states it): at a tick `now` on the evaluation
grid, after every event fed so far, a `Timeline` counts per indicator

- exactly the events of `(now - w, now]` when `Layout.is_exact(w, now)` (a window the fine
  span answers that is a multiple of the slot: every default window at the default interval);
- otherwise exactly those of `(c⌊(now - w)/c⌋, now]`, c the width of the tier answering w;

whatever the gaps, bursts, late or duplicate events, retention drops and restarts from a
snapshot. `Stream` counts `(now - w, now]` exactly for any `now`.

The property tests run a bounded number of examples; PROBER_PROPERTY_EXAMPLES=2000 hunts longer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo.budget import Counts, SLOError
from slo.windows import (
    COARSE_SECONDS,
    MIN_FINE_SPAN,
    SLOT_CEILING,
    Layout,
    Stream,
    Timeline,
    micros,
    tick_at_or_before,
)
from tests.conftest import hunt_settings

PROPERTY_SETTINGS = hunt_settings(60)

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
T0 = 1_790_000_040.0  # a multiple of 60 s and of every interval below, in 2026
DEFAULT_WINDOWS = [5 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 6 * HOUR, DAY, 3 * DAY, 30 * DAY]
DEFAULT_DECISIONS = [5 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 6 * HOUR, DAY, 3 * DAY]


@dataclass(frozen=True, order=True)
class Run:
    at: int  # µs
    bad: tuple[int, ...]  # the indicators that judged it bad


def naive(runs: list[Run], start: int, end: int, indicator: int) -> tuple[int, int]:
    """DESIGN's definition by brute force: (bad, total) over the runs in (start, end]."""
    inside = [run for run in runs if start < run.at <= end]
    return sum(1 for run in inside if indicator in run.bad), len(inside)


def expected(layout: Layout, runs: list[Run], window: int, now: int, indicator: int) -> tuple:
    """What the module promises for one query at a tick `now` (µs)."""
    if layout.is_exact(window / 1e6, now / 1e6):
        return naive(runs, now - window, now, indicator)
    width = layout.tier_of(window)[0]
    start = layout.origin + (now - window - layout.origin) // width * width
    return naive(runs, start, now, indicator)


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize(
    ("windows", "decisions", "interval", "fine", "span", "coarse"),
    [
        (DEFAULT_WINDOWS, DEFAULT_DECISIONS, 30.0, 30.0, 3 * DAY, COARSE_SECONDS),
        (DEFAULT_WINDOWS, DEFAULT_DECISIONS, 60.0, 60.0, 3 * DAY, COARSE_SECONDS),
        (DEFAULT_WINDOWS, DEFAULT_DECISIONS, 45.0, 15.0, 3 * DAY, COARSE_SECONDS),
        (DEFAULT_WINDOWS, DEFAULT_DECISIONS, 7.0, 1.0, 3 * DAY, COARSE_SECONDS),
        ([HOUR, 3 * DAY], [3 * DAY, 6 * HOUR], 30.0, 30.0, 3 * DAY, 0.0),
        ([5 * MINUTE, HOUR, 30 * DAY], [HOUR, 5 * MINUTE], 30.0, 30.0, MIN_FINE_SPAN, 3600.0),
        ([5 * MINUTE, 30 * DAY], [30 * DAY, 5 * MINUTE], 30.0, 30.0, 30 * DAY, 0.0),
    ],
    ids=["defaults", "1m", "45s", "7s", "3d-slo-3d-policy", "fast-policies", "30d-policy"],
)
def test_layout_plan(
    windows: list[float],
    decisions: list[float],
    interval: float,
    fine: float,
    span: float,
    coarse: float,
) -> None:
    """The slot divides the interval and the fine windows; the fine span covers the policy
    windows (at least 6 h); a coarse tier only where the retention reaches past it."""
    layout = Layout.plan(windows, decisions, interval)
    assert (layout.fine_width, layout.fine_span, layout.coarse_width) == (
        micros(fine),
        micros(span),
        micros(coarse),
    )
    assert layout.retention == micros(max(windows))
    for window in windows:
        assert layout.is_exact(window, T0) == (window <= span)


def test_a_tiny_interval_widens_the_slot_to_the_ceiling() -> None:
    """A 1 ms evaluation interval would make 260 million slots in 3 days: the slot widens to
    the smallest multiple that stays under the ceiling, and windows are then rounded."""
    layout = Layout.plan(DEFAULT_WINDOWS, DEFAULT_DECISIONS, 0.001)
    assert layout.fine_span // layout.fine_width <= SLOT_CEILING
    assert layout.fine_width % micros(0.001) == 0
    assert not layout.is_exact(5 * MINUTE + 0.001, T0)


@pytest.mark.parametrize(
    ("now", "interval", "tick"),
    [(T0 + 29.999, 30.0, T0), (T0 + 30.0, 30.0, T0 + 30), (T0 - 0.000001, 30.0, T0 - 30)],
)
def test_tick_at_or_before(now: float, interval: float, tick: float) -> None:
    assert tick_at_or_before(now, interval) == tick


# --------------------------------------------------------------------------- the property


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Layout, int, list[tuple[int, Run]], list[int], set[int]]:
    """A layout, its indicators, runs as (arrival, run), query ticks and restart ticks.

    Streams span up to three retentions (days 0..90 for a 30-day window), with gaps,
    bursts, duplicates and runs arriving up to two minutes late."""
    interval = draw(st.sampled_from([7.0, 15.0, 30.0, 45.0, 60.0]))
    pool = [5 * MINUTE, 30 * MINUTE, HOUR, 6 * HOUR, DAY, 3 * DAY, 30 * DAY]
    windows = sorted(draw(st.sets(st.sampled_from(pool), min_size=1, max_size=4)))
    decisions = draw(st.sets(st.sampled_from(windows), min_size=1))
    layout = Layout.plan(windows, decisions, interval)
    indicators = draw(st.integers(1, 3))
    retention = layout.retention
    length = draw(st.integers(1, 3)) * retention + draw(st.integers(0, retention))
    rng = random.Random(draw(st.integers(0, 2**32)))
    runs: list[tuple[int, Run]] = []
    at = micros(T0) + rng.randrange(micros(interval))
    end = micros(T0) + length
    cadence = max(length // draw(st.integers(20, 300)), 1)
    while at < end and len(runs) < 400:
        kind = rng.random()
        if kind < 0.05:  # a gap
            at += rng.randrange(retention // 2 + 1)
            continue
        count = rng.randrange(1, 6) if kind < 0.15 else 1  # a burst: several at once
        for _ in range(count):
            bad = tuple(i for i in range(indicators) if rng.random() < 0.3)
            late = rng.choice([0, 0, 0, rng.randrange(micros(120))])
            runs.append((at + late, Run(at, bad)))
        at += rng.randrange(1, 2 * cadence)
    step = micros(interval)
    spread = range(micros(T0), end + 2 * step, step)[
        :: max(len(range(micros(T0), end, step)) // 2000, 1)
    ]
    chosen_set = set(rng.sample(list(spread), k=min(30, len(spread))))
    for _, run in rng.sample(runs, k=min(30, len(runs))):  # where a run enters or leaves
        edge = run.at + rng.choice([0, *windows_us(windows)])
        chosen_set.add(-(-(edge - micros(T0)) // step) * step + micros(T0))
    chosen = sorted(chosen_set)
    restarts = {tick for tick in chosen if rng.random() < 0.15}
    return layout, indicators, sorted(runs, key=lambda pair: pair[0]), chosen, restarts


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_timeline_is_exact_at_the_ticks(
    scenario: tuple[Layout, int, list[tuple[int, Run]], list[int], set[int]],
) -> None:
    """Every window, every indicator, at every sampled tick: what the module promises, also
    across restarts from a snapshot and long after the retention has wrapped around."""
    layout, indicators, runs, ticks, restarts = scenario
    timeline = Timeline(layout, indicators)
    fed: list[Run] = []
    position = 0
    windows = sorted({layout.retention, layout.fine_span, *_some_windows(layout)})
    for tick in ticks:
        while position < len(runs) and runs[position][0] <= tick:
            run = runs[position][1]
            if run.at <= tick:
                timeline.add(run.at / 1e6, run.bad)
                fed.append(run)
            position += 1
        if tick in restarts:
            timeline = Timeline.restore(timeline.snapshot(), layout, indicators)
        many = timeline.bad_and_totals(indicators - 1, windows, tick)  # the daemon's batch
        assert many == [expected(layout, fed, w, tick, indicators - 1) for w in windows]
        for window in windows:
            for indicator in range(indicators):
                got = timeline.bad_and_total(indicator, window, tick)
                assert got == expected(layout, fed, window, tick, indicator), (window, tick)
        timeline.prune(tick / 1e6)


def windows_us(windows: list[float]) -> list[int]:
    return [micros(window) for window in windows]


def _some_windows(layout: Layout) -> list[int]:
    spans = [micros(span) for span in (5 * MINUTE, HOUR, 6 * HOUR, DAY, 3 * DAY, 30 * DAY)]
    return [span for span in spans if span <= layout.retention]


def test_a_window_as_long_as_the_retention_forgets_dropped_runs() -> None:
    """Regression (issue #13, 1): a window as long as the retention counted every run ever
    dropped, whenever its start slot was the first one kept. Here a 3-day window after 9 days
    of one run a minute, all failing for the first 6 hours: from day 3.25 on, none is left."""
    layout = Layout.plan([6 * HOUR, 3 * DAY], [6 * HOUR, 3 * DAY], 30.0)
    timeline = Timeline(layout)
    runs = [(T0 + 60 * i, i < 360) for i in range(9 * 1440)]
    index = 0
    for tick in range(micros(T0), micros(T0 + 9 * DAY), micros(30 * MINUTE)):
        while index < len(runs) and micros(runs[index][0]) <= tick:
            timeline.add(runs[index][0], (0,) if runs[index][1] else ())
            index += 1
        bad, total = timeline.bad_and_total(0, micros(3 * DAY), tick)
        start = tick - micros(3 * DAY)
        assert bad == sum(1 for at, failed in runs if failed and start < micros(at) <= tick)
        assert total == sum(1 for at, _ in runs if start < micros(at) <= tick)


def test_a_busy_slot_widens_its_counter() -> None:
    """More than 255 runs in one slot move that counter to two bytes, counts unchanged."""
    layout = Layout.plan([HOUR], [HOUR], 30.0)
    timeline = Timeline(layout, 2)
    for i in range(1000):
        timeline.add(T0 + 1 + i * 0.01, (1,) if i % 3 == 0 else ())
    assert timeline.counts(HOUR, T0 + 30) == Counts(1000, 0)
    assert timeline.counts(HOUR, T0 + 30, indicator=1) == Counts(666, 334)
    restored = Timeline.restore(timeline.snapshot(), layout, 2)
    assert restored.counts(HOUR, T0 + 30, indicator=1) == Counts(666, 334)


def test_select_keeps_the_chosen_indicators() -> None:
    layout = Layout.plan([HOUR], [HOUR], 30.0)
    timeline = Timeline(layout, 3)
    timeline.add(T0 + 1, (0, 2))
    timeline.add(T0 + 2, (1,))
    picked = timeline.select([2, 1])
    assert picked.counts(HOUR, T0 + 30, 0) == Counts(1, 1)
    assert picked.counts(HOUR, T0 + 30, 1) == Counts(1, 1)
    assert picked.counts(HOUR, T0 + 30, 0) == timeline.counts(HOUR, T0 + 30, 2)


# --------------------------------------------------------------------------- snapshots


def _filled() -> tuple[Layout, bytes]:
    layout = Layout.plan(DEFAULT_WINDOWS, DEFAULT_DECISIONS, 30.0)
    timeline = Timeline(layout, 2)
    for i in range(500):
        timeline.add(T0 + i * 17, (0,) if i % 7 == 0 else ())
    return layout, timeline.snapshot()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda data: data[:10], "shorter than its header"),
        (lambda data: b"XXXX" + data[4:], "bad magic"),
        (lambda data: data[:4] + b"\x09\x00" + data[6:], "version 9"),
        (lambda data: data[:-1], "truncated"),
        (lambda data: data + b"\x00", "length does not match"),
    ],
    ids=["short", "magic", "version", "truncated", "trailing"],
)
def test_a_corrupt_snapshot_is_refused(corrupt: object, message: str) -> None:
    layout, data = _filled()
    with pytest.raises(SLOError, match=message):
        Timeline.restore(corrupt(data), layout, 2)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("layout", "indicators", "message"),
    [
        (Layout.plan(DEFAULT_WINDOWS, DEFAULT_DECISIONS, 45.0), 2, "slices time differently"),
        (Layout.plan(DEFAULT_WINDOWS, DEFAULT_DECISIONS, 30.0), 1, "2 indicators, not 1"),
    ],
    ids=["other-slots", "other-indicators"],
)
def test_a_snapshot_for_other_slots_or_indicators_is_refused(
    layout: Layout, indicators: int, message: str
) -> None:
    _, data = _filled()
    with pytest.raises(SLOError, match=message):
        Timeline.restore(data, layout, indicators)


def test_window_outside_the_retention_is_refused() -> None:
    timeline = Timeline(Layout.plan([HOUR], [HOUR], 30.0))
    with pytest.raises(SLOError, match="at most the retention"):
        timeline.counts(2 * HOUR, T0)


# --------------------------------------------------------------------------- the stream


@PROPERTY_SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), max_size=200),
    st.lists(st.integers(1, 3_000), min_size=1, max_size=4),
    st.lists(st.integers(0, 12_000), min_size=1, max_size=30),
)
def test_property_stream_is_exact_for_any_now(
    events: list[tuple[int, bool]], windows: list[int], nows: list[int]
) -> None:
    """Stream (replay) counts exactly (now - w, now], identical timestamps and window edges
    included, for any increasing `now`."""
    stream = Stream(1)
    runs = sorted(Run(micros(T0 + at / 10), (0,) if bad else ()) for at, bad in events)
    for run in runs:
        stream.add(run.at / 1e6, run.bad)
    for now in sorted(nows):
        moment = micros(T0 + now / 10)
        for window in windows:
            span = micros(window / 10)
            assert stream.bad_and_total(0, span, moment) == naive(runs, moment - span, moment, 0)


def test_batch_counts_tick_by_tick_match_the_definition() -> None:
    """The daemon's path: every tick, every window at once (cursors moving one slot a tick),
    with runs arriving between ticks, against brute force."""
    layout = Layout.plan(DEFAULT_WINDOWS, DEFAULT_DECISIONS, 30.0)
    timeline = Timeline(layout, 2)
    rng = random.Random(11)
    runs = [
        Run(micros(T0) + i * 20_000_000 + 1, tuple(j for j in (0, 1) if rng.random() < 0.1))
        for i in range(4 * 4320)
    ]
    spans = [micros(span) for span in DEFAULT_WINDOWS]
    position = 0
    for tick in range(micros(T0 + 3 * DAY), micros(T0 + 3 * DAY + 3 * HOUR), micros(30.0)):
        while position < len(runs) and runs[position].at <= tick:
            timeline.add(runs[position].at / 1e6, runs[position].bad)
            position += 1
        fed = runs[:position]
        assert timeline.bad_and_totals(1, spans, tick) == [
            expected(layout, fed, span, tick, 1) for span in spans
        ]
