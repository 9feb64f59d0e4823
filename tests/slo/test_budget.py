"""Error-budget arithmetic (`slo.budget`): hand-computed rows and hypothesis properties.

Time-to-exhaustion rows are the SRE workbook's (ch. 5, 99.9% over 30 days: a burn rate of
1 spends the budget in 30 days, 2 in 15 days, 10 in 3 days, 1,000 in 43 minutes).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slo.budget import (
    Counts,
    SLOError,
    budget_remaining,
    burn_rate,
    error_budget,
    error_ratio,
    time_to_exhaustion,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
MONTH = 30 * DAY

objectives = st.floats(min_value=0.5, max_value=0.99999, allow_nan=False)
counts_values = st.integers(min_value=0, max_value=10**7)


def test_counts_total_and_ratio() -> None:
    """A window's total is good + bad and its error ratio bad / total."""
    counts = Counts(good=990, bad=10)
    assert (counts.total, counts.error_ratio, error_ratio(counts)) == (1000, 0.01, 0.01)


def test_counts_without_events_have_no_ratio() -> None:
    """No events is no data (None), not a perfect window."""
    assert (Counts(0, 0).total, Counts(0, 0).error_ratio) == (0, None)


@pytest.mark.parametrize(("good", "bad"), [(-1, 0), (0, -1)], ids=["negative-good", "negative-bad"])
def test_negative_counts_are_refused(good: int, bad: int) -> None:
    """A negative count is a bug upstream and is refused where it appears."""
    with pytest.raises(SLOError, match="cannot be negative"):
        Counts(good, bad)


BAD_OBJECTIVES = [
    ("zero", 0.0),
    ("one-hundred-percent", 1.0),
    ("above-one", 1.5),
    ("negative", -0.1),
    ("percent-not-ratio", 99.9),
    ("nan", math.nan),
]


@pytest.mark.parametrize(
    "objective", [b[1] for b in BAD_OBJECTIVES], ids=[b[0] for b in BAD_OBJECTIVES]
)
def test_objective_outside_zero_one_is_refused(objective: float) -> None:
    """An objective leaving no budget (or none that makes sense) is the caller's mistake."""
    with pytest.raises(SLOError, match="strictly between 0 and 1"):
        error_budget(objective)


BURN_RATES = [
    # id, objective, good, bad, burn rate
    ("99.9-one-percent-errors", 0.999, 990, 10, 10.0),
    ("99.9-at-objective", 0.999, 999_000, 1_000, 1.0),
    ("99.9-page-threshold", 0.999, 98_560, 1_440, 14.4),
    ("99.5-one-percent-errors", 0.995, 990, 10, 2.0),
    ("95-all-failing", 0.95, 0, 20, 20.0),
    ("99-no-errors", 0.99, 500, 0, 0.0),
]


@pytest.mark.parametrize(
    ("objective", "good", "bad", "expected"),
    [r[1:] for r in BURN_RATES],
    ids=[r[0] for r in BURN_RATES],
)
def test_burn_rate(objective: float, good: int, bad: int, expected: float) -> None:
    """burn rate = error ratio / (1 - objective)."""
    assert burn_rate(objective, Counts(good, bad)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_burn_rate_without_events_is_none() -> None:
    """No events gives no burn rate rather than zero."""
    assert burn_rate(0.999, Counts(0, 0)) is None


BUDGETS = [
    # id, objective, good, bad, remaining
    ("untouched", 0.999, 1_000_000, 0, 1.0),
    ("half-spent", 0.999, 999_500, 500, 0.5),
    ("exactly-spent", 0.999, 999_000, 1_000, 0.0),
    ("overspent-by-a-whole-budget", 0.999, 998_000, 2_000, -1.0),
    ("99.5-quarter-spent", 0.995, 99_875, 125, 0.75),
    ("all-failing-95", 0.95, 0, 10, -19.0),
]


@pytest.mark.parametrize(
    ("objective", "good", "bad", "expected"), [b[1:] for b in BUDGETS], ids=[b[0] for b in BUDGETS]
)
def test_budget_remaining(objective: float, good: int, bad: int, expected: float) -> None:
    """Remaining = 1 - burn rate over the SLO window, negative when overspent."""
    assert budget_remaining(objective, Counts(good, bad)) == pytest.approx(
        expected, rel=1e-9, abs=1e-12
    )


def test_budget_remaining_without_events_is_none() -> None:
    """A window without events has no budget figure."""
    assert budget_remaining(0.999, Counts(0, 0)) is None


EXHAUSTION = [
    # id, remaining, rate, window, seconds (SRE workbook, 99.9% over 30 days)
    ("rate-1-lasts-30-days", 1.0, 1.0, MONTH, 30 * DAY),
    ("rate-2-lasts-15-days", 1.0, 2.0, MONTH, 15 * DAY),
    ("rate-10-lasts-3-days", 1.0, 10.0, MONTH, 3 * DAY),
    ("rate-1000-lasts-43.2-minutes", 1.0, 1000.0, MONTH, 43.2 * MINUTE),
    ("rate-14.4-lasts-50-hours", 1.0, 14.4, MONTH, 50 * HOUR),
    ("rate-6-lasts-5-days", 1.0, 6.0, MONTH, 5 * DAY),
    ("half-left-at-rate-2", 0.5, 2.0, MONTH, 7.5 * DAY),
    ("28-day-window-rate-1", 1.0, 1.0, 28 * DAY, 28 * DAY),
    ("exhausted", 0.0, 3.0, MONTH, 0.0),
    ("overspent", -0.3, 3.0, MONTH, 0.0),
    ("overspent-not-burning", -0.3, 0.0, MONTH, 0.0),
]


@pytest.mark.parametrize(
    ("remaining", "rate", "window", "expected"),
    [e[1:] for e in EXHAUSTION],
    ids=[e[0] for e in EXHAUSTION],
)
def test_time_to_exhaustion(remaining: float, rate: float, window: float, expected: float) -> None:
    """At the current burn rate the remaining budget lasts remaining × window / rate."""
    assert time_to_exhaustion(remaining, rate, window) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("rate", [0.0, -1.0], ids=["not-burning", "negative-rate"])
def test_budget_not_being_spent_never_runs_out(rate: float) -> None:
    """With a budget left and no burn there is no exhaustion time (None)."""
    assert time_to_exhaustion(0.4, rate, MONTH) is None


@pytest.mark.parametrize(
    "window", [0.0, -DAY, math.inf, math.nan], ids=["zero", "negative", "infinite", "nan"]
)
def test_time_to_exhaustion_needs_a_window(window: float) -> None:
    """A window that is not a positive number of seconds is refused."""
    with pytest.raises(SLOError, match="window"):
        time_to_exhaustion(1.0, 1.0, window)


@PROPERTY_SETTINGS
@given(objective=objectives, good=counts_values, bad=counts_values, more=st.integers(1, 10**6))
def test_burn_rate_grows_with_failures(objective: float, good: int, bad: int, more: int) -> None:
    """More failures never lower the burn rate: added, or turning good runs bad."""
    before = burn_rate(objective, Counts(good, bad))
    added = burn_rate(objective, Counts(good, bad + more))
    assert added is not None
    assert before is None or added >= before
    turned = min(more, good)
    flipped = burn_rate(objective, Counts(good - turned, bad + turned))
    assert before is None or (flipped is not None and flipped >= before)


@PROPERTY_SETTINGS
@given(objective=objectives, good=counts_values, bad=counts_values)
def test_budget_never_above_one(objective: float, good: int, bad: int) -> None:
    """Budget remaining is at most 1 and equals 1 - burn rate."""
    remaining = budget_remaining(objective, Counts(good, bad))
    rate = burn_rate(objective, Counts(good, bad))
    assert (remaining is None) == (good + bad == 0)
    assert remaining is None or (
        remaining <= 1.0 and rate is not None and remaining == pytest.approx(1.0 - rate)
    )
