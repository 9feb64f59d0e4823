"""The window store (`slo.windows`) against DESIGN's exact definition.

The bound under test, for `now` at or after the newest event (and the latest prune):
- a window up to `exact_horizon` counts exactly the events in `(now - w, now]`;
- a longer one counts exactly the events in `(b⌊(now - w)/b⌋, now]` (its start rounded down
  to a bucket boundary), whichever internal view answers it; so, per component,
  naive(now - w, now] <= counts <= naive(now - w - b, now]: less than one bucket of extra
  history, never a missing event.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slo.budget import Counts, SLOError
from slo.windows import DEFAULT_BUCKET_SECONDS, DEFAULT_EXACT_HORIZON, EventWindow

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
MONTH = 30 * DAY
BUCKET = DEFAULT_BUCKET_SECONDS
T0 = 1_790_000_040.0  # a bucket boundary (divisible by 60), in 2026
POLICY_WINDOWS = [5 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 6 * HOUR, DAY, 3 * DAY, MONTH]

Event = tuple[float, bool]


def naive(events: list[Event], start: float, end: float) -> Counts:
    """DESIGN's definition, by brute force: good and bad events in (start, end]."""
    good = sum(1 for timestamp, ok in events if start < timestamp <= end and ok)
    bad = sum(1 for timestamp, ok in events if start < timestamp <= end and not ok)
    return Counts(good, bad)


def check_bound(store: EventWindow, events: list[Event], window: float, now: float) -> None:
    """Assert the module's stated bound for one query."""
    got = store.counts(window, now)
    exact = naive(events, now - window, now)
    rounded = naive(
        events, store.bucket_seconds * math.floor((now - window) / store.bucket_seconds), now
    )
    widest = naive(events, now - window - store.bucket_seconds, now)
    assert exact.good <= got.good <= widest.good
    assert exact.bad <= got.bad <= widest.bad
    assert got == (exact if window <= store.exact_horizon else rounded)


def edge_windows(
    events: list[Event], edges: list[tuple[int, int]], now: float, retention: float
) -> list[float]:
    """Windows starting within a bucket either side of an event: where rounding shows."""
    starts = [events[index % len(events)][0] + quarters / 4 for index, quarters in edges]
    return [now - start for start in starts if 0 < now - start <= retention]


# (which event, quarter seconds from it): a window start within a bucket of an event.
edges = st.lists(st.tuples(st.integers(0, 10**6), st.integers(-240, 240)), max_size=12)


def fill(store: EventWindow, events: list[Event]) -> float:
    """Add `events` in the given order; returns the newest timestamp."""
    for timestamp, ok in events:
        store.add(timestamp, ok)
    return max(timestamp for timestamp, _ in events)


# Quarter seconds over 30 days minus two buckets (nothing ages out), half of them in the last
# 8 hours where the exact and bucketed views meet; every 4th on a 15-second tick, so that
# events land on bucket boundaries too.
quarter_seconds = st.integers(min_value=0, max_value=int((MONTH - 2 * BUCKET) * 4))
recent_quarter_seconds = st.integers(
    min_value=int((MONTH - 8 * HOUR) * 4), max_value=int((MONTH - 2 * BUCKET) * 4)
)
offsets = st.one_of(
    quarter_seconds, recent_quarter_seconds, quarter_seconds.map(lambda q: q - q % 60)
).map(lambda q: q / 4)
month_events = st.lists(
    st.tuples(offsets.map(lambda o: T0 + o), st.booleans()), min_size=1, max_size=300
)
month_windows = st.lists(
    st.one_of(
        st.sampled_from(POLICY_WINDOWS), st.integers(min_value=300, max_value=int(MONTH)).map(float)
    ),
    min_size=1,
    max_size=12,
)


@PROPERTY_SETTINGS
@given(
    events=month_events,
    windows=month_windows,
    edges=edges,
    lag=st.integers(min_value=0, max_value=480).map(lambda q: q / 4),
    prune=st.booleans(),
    restore=st.booleans(),
)
def test_store_matches_naive_counts_over_a_month(
    events: list[Event],
    windows: list[float],
    edges: list[tuple[int, int]],
    lag: float,
    prune: bool,
    restore: bool,
) -> None:
    """30-day retention, 60 s buckets, 6 h exact: windows 5m..30d within the stated bound."""
    store = EventWindow(MONTH)
    newest = fill(store, events)
    now = newest + lag
    if prune:
        store.prune(now)
    if restore:
        store = EventWindow.restore(store.snapshot(), MONTH)
    for window in windows + edge_windows(events, edges, now, MONTH):
        check_bound(store, events, window, now)


dense_events = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 2 * 7080), st.integers(0, 472).map(lambda n: n * 15 * 2)).map(
            lambda h: T0 + h / 2
        ),
        st.booleans(),
    ),
    min_size=1,
    max_size=400,
)


@PROPERTY_SETTINGS
@given(
    events=dense_events,
    windows=st.lists(st.integers(min_value=1, max_value=7200).map(float), min_size=1, max_size=20),
    edges=edges,
    lag=st.integers(min_value=0, max_value=90).map(float),
)
def test_store_matches_naive_counts_when_dense(
    events: list[Event], windows: list[float], edges: list[tuple[int, int]], lag: float
) -> None:
    """2 h retention, 10 min exact: many events per bucket and block, every window length."""
    store = EventWindow(2 * HOUR, exact_horizon=10 * MINUTE)
    newest = fill(store, events)
    for window in windows + edge_windows(events, edges, newest + lag, 2 * HOUR):
        check_bound(store, events, window, newest + lag)


def test_empty_store_has_no_data() -> None:
    """No events: zero counts, whose error ratio is None (no data never fires)."""
    counts = EventWindow(MONTH).counts(HOUR, T0)
    assert (counts, counts.error_ratio) == (Counts(0, 0), None)


EDGES = [
    # id, window, event offset from now, counted
    ("exact-at-now-counts", HOUR, 0.0, True),
    ("exact-at-window-start-excluded", HOUR, -HOUR, False),
    ("exact-just-inside-start", HOUR, -HOUR + 0.001, True),
    ("exact-after-now-excluded", HOUR, 0.5, False),
    ("bucketed-at-window-start-excluded", DAY, -DAY, False),
    ("bucketed-just-inside-start", DAY, -DAY + 0.25, True),
    ("bucketed-a-bucket-before-start-excluded", DAY, -DAY - BUCKET, False),
]


@pytest.mark.parametrize(
    ("window", "offset", "counted"), [e[1:] for e in EDGES], ids=[e[0] for e in EDGES]
)
def test_window_edges(window: float, offset: float, counted: bool) -> None:
    """(now - w, now]: the start excluded, now included, also when the start is a bucket boundary."""
    store = EventWindow(MONTH)
    now = T0 + 10 * DAY  # a bucket boundary, so day windows start on one too
    store.add(now + offset, False)
    store.add(now, True)  # the newest event: the exact horizon ends 6 h before now
    assert store.counts(window, now).bad == int(counted)


@pytest.mark.parametrize(
    "phase",
    [0.25, 15.0, 30.0, 59.75, 60.0],
    ids=["bucket-start", "quarter", "middle", "bucket-end", "on-boundary"],
)
def test_bucketed_window_transitions_within_two_evaluation_intervals(phase: float) -> None:
    """A failure leaves a 1-day window less than 60 s late: within two 30 s ticks of exact."""
    store = EventWindow(MONTH)
    failure = T0 + 5 * DAY + phase
    store.add(failure, False)
    ticks = [failure + DAY - 90 + 30 * step for step in range(8)]
    exact_leaves = next(t for t in ticks if not failure > t - DAY)
    for tick in ticks:
        store.add(tick, True)  # steady traffic moves the exact horizon along
    store_leaves = next(t for t in ticks if store.counts(DAY, t).bad == 0)
    assert 0 <= store_leaves - exact_leaves <= 2 * 30


def test_window_just_past_the_horizon_never_flips() -> None:
    """A window a little longer than the exact horizon is bucket-aligned at every tick."""
    store = EventWindow(MONTH)
    window = DEFAULT_EXACT_HORIZON + 30
    events: list[Event] = []
    for step in range(2 * 24 * 60 * 4):  # two days at 15 s, one failure in 7
        events.append((T0 + 7.5 + step * 15, step % 7 != 0))
        store.add(*events[-1])
        now = events[-1][0]
        if step % 2 == 0 and now - T0 > window:
            start = BUCKET * math.floor((now - window) / BUCKET)
            assert store.counts(window, now) == naive(events[-int(window // 15) - 8 :], start, now)


def test_windows_up_to_the_horizon_are_exact_out_of_order() -> None:
    """Late events within the exact horizon are counted exactly wherever they land."""
    rng = random.Random(4)
    stamps = [T0 + step * 15 for step in range(1440)]  # 6 h at 15 s
    events = [(stamp, rng.random() < 0.9) for stamp in stamps]
    shuffled = events[:]
    rng.shuffle(shuffled)
    store = EventWindow(MONTH)
    newest = fill(store, shuffled)
    for window in [2 * MINUTE, 5 * MINUTE, HOUR, 6 * HOUR]:
        assert store.counts(window, newest) == naive(events, newest - window, newest)


def test_event_older_than_retention_is_ignored() -> None:
    """An event a retention (rounded down to a bucket) behind the newest is dropped on arrival."""
    store = EventWindow(DAY)
    store.add(T0 + 2 * DAY, True)
    store.add(T0 + DAY - BUCKET, False)  # more than a day and a bucket old: no window needs it
    store.add(T0 + DAY + 1, False)  # inside the day: kept
    assert store.counts(DAY, T0 + 2 * DAY) == Counts(1, 1)


def test_prune_forgets_a_stopped_journey() -> None:
    """After `prune` a retention past the last event, the store is empty and small."""
    store = EventWindow(MONTH)
    for step in range(2000):
        store.add(T0 + step * 15, step % 7 != 0)
    full = len(store.snapshot())
    store.prune(T0 + 2 * MONTH)
    assert store.counts(MONTH, T0 + 2 * MONTH) == Counts(0, 0)
    assert len(store.snapshot()) < full / 100


def test_gap_longer_than_retention_starts_over() -> None:
    """Events resuming after more than a retention count only what is in the window."""
    store = EventWindow(DAY)
    store.add(T0, False)
    store.add(T0 + 40 * DAY, True)
    assert (store.counts(DAY, T0 + 40 * DAY), len(store.snapshot()) < 30_000) == (
        Counts(1, 0),
        True,
    )


@pytest.mark.parametrize("per_bucket", [300, 70_000], ids=["past-one-byte", "past-two-bytes"])
def test_busy_buckets_widen_their_counters(per_bucket: int) -> None:
    """More events per block than a narrow counter holds widens it instead of overflowing."""
    store = EventWindow(DAY, exact_horizon=0.0)
    for index in range(per_bucket):
        store.add(T0 + 1 + index * (50 / per_bucket), index % 3 == 0)
    store.add(T0 + 3 * HOUR, True)  # moves the exact floor past the busy bucket
    expected = Counts(good=(per_bucket + 2) // 3 + 1, bad=per_bucket - (per_bucket + 2) // 3)
    assert store.counts(DAY, T0 + 3 * HOUR) == expected
    restored = EventWindow.restore(store.snapshot(), DAY, exact_horizon=0.0)
    assert restored.counts(DAY, T0 + 3 * HOUR) == expected


def test_late_event_in_an_old_block_updates_later_totals() -> None:
    """An event arriving late into an old bucket is counted by every window that covers it."""
    store = EventWindow(MONTH)
    for step in range(3 * 24 * 60):
        store.add(T0 + step * MINUTE, True)
    newest = T0 + (3 * 24 * 60 - 1) * MINUTE
    store.add(T0 + DAY + 0.5, False)  # two days late, outside the exact horizon
    assert (
        store.counts(2 * DAY, newest).bad,
        store.counts(3 * DAY, newest).bad,
        store.counts(DAY, newest).bad,
    ) == (1, 1, 0)


def test_query_before_the_exact_horizon_rounds_both_ends() -> None:
    """A `now` older than the exact horizon is answered from buckets: (b⌊start/b⌋, b⌊now/b⌋]."""
    store = EventWindow(MONTH)
    events = [(T0 + step * 15, step % 5 != 0) for step in range(4 * 24 * 60 * 4 // 4)]
    newest = fill(store, events)
    now = newest - DAY - 30  # mid-bucket, long before the exact horizon
    start = BUCKET * math.floor((now - HOUR) / BUCKET)
    assert store.counts(HOUR, now) == naive(events, start, BUCKET * math.floor(now / BUCKET))


def test_snapshot_round_trip_keeps_every_answer() -> None:
    """restore(snapshot()) answers every window as the original did."""
    rng = random.Random(7)
    store = EventWindow(MONTH)
    newest = fill(
        store, [(T0 + step * 15 + rng.random(), rng.random() < 0.95) for step in range(20_000)]
    )
    restored = EventWindow.restore(store.snapshot(), MONTH)
    for window in POLICY_WINDOWS:
        assert restored.counts(window, newest) == store.counts(window, newest)
    restored.add(newest + 1, False)
    assert restored.counts(5 * MINUTE, newest + 1).bad == store.counts(5 * MINUTE, newest).bad + 1


def test_restore_with_shorter_retention_drops_older_history() -> None:
    """Restoring into a shorter retention forgets what it no longer needs."""
    store = EventWindow(MONTH)
    fill(store, [(T0, False), (T0 + 10 * DAY, True)])
    restored = EventWindow.restore(store.snapshot(), DAY)
    assert restored.counts(DAY, T0 + 10 * DAY) == Counts(1, 0)


def corrupt(snapshot: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "truncated-header": snapshot[:10],
        "truncated-body": snapshot[:-1],
        "bad-magic": b"XXXX" + snapshot[4:],
        "newer-version": snapshot[:4] + b"\x63\x00" + snapshot[6:],
        "bad-item-size": snapshot[:6] + b"\x03" + snapshot[7:],
    }


CORRUPTIONS = [
    "empty",
    "truncated-header",
    "truncated-body",
    "bad-magic",
    "newer-version",
    "bad-item-size",
]
CORRUPTION_MESSAGES = [
    "shorter than its header",
    "shorter than its header",
    "length does not match",
    "bad magic",
    "version 99",
    "item size",
]


@pytest.mark.parametrize(
    ("case", "message"), list(zip(CORRUPTIONS, CORRUPTION_MESSAGES, strict=True)), ids=CORRUPTIONS
)
def test_unreadable_snapshot_is_an_error(case: str, message: str) -> None:
    """A damaged or foreign snapshot is refused, never half-read."""
    store = EventWindow(DAY)
    fill(store, [(T0, True), (T0 + 60, False)])
    with pytest.raises(SLOError, match=message):
        EventWindow.restore(corrupt(store.snapshot())[case], DAY)


def test_snapshot_with_other_buckets_is_refused() -> None:
    """Counts per minute cannot be re-cut into 30-second buckets."""
    store = EventWindow(DAY)
    store.add(T0, True)
    with pytest.raises(SLOError, match="60-second buckets, not 30"):
        EventWindow.restore(store.snapshot(), DAY, bucket_seconds=30.0)


BAD_STORES = [
    ("zero-retention", {"retention": 0.0}, "retention"),
    ("nan-retention", {"retention": math.nan}, "retention"),
    ("zero-buckets", {"retention": DAY, "bucket_seconds": 0.0}, "bucket_seconds"),
    ("infinite-buckets", {"retention": DAY, "bucket_seconds": math.inf}, "bucket_seconds"),
    ("negative-horizon", {"retention": DAY, "exact_horizon": -1.0}, "exact_horizon"),
]


@pytest.mark.parametrize(
    ("arguments", "message"), [b[1:] for b in BAD_STORES], ids=[b[0] for b in BAD_STORES]
)
def test_bad_store_parameters_are_refused(arguments: dict[str, float], message: str) -> None:
    """Retention, bucket width and horizon must be sensible numbers of seconds."""
    with pytest.raises(SLOError, match=message):
        EventWindow(**arguments)


BAD_CALLS = [
    ("window-longer-than-retention", lambda s: s.counts(DAY + 1, T0), "at most the retention"),
    ("window-zero", lambda s: s.counts(0.0, T0), "window must be positive"),
    ("window-nan", lambda s: s.counts(math.nan, T0), "window must be positive"),
    ("now-nan", lambda s: s.counts(HOUR, math.nan), "now must be"),
    ("timestamp-infinite", lambda s: s.add(math.inf, True), "timestamp"),
    ("prune-nan", lambda s: s.prune(math.nan), "now must be"),
]


@pytest.mark.parametrize(
    ("call", "message"), [b[1:] for b in BAD_CALLS], ids=[b[0] for b in BAD_CALLS]
)
def test_bad_calls_are_refused(call: object, message: str) -> None:
    """A window the store was not sized for, or a non-finite time, is the caller's mistake."""
    store = EventWindow(DAY)
    assert callable(call)
    with pytest.raises(SLOError, match=message):
        call(store)


def test_defaults_are_documented_values() -> None:
    """60 s buckets (two 30 s ticks) and a 6 h exact horizon (the longest short window)."""
    store = EventWindow(MONTH)
    assert (
        (store.retention, store.bucket_seconds, store.exact_horizon)
        == (MONTH, 60.0, 6 * HOUR)
        == (MONTH, BUCKET, DEFAULT_EXACT_HORIZON)
    )


def test_stream_window_matches_naive_counts() -> None:
    """StreamWindow (replay) counts exactly DESIGN's (t - w, t] for every window, as time moves on."""
    import random

    from slo.windows import StreamWindow

    rng = random.Random(3)
    events = sorted((rng.uniform(0, 10_000), rng.random() > 0.2) for _ in range(2_000))
    stream = StreamWindow()
    position = 0
    for now in range(0, 10_001, 37):
        while position < len(events) and events[position][0] <= now:
            stream.add(*events[position])
            position += 1
        for window in (60.0, 300.0, 3600.0, 9000.0):
            inside = [good for at, good in events if now - window < at <= now]
            counts = stream.counts(window, now)
            assert (counts.good, counts.bad) == (inside.count(True), inside.count(False))
