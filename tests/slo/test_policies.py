"""Burn-rate policies (`slo.policies`): the SRE workbook's numbers, computed by hand.

Google SRE workbook, ch. 5, 99.9% over 30 days: page on 2% of the budget in 1h (short 5m,
burn rate 14.4) or 5% in 6h (30m, 6); ticket on 10% in 1d (2h, 3) or 3d (6h, 1). The
resolution rows work the same arithmetic at a probe rate: a 1h window at one run per 15 s
holds 240 runs and trips above 14.4 × 0.1% = 1.44% errors, i.e. on ⌊0.0144 × 240⌋ + 1 = 4
failed runs; one failed run spends 15 / (0.001 × 30 d) = 0.579% of the budget.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slo.budget import Counts, SLOError
from slo.policies import (
    DAY,
    DEFAULT_POLICY_SPECS,
    HOUR,
    MINUTE,
    BurnRatePolicy,
    PolicySpec,
    Reason,
    budget_consumed,
    burn_rate_threshold,
    default_min_events,
    evaluate_policy,
    min_events_for,
    resolution_table,
    resolve_policies,
    resolve_policy,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)

TIERS = ["1h-5m", "6h-30m", "1d-2h", "3d-6h"]


def test_default_table_is_designs() -> None:
    """The default policies are DESIGN's table, row for row."""
    rows = [
        (s.severity, s.long_window, s.short_window, s.budget_consumed, s.burn_rate, s.min_events)
        for s in DEFAULT_POLICY_SPECS
    ]
    assert rows == [
        ("critical", 1 * HOUR, 5 * MINUTE, 0.02, None, None),
        ("critical", 6 * HOUR, 30 * MINUTE, 0.05, None, None),
        ("warning", 1 * DAY, 2 * HOUR, 0.10, None, None),
        ("warning", 3 * DAY, 6 * HOUR, 0.10, None, None),
    ]


THRESHOLDS = [
    # id, SLO window, tier index, threshold
    ("30d-1h-5m", 30 * DAY, 0, 14.4),
    ("30d-6h-30m", 30 * DAY, 1, 6.0),
    ("30d-1d-2h", 30 * DAY, 2, 3.0),
    ("30d-3d-6h", 30 * DAY, 3, 1.0),
    ("28d-1h-5m", 28 * DAY, 0, 13.44),
    ("28d-6h-30m", 28 * DAY, 1, 5.6),
    ("28d-1d-2h", 28 * DAY, 2, 2.8),
    ("28d-3d-6h", 28 * DAY, 3, 28 / 30),
    ("7d-1h-5m", 7 * DAY, 0, 3.36),
]


@pytest.mark.parametrize(
    ("slo_window", "tier", "threshold"), [t[1:] for t in THRESHOLDS], ids=[t[0] for t in THRESHOLDS]
)
def test_budget_consumed_converts_to_threshold(
    slo_window: float, tier: int, threshold: float
) -> None:
    """threshold = budget_consumed × SLO window / long window, and back."""
    policy = resolve_policies(slo_window)[tier]
    spec = DEFAULT_POLICY_SPECS[tier]
    assert policy.threshold == pytest.approx(threshold, rel=1e-12)
    assert burn_rate_threshold(
        spec.budget_consumed or 0.0, slo_window, spec.long_window
    ) == pytest.approx(threshold, rel=1e-12)
    assert budget_consumed(policy.threshold, slo_window, spec.long_window) == pytest.approx(
        spec.budget_consumed, rel=1e-12
    )


def test_explicit_burn_rate_is_taken_as_is() -> None:
    """A `burn_rate:` policy keeps its threshold whatever the SLO window."""
    spec = PolicySpec("critical", HOUR, 5 * MINUTE, burn_rate=10.0, min_events=5)
    assert resolve_policy(spec, 28 * DAY) == BurnRatePolicy("critical", HOUR, 5 * MINUTE, 10.0, 5)


BAD_SPECS = [
    ("both-forms", {"budget_consumed": 0.02, "burn_rate": 14.4}, "exactly one"),
    ("neither-form", {}, "exactly one"),
    ("budget-above-100-percent", {"budget_consumed": 1.5}, "budget_consumed"),
    ("budget-zero", {"budget_consumed": 0.0}, "budget_consumed"),
    ("burn-rate-zero", {"burn_rate": 0.0}, "positive"),
    ("burn-rate-negative", {"burn_rate": -2.0}, "positive"),
    ("min-events-negative", {"burn_rate": 2.0, "min_events": -1}, "min_events"),
    ("short-longer-than-long", {"burn_rate": 2.0, "short_window": 2 * HOUR}, "short window"),
    ("long-window-zero", {"burn_rate": 2.0, "long_window": 0.0}, "long window"),
]


@pytest.mark.parametrize(
    ("fields", "message"), [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS]
)
def test_bad_policy_spec_is_refused(fields: dict[str, float], message: str) -> None:
    """A policy row the math cannot use is refused with what is wrong."""
    arguments: dict[str, object] = {
        "severity": "critical",
        "long_window": HOUR,
        "short_window": 5 * MINUTE,
        **fields,
    }
    with pytest.raises(SLOError, match=message):
        PolicySpec(**arguments)  # type: ignore[arg-type]


MIN_EVENTS = [
    # id, threshold, objective, N = ⌈1 / (threshold × (1 - objective))⌉
    ("99.9-1h-5m", 14.4, 0.999, 70),  # 1/0.0144 = 69.4
    ("99.9-6h-30m", 6.0, 0.999, 167),  # 1/0.006 = 166.7
    ("99.9-1d-2h", 3.0, 0.999, 334),  # 1/0.003 = 333.3
    ("99.9-3d-6h", 1.0, 0.999, 1000),  # 1/0.001 exactly: one in 1000 is not above 0.1%
    ("99.5-1h-5m", 14.4, 0.995, 14),  # 1/0.072 = 13.9
    ("99.5-3d-6h", 1.0, 0.995, 200),
    ("75-exact-half", 2.0, 0.75, 2),  # limit 50%: one failure in 2 is not above it
    ("threshold-beyond-100-percent", 14.4, 0.9, 1),  # limit 144%: nothing can fire anyway
]


@pytest.mark.parametrize(
    ("threshold", "objective", "expected"),
    [m[1:] for m in MIN_EVENTS],
    ids=[m[0] for m in MIN_EVENTS],
)
def test_default_min_events(threshold: float, objective: float, expected: int) -> None:
    """The derived guard is the fewest events at which one failure stays at or below the limit."""
    assert default_min_events(threshold, objective) == expected


def test_explicit_min_events_wins() -> None:
    """A policy's own min_events replaces the derived one, 0 turning the guard off."""
    policy = BurnRatePolicy("critical", HOUR, 5 * MINUTE, 14.4, min_events=0)
    assert (
        min_events_for(policy, 0.999),
        min_events_for(BurnRatePolicy("critical", HOUR, 5 * MINUTE, 14.4), 0.999),
    ) == (0, 70)


PAGE = BurnRatePolicy("critical", HOUR, 5 * MINUTE, 14.4)  # 99.9%: limit 1.44%, N = 70
HALF = BurnRatePolicy("critical", HOUR, 5 * MINUTE, 2.0, min_events=0)  # 75%: limit exactly 50%

EVALUATIONS = [
    # id, policy, objective, long (good, bad), short (good, bad), firing, reason
    ("both-above-fires", PAGE, 0.999, (970, 30), (95, 5), True, Reason.FIRING),
    ("short-recovered-resolves", PAGE, 0.999, (970, 30), (100, 0), False, Reason.SHORT_BELOW),
    ("long-below-stays-quiet", PAGE, 0.999, (990, 10), (95, 5), False, Reason.LONG_BELOW),
    ("both-below", PAGE, 0.999, (1000, 0), (100, 0), False, Reason.LONG_BELOW),
    ("no-long-data", PAGE, 0.999, (0, 0), (95, 5), False, Reason.NO_DATA),
    ("no-short-data", PAGE, 0.999, (970, 30), (0, 0), False, Reason.NO_DATA),
    ("all-failing-below-min-events", PAGE, 0.999, (0, 69), (0, 5), False, Reason.TOO_FEW_EVENTS),
    ("all-failing-at-min-events", PAGE, 0.999, (0, 70), (0, 5), True, Reason.FIRING),
    (
        "one-failure-in-an-hour-at-one-a-minute",
        PAGE,
        0.999,
        (59, 1),
        (4, 1),
        False,
        Reason.TOO_FEW_EVENTS,
    ),
    ("ratio-equal-to-limit-does-not-fire", HALF, 0.75, (50, 50), (1, 3), False, Reason.LONG_BELOW),
    ("ratio-just-above-limit-fires", HALF, 0.75, (49, 51), (1, 3), True, Reason.FIRING),
    ("short-equal-to-limit-does-not-fire", HALF, 0.75, (49, 51), (2, 2), False, Reason.SHORT_BELOW),
]


@pytest.mark.parametrize(
    ("policy", "objective", "long", "short", "firing", "reason"),
    [e[1:] for e in EVALUATIONS],
    ids=[e[0] for e in EVALUATIONS],
)
def test_evaluate_policy(
    policy: BurnRatePolicy,
    objective: float,
    long: tuple[int, int],
    short: tuple[int, int],
    firing: bool,
    reason: Reason,
) -> None:
    """Fires while both windows exceed threshold × (1 - objective), with data and enough events."""
    evaluation = evaluate_policy(policy, objective, Counts(*long), Counts(*short))
    assert (evaluation.firing, evaluation.reason, evaluation.threshold) == (
        firing,
        reason,
        policy.threshold,
    )


def test_evaluation_reports_both_burn_rates() -> None:
    """The verdict carries each window's burn rate (3% and 5% errors on 99.9%: 30 and 50)."""
    evaluation = evaluate_policy(PAGE, 0.999, Counts(970, 30), Counts(95, 5))
    assert evaluation.burn_rate_long == pytest.approx(30.0)
    assert evaluation.burn_rate_short == pytest.approx(50.0)


def test_evaluation_without_data_has_no_burn_rate() -> None:
    """A window without events reports None, not 0."""
    evaluation = evaluate_policy(PAGE, 0.999, Counts(0, 0), Counts(10, 0))
    assert (evaluation.burn_rate_long, evaluation.burn_rate_short) == (None, 0.0)


RESOLUTIONS = [
    # id, objective, probe interval, tier,
    #   runs long, runs short, min events, failures to trip, budget per failure, single failure pages
    ("99.9-15s-1h-5m", 0.999, 15.0, 0, 240, 20, 70, 4, 15 / 2592, False),  # 0.0144 × 240 = 3.456
    ("99.9-15s-6h-30m", 0.999, 15.0, 1, 1440, 120, 167, 9, 15 / 2592, False),  # 0.006 × 1440 = 8.64
    (
        "99.9-15s-1d-2h",
        0.999,
        15.0,
        2,
        5760,
        480,
        334,
        18,
        15 / 2592,
        False,
    ),  # 0.003 × 5760 = 17.28
    (
        "99.9-15s-3d-6h",
        0.999,
        15.0,
        3,
        17280,
        1440,
        1000,
        18,
        15 / 2592,
        False,
    ),  # 0.001 × 17280 = 17.28
    ("99.9-60s-1h-5m-silenced", 0.999, 60.0, 0, 60, 5, 70, None, 60 / 2592, False),  # 60 runs < 70
    ("99.9-60s-6h-30m", 0.999, 60.0, 1, 360, 30, 167, 3, 60 / 2592, False),  # 0.006 × 360 = 2.16
    ("99.9-60s-1d-2h", 0.999, 60.0, 2, 1440, 120, 334, 5, 60 / 2592, False),  # 0.003 × 1440 = 4.32
    ("99.9-60s-3d-6h", 0.999, 60.0, 3, 4320, 360, 1000, 5, 60 / 2592, False),  # 0.001 × 4320 = 4.32
    ("99.5-60s-1h-5m", 0.995, 60.0, 0, 60, 5, 14, 5, 60 / 12960, False),  # 0.072 × 60 = 4.32
    ("99.5-60s-6h-30m", 0.995, 60.0, 1, 360, 30, 34, 11, 60 / 12960, False),  # 0.03 × 360 = 10.8
    ("99.5-60s-1d-2h", 0.995, 60.0, 2, 1440, 120, 67, 22, 60 / 12960, False),  # 0.015 × 1440 = 21.6
    (
        "99.5-60s-3d-6h",
        0.995,
        60.0,
        3,
        4320,
        360,
        200,
        22,
        60 / 12960,
        False,
    ),  # 0.005 × 4320 = 21.6
    ("99.9-10m-1h-5m-short-empty", 0.999, 600.0, 0, 6, 0, 70, None, 600 / 2592, False),
]


@pytest.mark.parametrize(
    (
        "objective",
        "interval",
        "tier",
        "runs_long",
        "runs_short",
        "min_events",
        "failures",
        "per_failure",
        "single",
    ),
    [r[1:] for r in RESOLUTIONS],
    ids=[r[0] for r in RESOLUTIONS],
)
def test_resolution_table(
    objective: float,
    interval: float,
    tier: int,
    runs_long: int,
    runs_short: int,
    min_events: int,
    failures: int | None,
    per_failure: float,
    single: bool,
) -> None:
    """Per policy at a probe rate: runs per window, failures that trip it, budget per failure."""
    policies = resolve_policies(30 * DAY)
    row = resolution_table(objective, 30 * DAY, policies, interval)[tier]
    assert row.policy == policies[tier]
    assert (
        row.runs_per_long_window,
        row.runs_per_short_window,
        row.min_events,
        row.failures_to_trip,
    ) == (runs_long, runs_short, min_events, failures)
    assert row.budget_per_failure == pytest.approx(per_failure, rel=1e-9)
    assert (row.single_failure_pages, row.silenced) == (single, failures is None)


def test_single_failure_pages_without_the_guard() -> None:
    """With min_events 0, one failed run in an hour of one-a-minute runs pages a 99.9% SLO."""
    policy = BurnRatePolicy("critical", HOUR, 5 * MINUTE, 14.4, min_events=0)
    (row,) = resolution_table(0.999, 30 * DAY, [policy], 60.0)
    assert (row.failures_to_trip, row.single_failure_pages, row.silenced) == (1, True, False)


def simulate_cold_start(
    policy: BurnRatePolicy, objective: float, interval: float
) -> tuple[int, float, int, int] | None:
    """The reference for the cold-start figures, by brute force: one run every `interval`
    from t = 0 into empty windows, each evaluated with `evaluate_policy` at its newest run's
    time over (t - window, t], the failed runs being the newest ones. Returns the run count
    and time of the first run at which some number of failures fires the policy, the fewest
    failures then, and the fewest once the long window is full (the last run before the
    first one drops out); None when it never fires while the window fills. Checks on the way
    that the fewest failures that fire it never drop as the window fills."""
    first: tuple[int, float, int] | None = None
    fewest = 0
    short_start = 0  # index of the oldest run in the short window
    runs = 0
    while True:
        t = runs * interval  # the newest run, number runs + 1
        if t >= policy.long_window:
            break  # run 0 left the long window: it was full at the previous run
        runs += 1
        while short_start * interval <= t - policy.short_window:
            short_start += 1
        in_short = runs - short_start

        def fires(failed: int, runs: int = runs, in_short: int = in_short) -> bool:
            short_bad = min(failed, in_short)
            return evaluate_policy(
                policy,
                objective,
                Counts(runs - failed, failed),
                Counts(in_short - short_bad, short_bad),
            ).firing

        if not fires(runs):
            continue  # not even with every run failed
        assert fewest == 0 or not fires(fewest - 1), "fewer failures fire a fuller window"
        fewest = max(fewest, 1)
        while not fires(fewest):
            fewest += 1
        if first is None:
            first = (runs, t, fewest)
    if first is None:
        return None
    return (*first, fewest)


COLD_STARTS = [
    # id, objective, interval, threshold, long, short, min_events (None: derived),
    #   (runs before it can fire, seconds from the first run, failures then, failures when full)
    #   or None (it never fires)
    (
        "99.5-60s-6h-30m-issue-13",
        0.995,
        60.0,
        6.0,
        6 * HOUR,
        30 * MINUTE,
        None,
        (34, 33 * 60, 2, 11),
    ),
    ("99.5-60s-1h-5m", 0.995, 60.0, 14.4, HOUR, 5 * MINUTE, None, (14, 13 * 60, 2, 5)),
    ("99.9-15s-1h-5m", 0.999, 15.0, 14.4, HOUR, 5 * MINUTE, None, (70, 69 * 15, 2, 4)),
    ("99.9-15s-6h-30m", 0.999, 15.0, 6.0, 6 * HOUR, 30 * MINUTE, None, (167, 166 * 15, 2, 9)),
    ("99.9-15s-3d-6h", 0.999, 15.0, 1.0, 3 * DAY, 6 * HOUR, None, (1000, 999 * 15, 2, 18)),
    ("95-60s-1h-5m-latency", 0.95, 60.0, 14.4, HOUR, 5 * MINUTE, None, (2, 60, 2, 44)),
    ("99.9-60s-1h-5m-guard-off", 0.999, 60.0, 14.4, HOUR, 5 * MINUTE, 0, (1, 0, 1, 1)),
    ("99.9-60s-1h-5m-min-events-1", 0.999, 60.0, 14.4, HOUR, 5 * MINUTE, 1, (1, 0, 1, 1)),
    ("99.9-60s-6h-30m-guard-off", 0.999, 60.0, 6.0, 6 * HOUR, 30 * MINUTE, 0, (1, 0, 1, 3)),
    ("99.9-60s-1d-2h-min-events-5", 0.999, 60.0, 3.0, DAY, 2 * HOUR, 5, (5, 4 * 60, 1, 5)),
    (
        "99.5-60s-6h-30m-min-events-200",
        0.995,
        60.0,
        6.0,
        6 * HOUR,
        30 * MINUTE,
        200,
        (200, 199 * 60, 7, 11),
    ),
    (
        "99.5-60s-1h-5m-min-events-full",
        0.995,
        60.0,
        14.4,
        HOUR,
        5 * MINUTE,
        60,
        (60, 59 * 60, 5, 5),
    ),
    ("75-60s-exact-half-guard-off", 0.75, 60.0, 2.0, HOUR, 5 * MINUTE, 0, (1, 0, 1, 31)),
    ("99.9-60s-1h-5m-silenced", 0.999, 60.0, 14.4, HOUR, 5 * MINUTE, None, None),  # 60 < 70
    ("90-15s-1h-5m-beyond-all-errors", 0.9, 15.0, 14.4, HOUR, 5 * MINUTE, None, None),
]


@pytest.mark.parametrize(
    ("objective", "interval", "threshold", "long", "short", "min_events", "expected"),
    [c[1:] for c in COLD_STARTS],
    ids=[c[0] for c in COLD_STARTS],
)
def test_cold_start_figures(
    objective: float,
    interval: float,
    threshold: float,
    long: float,
    short: float,
    min_events: int | None,
    expected: tuple[int, float, int, int] | None,
) -> None:
    """While the long window fills the guard decides: no page before it holds min_events
    runs (at least 1), `fill_time` after the first run; then the fewest failures of all."""
    policy = BurnRatePolicy("critical", long, short, threshold, min_events)
    (row,) = resolution_table(objective, 30 * DAY, [policy], interval)
    assert simulate_cold_start(policy, objective, interval) == expected
    figures = (row.guard_runs, row.fill_time, row.failures_to_trip_at_min_events)
    if expected is None:
        assert (figures[2], row.failures_to_trip) == (None, None)
        assert (row.fill_time is None) == row.silenced
    else:
        assert (*figures, row.failures_to_trip) == expected
        assert row.single_failure_pages == (expected[2] == 1)


def test_threshold_beyond_all_errors_can_never_trip() -> None:
    """A threshold asking for more than 100% errors trips on no number of failures."""
    policy = BurnRatePolicy("critical", HOUR, 5 * MINUTE, 14.4)
    (row,) = resolution_table(0.9, 30 * DAY, [policy], 15.0)
    assert (row.failures_to_trip, row.silenced) == (None, False)


@PROPERTY_SETTINGS
@given(
    threshold=st.floats(min_value=0.1, max_value=100.0),
    objective=st.floats(min_value=0.9, max_value=0.99999),
    good=st.integers(min_value=0, max_value=200_000),
    short_good=st.integers(min_value=0, max_value=1_000),
)
def test_single_failure_never_pages_under_default_guard(
    threshold: float, objective: float, good: int, short_good: int
) -> None:
    """With the derived min_events, one failed run among any number of good ones never fires."""
    policy = BurnRatePolicy("critical", HOUR, 5 * MINUTE, threshold)
    evaluation = evaluate_policy(policy, objective, Counts(good, 1), Counts(short_good, 1))
    assert not evaluation.firing
    events = default_min_events(threshold, objective)
    limit = threshold * (1 - objective)
    assert not 1 / events > limit
    assert events == 1 or 1 / (events - 1) > limit
