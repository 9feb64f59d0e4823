"""Quantile sketches: LogSketch's 1% relative-error guarantee against exact nearest-rank
percentiles, exact merging and counting, and WindowedSketch's slot-based sliding windows."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.sketch import (
    DEFAULT_RELATIVE_ACCURACY,
    DEFAULT_TIERS,
    MIN_INDEXABLE_VALUE,
    LogSketch,
    TieredSketch,
    WindowedSketch,
)

QS = (0.5, 0.9, 0.95, 0.99)
EPSILON = 1e-12  # float rounding on bucket boundaries

latencies = st.lists(
    st.floats(min_value=1e-4, max_value=1e3, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=2000,
)


def nearest_rank(values: list[float], q: float) -> float:
    """The exact percentile the sketch approximates: sorted(values)[max(1, ceil(q*n)) - 1]."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def sketch_of(
    values: list[float], relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
) -> LogSketch:
    sketch = LogSketch(relative_accuracy)
    for value in values:
        sketch.add(value)
    return sketch


def within(actual: float | None, exact: float, accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> bool:
    return actual is not None and abs(actual - exact) <= accuracy * exact + EPSILON


# --- LogSketch: validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [-1.0, -1e-12, math.nan, math.inf, -math.inf],
    ids=["negative", "tiny-negative", "nan", "inf", "minus-inf"],
)
def test_add_rejects_invalid_values(value: float) -> None:
    """Negative, NaN and infinite values raise ValueError and leave the sketch unchanged."""
    sketch = LogSketch()
    with pytest.raises(ValueError, match="finite and >= 0"):
        sketch.add(value)
    assert (sketch.count, sketch.sum, sketch.quantile(0.5)) == (0, 0.0, None)


@pytest.mark.parametrize("count", [-1, -100], ids=["minus-one", "minus-hundred"])
def test_add_rejects_negative_count(count: int) -> None:
    """A negative count raises ValueError."""
    with pytest.raises(ValueError, match="count must be"):
        LogSketch().add(1.0, count)


@pytest.mark.parametrize(
    "accuracy",
    [0.0, 1.0, -0.01, 1.5, math.nan],
    ids=["zero", "one", "negative", "above-one", "nan"],
)
def test_rejects_invalid_relative_accuracy(accuracy: float) -> None:
    """The relative accuracy must lie strictly between 0 and 1."""
    with pytest.raises(ValueError, match="relative_accuracy"):
        LogSketch(accuracy)


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan], ids=["below-zero", "above-one", "nan"])
def test_quantile_rejects_q_outside_unit_interval(q: float) -> None:
    """q outside [0, 1] raises ValueError, even on an empty sketch."""
    with pytest.raises(ValueError, match=r"quantile must be in \[0, 1\]"):
        LogSketch().quantile(q)


# --- LogSketch: behaviour -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([0.0, 0.0, 5e-10, 1.0], 0.5, 0.0),
        ([0.0, 0.0, 5e-10, 1.0], 0.75, 0.0),
        ([0.0, 0.0, 5e-10, 1.0], 1.0, 1.0),
        ([5e-10, 2e-10, 1.0, 1.0], 0.5, 2e-10),
        ([-0.0, 2.0], 0.0, 0.0),
        ([0.0], 0.99, 0.0),
    ],
    ids=[
        "median-zero",
        "p75-sub-nanosecond",
        "max-exact",
        "clamped-to-min",
        "minus-zero",
        "only-zero",
    ],
)
def test_zero_bucket(values: list[float], q: float, expected: float) -> None:
    """Zero and values below MIN_INDEXABLE_VALUE share a zero bucket answered by the exact min."""
    sketch = sketch_of(values)
    result = sketch.quantile(q)
    assert result is not None
    assert (result, math.copysign(1.0, result)) == (expected, 1.0)
    assert sketch.count == len(values)
    assert sketch.bucket_count == len({v for v in values if v >= MIN_INDEXABLE_VALUE})


def test_empty_sketch() -> None:
    """An empty sketch has no quantiles, no min or max, count 0 and sum 0."""
    sketch = LogSketch()
    assert [sketch.quantile(q) for q in (0.0, *QS, 1.0)] == [None] * 6
    assert (sketch.count, sketch.sum, sketch.min, sketch.max) == (0, 0.0, None, None)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([0.3, 0.1, 0.2], 0.0, 0.1),
        ([0.3, 0.1, 0.2], 1.0, 0.3),
        ([7.25], 0.5, 7.25),
        ([1.0, 123.456], 1.0, 123.456),
        ([0.0123, 5.0], 0.5, 0.0123),
    ],
    ids=["q0-min", "q1-max", "single-value", "two-values-max", "rank-one-is-min"],
)
def test_extreme_ranks_are_exact(values: list[float], q: float, expected: float) -> None:
    """Rank 1 returns the exact min and rank n the exact max."""
    assert sketch_of(values).quantile(q) == expected


@pytest.mark.parametrize(
    ("values", "q"),
    [
        ([float(i) for i in range(1, 101)], 0.5),
        ([float(i) for i in range(1, 101)], 0.9),
        ([float(i) for i in range(1, 101)], 0.99),
        ([0.001 * 1.1**i for i in range(200)], 0.95),
        ([0.2] * 99 + [30.0], 0.99),
        ([0.2] * 98 + [30.0] * 2, 0.99),
        ([1e-4, 1e3] * 50, 0.5),
    ],
    ids=[
        "linear-p50",
        "linear-p90",
        "linear-p99",
        "geometric-p95",
        "outlier-above-p99",
        "outliers-at-p99",
        "bimodal-p50",
    ],
)
def test_quantile_within_relative_accuracy(values: list[float], q: float) -> None:
    """Known distributions: the answer is within 1% of the exact nearest-rank value."""
    assert within(sketch_of(values).quantile(q), nearest_rank(values, q))


@pytest.mark.parametrize(
    ("value", "count"),
    [(0.25, 3), (0.0, 2), (17.0, 1000), (0.5, 0)],
    ids=["three", "zero-bucket", "thousand", "count-zero-is-noop"],
)
def test_add_with_count_equals_repeated_adds(value: float, count: int) -> None:
    """add(v, count=k) is the same as k separate add(v)."""
    batched = sketch_of([1.0, 2.0])
    batched.add(value, count)
    repeated = sketch_of([1.0, 2.0] + [value] * count)
    assert batched.count == repeated.count == 2 + count
    assert batched.sum == pytest.approx(repeated.sum)
    assert [batched.quantile(q) for q in QS] == [repeated.quantile(q) for q in QS]


@pytest.mark.parametrize(
    ("first", "second"),
    [(0.01, 0.02), (0.01, 0.010000001)],
    ids=["double", "almost-equal"],
)
def test_merge_rejects_different_accuracy(first: float, second: float) -> None:
    """Sketches of different relative accuracy cannot be merged."""
    with pytest.raises(ValueError, match="different relative accuracy"):
        LogSketch(first).merge(LogSketch(second))


@pytest.mark.parametrize(
    "values",
    [[0.5, 1.0, 2.0], [0.0, 3.0], []],
    ids=["positive", "with-zero", "empty"],
)
def test_merge_with_itself_doubles_counts(values: list[float]) -> None:
    """merge(self) counts every value twice, like a sketch of values + values."""
    sketch = sketch_of(values)
    sketch.merge(sketch)
    doubled = sketch_of(values + values)
    assert sketch.count == doubled.count == 2 * len(values)
    assert [sketch.quantile(q) for q in QS] == [doubled.quantile(q) for q in QS]


@pytest.mark.parametrize(
    ("values", "extra"),
    [([0.1, 0.2, 0.3], 50.0), ([], 1.0)],
    ids=["non-empty", "empty"],
)
def test_copy_is_independent(values: list[float], extra: float) -> None:
    """Adding to a copy leaves the original unchanged, and vice versa."""
    original = sketch_of(values)
    clone = original.copy()
    clone.add(extra)
    assert (original.count, clone.count) == (len(values), len(values) + 1)
    assert original.max == (max(values) if values else None)
    assert clone.max == extra


@pytest.mark.parametrize(
    ("values", "expected_sum", "expected_min", "expected_max"),
    [([0.5, 0.25, 2.0], 2.75, 0.25, 2.0), ([0.0, 1e-12], 1e-12, 0.0, 1e-12)],
    ids=["positive", "zero-bucket"],
)
def test_sum_min_max_are_exact(
    values: list[float], expected_sum: float, expected_min: float, expected_max: float
) -> None:
    """sum, min and max are tracked exactly."""
    sketch = sketch_of(values)
    assert (sketch.sum, sketch.min, sketch.max) == (expected_sum, expected_min, expected_max)


@pytest.mark.parametrize(
    ("values", "qs"),
    [([0.1, 0.2, 0.3, 0.4], (0.99, 0.5, 0.5, 0.0)), ([0.0, 0.0, 2.0, 3.0], (1.0, 0.25, 0.75))],
    ids=["unordered-with-repeats", "zero-bucket"],
)
def test_quantiles_matches_quantile(values: list[float], qs: tuple[float, ...]) -> None:
    """quantiles(qs) answers like quantile(q) for each q, in the order given."""
    sketch = sketch_of(values)
    assert sketch.quantiles(qs) == [sketch.quantile(q) for q in qs]


# --- LogSketch: properties ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(values=latencies, q=st.sampled_from(QS))
def test_property_quantile_within_one_percent(values: list[float], q: float) -> None:
    """For any positive values, quantile(q) is within 1% of the exact nearest-rank value."""
    exact = nearest_rank(values, q)
    result = sketch_of(values).quantile(q)
    assert result is not None
    assert abs(result - exact) <= 0.01 * exact + EPSILON


@settings(max_examples=200, deadline=None)
@given(
    values=latencies,
    accuracy=st.sampled_from([0.001, 0.005, 0.02, 0.05]),
    q=st.floats(min_value=0.0, max_value=1.0),
)
def test_property_other_accuracies(values: list[float], accuracy: float, q: float) -> None:
    """The guarantee holds for any relative accuracy and any q in [0, 1]."""
    exact = nearest_rank(values, q)
    assert within(sketch_of(values, accuracy).quantile(q), exact, accuracy)


@settings(max_examples=200, deadline=None)
@given(first=latencies, second=latencies)
def test_property_merge_equals_single_sketch(first: list[float], second: list[float]) -> None:
    """merge(a, b) answers exactly like one sketch of a + b."""
    merged = sketch_of(first)
    merged.merge(sketch_of(second))
    single = sketch_of(first + second)
    assert merged.count == single.count == len(first) + len(second)
    assert merged.quantiles(QS) == single.quantiles(QS)
    assert (merged.min, merged.max) == (single.min, single.max)
    assert merged.sum == pytest.approx(single.sum)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(min_value=0.0, max_value=1e6), max_size=2000))
def test_property_count_is_exact(values: list[float]) -> None:
    """count equals the number of values added, zeros included."""
    assert sketch_of(values).count == len(values)


# --- WindowedSketch -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"windows": {}}, "at least one window"),
        ({"windows": {"5m": 0.0}}, "at least the resolution"),
        ({"windows": {"5m": -300.0}}, "at least the resolution"),
        ({"windows": {"5s": 5.0}, "resolution": 10.0}, "at least the resolution"),
        ({"windows": {"x": math.inf}}, "at least the resolution"),
        ({"resolution": 0.0}, "resolution must be"),
        ({"resolution": math.nan}, "resolution must be"),
        ({"relative_accuracy": 0.0}, "relative_accuracy"),
    ],
    ids=[
        "no-windows",
        "zero-width",
        "negative-width",
        "narrower-than-resolution",
        "infinite",
        "zero-resolution",
        "nan-resolution",
        "bad-accuracy",
    ],
)
def test_windowed_rejects_invalid_configuration(kwargs: dict[str, object], match: str) -> None:
    """Invalid windows, resolution or accuracy raise ValueError at construction."""
    with pytest.raises(ValueError, match=match):
        WindowedSketch(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "exception"),
    [
        (lambda w: w.add(1.0, math.nan), ValueError),
        (lambda w: w.add(1.0, math.inf), ValueError),
        (lambda w: w.add(-1.0, 0.0), ValueError),
        (lambda w: w.quantiles(math.nan), ValueError),
        (lambda w: w.quantiles(0.0, (1.5,)), ValueError),
        (lambda w: w.count("15m", 0.0), KeyError),
    ],
    ids=["nan-now", "inf-now", "negative-value", "nan-query", "bad-q", "unknown-window"],
)
def test_windowed_rejects_invalid_calls(
    call: Callable[[WindowedSketch], object], exception: type[Exception]
) -> None:
    """Invalid times, values, quantiles and window names raise; no slot is created."""
    windowed = WindowedSketch()
    with pytest.raises(exception):
        call(windowed)
    assert windowed.slot_count == 0


@pytest.mark.parametrize(
    ("add_times", "now", "expected_5m", "expected_1h"),
    [
        ([0.0], 0.0, 1, 1),
        ([0.0], 299.0, 1, 1),
        ([0.0], 300.0, 0, 1),
        ([5.0], 300.0, 0, 1),
        ([10.0], 300.0, 1, 1),
        ([0.0], 3599.0, 0, 1),
        ([0.0], 3600.0, 0, 0),
        ([0.0, 100.0, 250.0, 3000.0, 3550.0], 3600.0, 1, 4),
        ([1000.0, 1200.0, 1290.0, 1300.0], 1300.0, 3, 4),
        ([], 1000.0, 0, 0),
    ],
    ids=[
        "same-slot",
        "just-inside-5m",
        "5m-edge-excludes-slot",
        "same-slot-as-edge",
        "next-slot-included",
        "just-inside-1h",
        "1h-edge",
        "mixed-ages",
        "recent-burst",
        "nothing-added",
    ],
)
def test_window_membership(
    add_times: list[float], now: float, expected_5m: int, expected_1h: int
) -> None:
    """A window of w at `now` keeps slots after floor((now - w) / 10): older values excluded."""
    windowed = WindowedSketch()
    for t in add_times:
        windowed.add(0.1, t)
    assert (windowed.count("5m", now), windowed.count("1h", now)) == (expected_5m, expected_1h)
    summary = windowed.quantiles(now)
    assert (summary["5m"][0.5] is None, summary["1h"][0.5] is None) == (
        expected_5m == 0,
        expected_1h == 0,
    )


@pytest.mark.parametrize(
    ("old_value", "recent_value", "now"),
    [(1.0, 100.0, 3000.0), (0.05, 0.005, 7200.0)],
    ids=["slow-recently", "fast-recently"],
)
def test_5m_and_1h_windows_differ(old_value: float, recent_value: float, now: float) -> None:
    """Values 10 to 50 minutes old are in the 1h window only; the last 4 minutes are in both."""
    windowed = WindowedSketch()
    for t in range(int(now) - 3000, int(now) - 600, 10):
        windowed.add(old_value, float(t))
    for t in range(int(now) - 240, int(now), 10):
        windowed.add(recent_value, float(t))
    summary = windowed.quantiles(now)
    assert within(summary["5m"][0.5], recent_value)
    assert within(summary["5m"][0.99], recent_value)
    assert within(summary["1h"][0.5], old_value)
    assert within(summary["1h"][0.99], max(old_value, recent_value))
    assert (windowed.count("5m", now), windowed.count("1h", now)) == (24, 264)


@pytest.mark.parametrize(
    ("windows", "resolution", "duration", "expected_max"),
    [
        ({"5m": 300.0, "1h": 3600.0}, 10.0, 3 * 3600.0, 361),
        ({"5m": 300.0}, 10.0, 3600.0, 31),
        ({"95s": 95.0}, 10.0, 1000.0, 11),
        ({"1m": 60.0}, 0.5, 200.0, 121),
    ],
    ids=["defaults", "5m-only", "non-multiple-width", "fine-resolution"],
)
def test_slot_pruning_bounds_memory(
    windows: dict[str, float], resolution: float, duration: float, expected_max: int
) -> None:
    """However long it runs, only ceil(longest / resolution) + 1 slots are kept."""
    windowed = WindowedSketch(windows, resolution)
    assert windowed.max_slots == expected_max
    t = 0.0
    while t < duration:
        windowed.add(0.2, t)
        assert windowed.slot_count <= expected_max
        t += resolution / 2
    assert windowed.slot_count == expected_max
    longest = max(windows, key=windows.__getitem__)
    assert windowed.count(longest, t) == pytest.approx(2 * windows[longest] / resolution, abs=2)


@pytest.mark.parametrize(
    ("add_times", "query_now", "expected_5m_at_latest"),
    [
        ([1000.0, 500.0], 1000.0, 2),
        ([1000.0, 999.0, 995.0], 1000.0, 3),
        ([1000.0], 500.0, 1),
        ([1000.0, -1e9], 1000.0, 2),
    ],
    ids=["big-step-back", "small-step-back", "query-in-the-past", "far-past"],
)
def test_now_going_backwards(
    add_times: list[float], query_now: float, expected_5m_at_latest: int
) -> None:
    """An older `now` counts in the newest slot, and a query with an older `now` answers as of it."""
    windowed = WindowedSketch()
    for t in add_times:
        windowed.add(0.1, t)
    assert windowed.slot_count == 1
    assert windowed.count("5m", query_now) == expected_5m_at_latest
    assert within(windowed.quantiles(query_now)["5m"][0.5], 0.1)


@pytest.mark.parametrize(
    ("windows", "qs"),
    [
        ({"5m": 300.0, "1h": 3600.0}, (0.5, 0.9, 0.95, 0.99)),
        ({"1h": 3600.0, "1m": 60.0}, (0.99, 0.0)),
    ],
    ids=["defaults", "custom-order"],
)
def test_quantiles_shape(windows: dict[str, float], qs: tuple[float, ...]) -> None:
    """quantiles() returns {window: {q: value}} in the configured window and q order."""
    windowed = WindowedSketch(windows)
    windowed.add(0.3, 50.0)
    summary = windowed.quantiles(60.0, qs)
    assert list(summary) == list(windows)
    assert all(list(per_q) == list(qs) for per_q in summary.values())
    assert all(value == 0.3 for per_q in summary.values() for value in per_q.values())


@settings(max_examples=200, deadline=None)
@given(
    samples=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=5000.0), st.floats(min_value=1e-4, max_value=1e3)
        ),
        min_size=1,
        max_size=500,
    ),
    extra=st.floats(min_value=0.0, max_value=4000.0),
)
def test_property_windows_match_definition(
    samples: list[tuple[float, float]], extra: float
) -> None:
    """Each window holds exactly the values of slots in (floor((now-w)/10), floor(now/10)],
    and its quantiles are within 1% of theirs."""
    samples.sort()
    windowed = WindowedSketch()
    for t, value in samples:
        windowed.add(value, t)
    now = samples[-1][0] + extra
    summary = windowed.quantiles(now)
    for name, width in (("5m", 300.0), ("1h", 3600.0)):
        lower = math.floor((now - width) / 10.0)
        included = [value for t, value in samples if math.floor(t / 10.0) > lower]
        assert windowed.count(name, now) == len(included)
        for q in QS:
            if included:
                assert within(summary[name][q], nearest_rank(included, q))
            else:
                assert summary[name][q] is None


def test_concurrent_readers_and_writer() -> None:
    """Readers querying from threads while a writer adds never crash and see a consistent count."""
    windowed = WindowedSketch()
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                windowed.quantiles(1000.0)
                windowed.count("1h", 1000.0)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for i in range(20000):
        windowed.add(0.001 * (1 + i % 500), i * 0.05)
    done.set()
    for reader in readers:
        reader.join()
    assert errors == []
    assert windowed.count("1h", 1000.0) == 20000


# --- packed slots and tiers ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=1e-12, max_value=1e6)), min_size=0, max_size=300
    )
)
def test_property_packed_slot_merges_like_the_live_sketch(values: list[float]) -> None:
    """A closed (packed) slot merged into a sketch gives exactly what the live one gives."""
    live = LogSketch()
    for value in values:
        live.add(value)
    from_live, from_packed = LogSketch(), LogSketch()
    from_live.merge(live)
    from_packed.merge(live.closed())
    assert from_packed.count == from_live.count == len(values)
    assert (from_packed.min, from_packed.max, from_packed.sum) == (
        from_live.min,
        from_live.max,
        from_live.sum,
    )
    assert from_packed.quantiles(QS) == from_live.quantiles(QS)


def test_packed_slot_keeps_counts_beyond_32_bits() -> None:
    """A bucket count that does not fit 32 bits is split, not truncated."""
    big = 2**32 + 5
    live = LogSketch()
    live.add(0.2, count=big)
    live.add(0.3)
    merged = LogSketch()
    merged.merge(live.closed())
    assert (merged.count, merged.quantile(0.5), merged.quantile(0.999999)) == (
        big + 1,
        live.quantile(0.5),
        live.quantile(0.999999),
    )


@settings(max_examples=100, deadline=None)
@given(
    samples=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=8000.0), st.floats(min_value=1e-4, max_value=1e3)
        ),
        min_size=1,
        max_size=400,
    ),
    extra=st.floats(min_value=0.0, max_value=4000.0),
)
def test_property_tiers_match_single_resolution_sketches(
    samples: list[tuple[float, float]], extra: float
) -> None:
    """Each tiered window answers exactly as a WindowedSketch of that window's resolution."""
    samples.sort()
    tiered = TieredSketch()
    singles = {
        name: WindowedSketch({name: width}, resolution)
        for name, (width, resolution) in DEFAULT_TIERS.items()
    }
    for t, value in samples:
        tiered.add(value, t)
        for single in singles.values():
            single.add(value, t)
    now = samples[-1][0] + extra
    summary = tiered.quantiles(now, QS)
    assert list(summary) == list(DEFAULT_TIERS)
    for name, single in singles.items():
        assert summary[name] == single.quantiles(now, QS)[name]
        assert tiered.count(name, now) == single.count(name, now)


def test_tiers_bound_memory_per_journey() -> None:
    """The default tiers keep 31 + 61 slots, whatever runs for however long."""
    tiered = TieredSketch()
    for second in range(0, 3 * 3600, 2):
        tiered.add(0.005, float(second))
    assert [tier.slot_count for tier in tiered._tiers] == [31, 61]
    with pytest.raises(KeyError, match="unknown window"):
        tiered.count("15m", 0.0)
