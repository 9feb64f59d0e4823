"""Multi-window, multi-burn-rate alert policies (Google SRE workbook, ch. 5), as data.

A policy watches two windows of one SLO. It fires while the error ratio over *both* exceeds
`threshold × (1 - objective)` (the long window says enough budget went, the short one says it
is still going) and resolves as soon as either drops; there is no pending phase. A threshold
is given either directly (`burn_rate: 14.4`) or as the share of the SLO window's budget the
long window may spend (`budget_consumed: 2%`), converted by `threshold = budget_consumed ×
slo_window / long_window`: 2% of a 30-day budget in 1 h is 0.02 × 720 = 14.4.

Durations are seconds; `objective` is a ratio in (0, 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Final, NamedTuple

from slo.budget import Counts, SLOError, error_budget

__all__ = [
    "DAY",
    "DEFAULT_POLICY_SPECS",
    "HOUR",
    "MINUTE",
    "BurnRatePolicy",
    "PolicyEvaluation",
    "PolicySpec",
    "Reason",
    "Resolution",
    "budget_consumed",
    "burn_rate_threshold",
    "default_min_events",
    "evaluate_policy",
    "judge_policy",
    "min_events_for",
    "resolution_table",
    "resolve_policies",
    "resolve_policy",
]

MINUTE: Final = 60.0
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

#: Relative slack when counting whole runs in a window, so that 24 s / 0.1 s is 240 runs even
#: though the float quotient lands a hair below.
_RUNS_SLACK: Final = 1e-9


def _check_positive(name: str, seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds > 0):
        raise SLOError(f"{name} must be a positive number of seconds, got {seconds!r}")


def _check_windows(long_window: float, short_window: float) -> None:
    _check_positive("long window", long_window)
    _check_positive("short window", short_window)
    if short_window > long_window:
        raise SLOError(
            f"the short window ({short_window:g} s) must not be longer than the long one "
            f"({long_window:g} s)"
        )


def _check_threshold(threshold: float) -> None:
    if not (math.isfinite(threshold) and threshold > 0):
        raise SLOError(f"a burn-rate threshold must be a positive number, got {threshold!r}")


def _check_min_events(min_events: int | None) -> None:
    if min_events is not None and min_events < 0:
        raise SLOError(f"min_events must not be negative, got {min_events!r}")


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One row of `alerting.burn_rate_policies`, before it meets an SLO's window.

    Exactly one of `budget_consumed` (a ratio: 2% is 0.02) and `burn_rate` sets the
    threshold. `min_events=None` means the derived low-traffic guard (`default_min_events`);
    0 turns the guard off.
    """

    severity: str
    long_window: float
    short_window: float
    budget_consumed: float | None = None
    burn_rate: float | None = None
    min_events: int | None = None

    def __post_init__(self) -> None:
        _check_windows(self.long_window, self.short_window)
        if (self.budget_consumed is None) == (self.burn_rate is None):
            raise SLOError("a burn-rate policy needs exactly one of budget_consumed and burn_rate")
        if self.budget_consumed is not None and not 0 < self.budget_consumed <= 1:
            raise SLOError(
                f"budget_consumed must be a ratio in (0, 1], got {self.budget_consumed!r}"
            )
        if self.burn_rate is not None:
            _check_threshold(self.burn_rate)
        _check_min_events(self.min_events)


#: DESIGN's default table (the SRE workbook's): page on 2% of the budget in 1 h or 5% in 6 h,
#: open a ticket on 10% in 1 d or 3 d. The short window is 1/12 of the long one.
DEFAULT_POLICY_SPECS: Final[tuple[PolicySpec, ...]] = (
    PolicySpec("critical", 1 * HOUR, 5 * MINUTE, budget_consumed=0.02),
    PolicySpec("critical", 6 * HOUR, 30 * MINUTE, budget_consumed=0.05),
    PolicySpec("warning", 1 * DAY, 2 * HOUR, budget_consumed=0.10),
    PolicySpec("warning", 3 * DAY, 6 * HOUR, budget_consumed=0.10),
)


@dataclass(frozen=True, slots=True)
class BurnRatePolicy:
    """A policy with its threshold resolved for one SLO window: what `evaluate_policy` runs."""

    severity: str
    long_window: float
    short_window: float
    threshold: float
    min_events: int | None = None

    def __post_init__(self) -> None:
        _check_windows(self.long_window, self.short_window)
        _check_threshold(self.threshold)
        _check_min_events(self.min_events)


def burn_rate_threshold(budget_consumed: float, slo_window: float, long_window: float) -> float:
    """The burn rate that spends `budget_consumed` of the SLO window's budget in `long_window`.

    A burn rate of 1 spends the whole budget in `slo_window`, so spending the share
    `budget_consumed` in `long_window` takes `budget_consumed × slo_window / long_window`.
    """
    _check_positive("slo_window", slo_window)
    _check_positive("long_window", long_window)
    return budget_consumed * slo_window / long_window


def budget_consumed(threshold: float, slo_window: float, long_window: float) -> float:
    """The share of the budget a long window at `threshold` spends (the inverse conversion)."""
    _check_positive("slo_window", slo_window)
    _check_positive("long_window", long_window)
    return threshold * long_window / slo_window


def resolve_policy(spec: PolicySpec, slo_window: float) -> BurnRatePolicy:
    """The policy `spec` describes, for an SLO over `slo_window` seconds."""
    if spec.burn_rate is not None:
        threshold = spec.burn_rate
    else:
        assert spec.budget_consumed is not None  # PolicySpec guarantees exactly one
        threshold = burn_rate_threshold(spec.budget_consumed, slo_window, spec.long_window)
    return BurnRatePolicy(
        spec.severity, spec.long_window, spec.short_window, threshold, spec.min_events
    )


def resolve_policies(
    slo_window: float, specs: Sequence[PolicySpec] = DEFAULT_POLICY_SPECS
) -> tuple[BurnRatePolicy, ...]:
    """Every spec resolved for one SLO window (the default table when none are given)."""
    return tuple(resolve_policy(spec, slo_window) for spec in specs)


@lru_cache(maxsize=1024)
def default_min_events(threshold: float, objective: float) -> int:
    """The low-traffic guard: the fewest long-window events at which one failure cannot page.

    A policy fires when bad / n > threshold × (1 - objective) =: L over the n events of its
    long window. One failed run on its own is a ratio of 1/n, so it pages whenever n < 1/L.
    At 99.9% over 30 days the 1h/5m policy has L = 14.4 × 0.001 = 1.44%; at one run a minute
    the hour holds n = 60 runs, and one failure (1/60 = 1.67%) pages.

    The default is N = ⌈1 / L⌉, exactly: the smallest n with not (1/n > L). A policy may fire
    only when its long window holds at least N events, so a single failed run never pages.
    At 99.9% over 30 days: N = 70 (1h/5m), 167 (6h/30m), 334 (1d/2h), 1000 (3d/6h). When the
    probe rate cannot put N runs in the long window (60 < 70 above), the policy stays silent
    and `resolution_table` says so; the slower tiers, whose windows do hold enough runs, still
    page: 6h/30m trips on 3 failed runs in 6 h at one a minute, the first count above its 5%
    of the budget (one run is 2.3%). The price is a cold start: with no history a policy waits
    for N events (at one run per 15 s the 70th comes 17m15s after the first) — the threshold
    rules (ApiDown) cover an outright outage meanwhile, and restored state avoids the wait
    after a restart. Once the window holds N events, though, 2 failed runs of those N page
    (1/N <= L < 2/N, as N = ⌈1/L⌉ and L < 1), fewer than a full window needs (4 of 240 runs
    at 15 s); the count rises to that as the window fills (`resolution_table` gives both).
    `min_events: 0` (or 1) turns the guard off: then a single failed run pages a cold start.
    """
    _check_threshold(threshold)
    limit = threshold * error_budget(objective)
    events = max(1, math.ceil(1 / limit))
    # ⌈1/L⌉ is off by at most one from the float comparison that `evaluate_policy` makes.
    while events > 1 and not 1 / (events - 1) > limit:
        events -= 1
    while 1 / events > limit:
        events += 1
    return events


def min_events_for(policy: BurnRatePolicy, objective: float) -> int:
    """The policy's own `min_events`, or the derived default for this objective."""
    if policy.min_events is not None:
        return policy.min_events
    return default_min_events(policy.threshold, objective)


class Reason(StrEnum):
    """Why a policy does or does not fire, in the order `evaluate_policy` checks."""

    NO_DATA = "no data in a window"
    LONG_BELOW = "long window at or below the threshold"
    SHORT_BELOW = "short window at or below the threshold"
    TOO_FEW_EVENTS = "above the threshold, but too few events in the long window"
    FIRING = "both windows above the threshold"


class PolicyEvaluation(NamedTuple):
    """One policy's verdict at one tick; burn rates are None where a window has no events.
    A named tuple: the daemon makes four per SLO at every tick."""

    firing: bool
    burn_rate_long: float | None
    burn_rate_short: float | None
    threshold: float
    reason: Reason


def evaluate_policy(
    policy: BurnRatePolicy, objective: float, long_counts: Counts, short_counts: Counts
) -> PolicyEvaluation:
    """Fire when both windows' error ratios exceed `threshold × (1 - objective)`.

    Compared as error ratios, the way DESIGN and the generated Prometheus rules state it, so
    that the daemon and Prometheus agree at the boundary. A window without events never fires
    (no data is not an outage: `ProberNoData` reports it), nor does a long window with fewer
    than `min_events_for(policy, objective)` events (`Reason.TOO_FEW_EVENTS`: it would have).
    """
    return judge_policy(
        policy,
        error_budget(objective),
        min_events_for(policy, objective),
        long_counts.bad,
        long_counts.good + long_counts.bad,
        short_counts.bad,
        short_counts.good + short_counts.bad,
    )


def judge_policy(
    policy: BurnRatePolicy,
    allowance: float,
    min_events: int,
    long_bad: int,
    long_total: int,
    short_bad: int,
    short_total: int,
) -> PolicyEvaluation:
    """`evaluate_policy` on plain counts, with the error budget (`1 - objective`) and the
    guard already worked out: the engine's hot path, and the one place the rule is written."""
    limit = policy.threshold * allowance
    long_ratio = long_bad / long_total if long_total else None
    short_ratio = short_bad / short_total if short_total else None
    if long_ratio is None or short_ratio is None:
        reason = Reason.NO_DATA
    elif not long_ratio > limit:
        reason = Reason.LONG_BELOW
    elif not short_ratio > limit:
        reason = Reason.SHORT_BELOW
    elif long_total < min_events:
        reason = Reason.TOO_FEW_EVENTS
    else:
        reason = Reason.FIRING
    return PolicyEvaluation(
        reason is Reason.FIRING,
        None if long_ratio is None else long_ratio / allowance,
        None if short_ratio is None else short_ratio / allowance,
        policy.threshold,
        reason,
    )


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a policy can tell apart at one probe rate (`prober validate` prints it).

    Two situations, since the guard (`min_events`) only matters while the long window fills:

    - **Full long window** (steady state). `runs_per_long_window` / `_short_window`: runs a
      window holds at that rate (rounded down). `failures_to_trip`: failed runs among them
      that make it fire, None when it cannot fire at this rate (silenced by `min_events`, or
      the threshold asks for more than 100% errors).
    - **Cold start** (empty windows, one run per interval from the first). The policy cannot
      fire until the long window holds `guard_runs` runs, `fill_time` seconds after the first
      run (None: never, it is silenced). `failures_to_trip_at_min_events`: failed runs among
      those `guard_runs` that make it fire then (None: it cannot fire). As more runs come in
      the count climbs to `failures_to_trip`, never below: a cold start is when the fewest
      failed runs page.

    `budget_per_failure`: the share of the SLO window's error budget one failed run spends.
    `single_failure_pages`: one failed run can fire the policy, on a cold start if not in a
    full window (only when `min_events` was set below the derived default, as 0 and 1 are).
    """

    policy: BurnRatePolicy
    runs_per_long_window: int
    runs_per_short_window: int
    min_events: int
    failures_to_trip: int | None
    budget_per_failure: float
    single_failure_pages: bool
    fill_time: float | None
    failures_to_trip_at_min_events: int | None

    @property
    def guard_runs(self) -> int:
        """Runs the long window must hold before the policy can fire: `min_events`, and at
        least 1 (a window without events never fires), so `min_events` 0 and 1 act alike."""
        return max(self.min_events, 1)

    @property
    def silenced(self) -> bool:
        """The long window never holds `min_events` runs at this rate: the policy cannot fire."""
        return self.runs_per_long_window < self.min_events


def resolution_table(
    objective: float,
    slo_window: float,
    policies: Sequence[BurnRatePolicy],
    probe_interval: float,
) -> tuple[Resolution, ...]:
    """Per policy: how many failed runs trip it at one run per `probe_interval` seconds.

    With n runs in the long window the policy fires on the smallest f with f / n > threshold
    × (1 - objective), provided n >= min_events. A full window holds n = ⌊long / interval⌋
    runs. On a cold start the first moment it can fire is when the window holds
    n = max(min_events, 1) runs, (n - 1) × interval after the first run; f grows with n, so
    that moment needs the fewest failed runs (the recent ones, which the short window holds
    too: its ratio is at least the long one's). One failed run is `probe_interval / ((1 -
    objective) × slo_window)` of the budget: the window holds slo_window / interval runs, of
    which (1 - objective) may fail.
    """
    allowance = error_budget(objective)
    _check_positive("slo_window", slo_window)
    _check_positive("probe_interval", probe_interval)
    budget_per_failure = probe_interval / (allowance * slo_window)
    rows = []
    for policy in policies:
        limit = policy.threshold * allowance
        runs_long = _runs_in(policy.long_window, probe_interval)
        min_events = min_events_for(policy, objective)
        guard_runs = max(min_events, 1)
        failures = failures_at_guard = fill_time = None
        if runs_long >= guard_runs:
            failures = _failures_to_trip(runs_long, limit)
            failures_at_guard = _failures_to_trip(guard_runs, limit)
            fill_time = (guard_runs - 1) * probe_interval
        rows.append(
            Resolution(
                policy=policy,
                runs_per_long_window=runs_long,
                runs_per_short_window=_runs_in(policy.short_window, probe_interval),
                min_events=min_events,
                failures_to_trip=failures,
                budget_per_failure=budget_per_failure,
                single_failure_pages=failures_at_guard == 1,
                fill_time=fill_time,
                failures_to_trip_at_min_events=failures_at_guard,
            )
        )
    return tuple(rows)


def _runs_in(window: float, interval: float) -> int:
    """Runs that a window always holds at a steady cadence: ⌊window / interval⌋."""
    return math.floor(window / interval * (1 + _RUNS_SLACK))


def _failures_to_trip(runs: int, limit: float) -> int | None:
    """The smallest f <= runs with f / runs > limit, or None."""
    if runs == 0:
        return None
    failures = max(1, math.floor(limit * runs) + 1)
    # The product may land a hair off an integer; settle on the comparison itself.
    while failures > 1 and (failures - 1) / runs > limit:
        failures -= 1
    while failures <= runs and not failures / runs > limit:
        failures += 1
    return failures if failures <= runs else None
