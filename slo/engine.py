"""The SLO engine: journey-run events in, SLO figures and alert transitions out. Pure.

The daemon feeds it live runs and `prober replay` feeds it recorded ones in simulated
time: the same code either way, since time is only ever an argument. An `Engine` holds

- one `EventWindow` per SLO (good/bad per the SLO's indicator: availability is the run's
  success; latency is success *and* a duration under `latency_below`),
- the recent runs of every journey a threshold rule watches (as `RunSample`s, kept for the
  longest window of that journey's rules),
- the last value of every capture a `changed(...)` rule watches,
- when each journey last reported (for `ProberNoData`),
- the alert state (`slo.alerting`).

`evaluate(now)` computes, per SLO, the error ratio and burn rate over every window the
policies use plus the SLO window, the budget remaining and the projected time to exhaustion,
and a `Signal` per alert: one per burn-rate policy of each SLO (no pending phase), one per
threshold rule (pending for `for`), and `ProberNoData` per journey (warning, active when the
journey has not reported for `no_data_intervals` × its interval — a stuck prober must not
look like a healthy service). `slo.alerting.step` turns them into transitions.

Inconclusive events (the prober's own network was down) are kept out of every SLI and rule,
but still count as "the journey reported" for `ProberNoData`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple

from slo.alerting import AlertKey, AlertState, Signal, Transition, alert_key, step
from slo.budget import Counts, SLOError, time_to_exhaustion
from slo.policies import (
    BurnRatePolicy,
    PolicyEvaluation,
    judge_policy,
    min_events_for,
)
from slo.rules import RuleExpression, RunSample, WindowData, is_changed, summarize
from slo.windows import MICROS, Layout, Stream, Timeline, micros

__all__ = [
    "DEFAULT_ALERT_NAME",
    "NO_DATA_ALERT",
    "Checkpoint",
    "Engine",
    "EngineSpec",
    "Event",
    "RuleSpec",
    "SloSpec",
    "SloStatus",
    "SloStatuses",
    "SloWindow",
    "Tick",
    "WindowMode",
    "format_window",
]

DEFAULT_ALERT_NAME: Final = "SLOBurnRate"
NO_DATA_ALERT: Final = "ProberNoData"
DEFAULT_NO_DATA_INTERVALS: Final = 3
#: "The current burn rate" (for the projected time to exhaustion) is the one over this window:
#: long enough not to swing on every failed run, short enough to follow an incident.
CURRENT_BURN_WINDOW: Final = 3600.0
#: Windows every SLO reports besides its policies' and its own (the usual dashboard set).
REPORTED_WINDOWS: Final = (300.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 259200.0)


_INACTIVE: Final = Signal(False)


def _merged(given: Mapping[str, str], generated: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({**generated, **{k: v for k, v in given.items() if v}})


def format_window(seconds: float) -> str:
    """`5m`, `1h`, `30d`: the spelling used in labels and output."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


class Event(NamedTuple):
    """One journey run (the replay input format): only `timestamp`, `journey`, `success`
    are required; `status_codes` maps step name to status. A named tuple, not a frozen
    dataclass: a replay builds tens of thousands, and a frozen dataclass's `__init__` costs
    several times more."""

    timestamp: float
    journey: str
    success: bool
    duration_seconds: float | None = None
    failed_step: str | None = None
    reason: str | None = None
    status_codes: Mapping[str, int] = _EMPTY
    captures: Mapping[str, object] = _EMPTY
    inconclusive: bool = False

    def sample(self, step: str | None) -> RunSample | None:
        """The run as a rule on this journey (or on one of its steps) sees it; None when the
        step did not run (an earlier step failed)."""
        if step is None:
            return RunSample(
                self.success,
                self.duration_seconds,
                tuple(self.status_codes.values()),
                self.captures,
            )
        if step not in self.status_codes and self.failed_step != step:
            return None
        code = self.status_codes.get(step)
        return RunSample(
            self.failed_step != step,
            self.duration_seconds,
            () if code is None else (code,),
            self.captures,
        )


def _is_good(event: Event, latency_below: float | None) -> bool:
    """Availability: the run succeeded; latency: and took less than `latency_below`."""
    if not event.success:
        return False
    if latency_below is None:
        return True
    return event.duration_seconds is not None and event.duration_seconds < latency_below


@dataclass(frozen=True)
class SloSpec:
    name: str
    journey: str
    objective: float
    window: float
    policies: tuple[BurnRatePolicy, ...]
    latency_below: float | None = None
    alert_name: str = DEFAULT_ALERT_NAME
    annotations: Mapping[str, str] = field(default_factory=dict)

    def is_good(self, event: Event) -> bool:
        return _is_good(event, self.latency_below)

    @cached_property
    def windows(self) -> tuple[float, ...]:
        """Every window reported for this SLO, shortest first."""
        found = set(REPORTED_WINDOWS) | {self.window}
        for policy in self.policies:
            found |= {policy.long_window, policy.short_window}
        return tuple(sorted(window for window in found if window <= self.retention))

    @cached_property
    def retention(self) -> float:
        return max([self.window, *(policy.long_window for policy in self.policies)])


@dataclass(frozen=True)
class RuleSpec:
    name: str
    severity: str
    journey: str
    expression: RuleExpression
    window: float
    step: str | None = None
    for_seconds: float = 0.0
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineSpec:
    service: str
    slos: tuple[SloSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()
    intervals: Mapping[str, float] = field(default_factory=dict)  # journey → probe interval
    no_data_intervals: int = DEFAULT_NO_DATA_INTERVALS
    evaluation_interval: float = 30.0

    def layout(self, journey: str, origin: float = 0.0) -> Layout:
        """How the daemon's timeline of `journey` slices time: exact at the evaluation ticks
        `origin + n × evaluation_interval` for the windows of its SLOs (`slo.windows`)."""
        slos = [slo for slo in self.slos if slo.journey == journey]
        windows = {span for slo in slos for span in slo.windows}
        decisive = {
            span
            for slo in slos
            for policy in slo.policies
            for span in (policy.long_window, policy.short_window)
        }
        return Layout.plan(windows, decisive, self.evaluation_interval, origin)

    def indicators(self, journey: str) -> tuple[float | None, ...]:
        """The distinct indicators of a journey's SLOs (None: availability; a number:
        latency below it), in config order: one bad count per indicator and slot."""
        found: dict[float | None, None] = {}
        for slo in self.slos:
            if slo.journey == journey:
                found.setdefault(slo.latency_below, None)
        return tuple(found)


class PolicyStatus(NamedTuple):
    policy: BurnRatePolicy
    evaluation: PolicyEvaluation
    labels: AlertKey


class SloStatus(NamedTuple):
    """One SLO at one tick. Ratios are None where a window holds no events. A named tuple:
    the daemon makes one per SLO at every tick."""

    spec: SloSpec
    error_ratios: Mapping[float, float | None]
    burn_rates: Mapping[float, float | None]
    window_counts: Counts
    budget_remaining: float | None
    time_to_exhaustion: float | None
    policies: tuple[PolicyStatus, ...]


class SloStatuses(Sequence[SloStatus]):
    """Every SLO's figures at one tick, made on first read from the counts the tick took.

    The daemon's tick needs only the counts and the signals; the figures are read at a
    scrape or a status request, often not at every tick, so they are made then (once: the
    counts are the tick's, whatever arrives since). Built by several threads at once, each
    makes the same tuple."""

    __slots__ = ("_built", "_counts", "_plans")

    def __init__(
        self, plans: Sequence[_SloPlan], counts: Sequence[Sequence[tuple[int, int]]]
    ) -> None:
        self._plans = plans
        self._counts = counts
        self._built: tuple[SloStatus, ...] | None = None

    def _all(self) -> tuple[SloStatus, ...]:
        built = self._built
        if built is None:
            pairs = zip(self._plans, self._counts, strict=True)
            built = self._built = tuple(_slo_status(plan, found) for plan, found in pairs)
        return built

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._plans)

    def __iter__(self) -> Iterator[SloStatus]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._all() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SloStatuses({self._all()!r})"


@dataclass(frozen=True, slots=True)
class Tick:
    """One evaluation's outcome (`slos` is empty for a lean, replay evaluation)."""

    now: float
    slos: Sequence[SloStatus]
    transitions: tuple[Transition, ...]
    alerts: AlertState
    signals: Mapping[AlertKey, Signal]


#: "daemon": per-journey `Timeline`s in bounded memory, exact at the evaluation ticks (what
#: `prober run` uses); "exact": per-journey `Stream`s of every event, exact at any `now`,
#: read forward only (`prober replay`'s default).
WindowMode = Literal["daemon", "exact"]


class SloWindow:
    """One SLO's view of its journey's store: the events as its indicator judged them."""

    __slots__ = ("indicator", "store")

    def __init__(self, store: Timeline | Stream, indicator: int) -> None:
        self.store = store
        self.indicator = indicator

    def bad_and_total(self, window: float, now: float) -> tuple[int, int]:
        return self.store.bad_and_total(self.indicator, micros(window), micros(now))

    def counts(self, window: float, now: float) -> Counts:
        bad, total = self.bad_and_total(window, now)
        return Counts(total - bad, bad)


@dataclass(frozen=True)
class Checkpoint:
    """What the daemon persists and a restart resumes from (`Engine.checkpoint`,
    `Engine.resume`): JSON-ready values and one snapshot per journey timeline."""

    timelines: Mapping[str, bytes | Timeline]
    alerts: tuple[dict[str, Any], ...]
    last_reports: Mapping[str, float]
    last_captures: tuple[tuple[str, str, object], ...]
    #: When the engine first evaluated (`ProberNoData`'s reference for a journey that never
    #: reported): kept by a replay's restarts, which take no time; None after a real one.
    started: float | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """One burn-rate policy of one SLO, worked out once from the spec."""

    limit: float  # the error ratio both windows must exceed
    min_events: int  # the low-traffic guard
    slo: SloSpec
    policy: BurnRatePolicy
    labels: AlertKey
    long: int  # where the long window is in `slo.windows`
    short: int  # and the short one


@dataclass(frozen=True, slots=True)
class _SloPlan:
    """What evaluating one SLO needs, worked out once from the spec."""

    slo: SloSpec
    micro_spans: tuple[int, ...]  # `slo.windows` in µs
    plans: tuple[_Plan, ...]
    window: int  # where the SLO window is in `slo.windows`
    current: int  # where the window of "the current burn rate" is in `slo.windows`


def _plan_slo(slo: SloSpec, labels: tuple[AlertKey, ...]) -> _SloPlan:
    allowance = 1 - slo.objective
    return _SloPlan(
        slo,
        tuple(micros(span) for span in slo.windows),
        tuple(
            _Plan(
                policy.threshold * allowance,
                min_events_for(policy, slo.objective),
                slo,
                policy,
                key,
                slo.windows.index(policy.long_window),
                slo.windows.index(policy.short_window),
            )
            for policy, key in zip(slo.policies, labels, strict=True)
        ),
        slo.windows.index(slo.window),
        slo.windows.index(min(slo.windows, key=lambda span: abs(span - CURRENT_BURN_WINDOW))),
    )


def _slo_status(plan: _SloPlan, found: Sequence[tuple[int, int]]) -> SloStatus:
    """One SLO's figures from the (bad, runs) of each of its windows at a tick."""
    slo = plan.slo
    allowance = 1 - slo.objective
    ratios: dict[float, float | None] = {}
    rates: dict[float, float | None] = {}
    for span, (bad, total) in zip(slo.windows, found, strict=True):
        if total:
            ratios[span] = ratio = bad / total
            rates[span] = ratio / allowance
        else:
            ratios[span] = rates[span] = None
    policies = []
    for policy_plan in plan.plans:
        long_bad, long_total = found[policy_plan.long]
        short_bad, short_total = found[policy_plan.short]
        evaluation = judge_policy(
            policy_plan.policy,
            allowance,
            policy_plan.min_events,
            long_bad,
            long_total,
            short_bad,
            short_total,
        )
        policies.append(PolicyStatus(policy_plan.policy, evaluation, policy_plan.labels))
    bad, total = found[plan.window]
    rate = rates[slo.window]
    remaining = None if rate is None else min(1.0, 1.0 - rate)
    current = rates[slo.windows[plan.current]]
    exhaustion = None
    if remaining is not None and current is not None:
        exhaustion = time_to_exhaustion(remaining, current, slo.window)
    return SloStatus(
        spec=slo,
        error_ratios=MappingProxyType(ratios),
        burn_rates=MappingProxyType(rates),
        window_counts=Counts(total - bad, bad),
        budget_remaining=remaining,
        time_to_exhaustion=exhaustion,
        policies=tuple(policies),
    )


def _signal_of(evaluation: PolicyEvaluation) -> Signal:
    """A burn-rate policy's signal, with the figures a transition carries."""
    values = {"threshold": evaluation.threshold}
    if evaluation.burn_rate_long is not None:
        values["burn_rate_long"] = evaluation.burn_rate_long
    if evaluation.burn_rate_short is not None:
        values["burn_rate_short"] = evaluation.burn_rate_short
    return Signal(evaluation.firing, 0.0, values)


@dataclass(frozen=True, slots=True)
class _PolicyGroup:
    """The policies that read the same indicator over the same two windows, by limit: the
    short window is counted once, and only policies whose limit it exceeds read the long."""

    store: Timeline | Stream
    indicator: int
    short: int  # µs
    long: int  # µs
    plans: tuple[_Plan, ...]
    limits: tuple[float, ...]
    #: (span, quiet) pairs, µs: if the runs of the last `span` alone keep the short window's
    #: bad count under every limit, none of these policies can start firing for `quiet`.
    probes: tuple[tuple[int, int], ...]
    long_probes: tuple[tuple[int, int], ...]


def _probes(store: Timeline | Stream, short: int) -> tuple[tuple[int, int], ...]:
    """Spans of 1/2, 3/4 ... 63/64 of a window (whole slots on a timeline, where only
    those are exact), each with the time it stays inside the window."""
    width = store.layout.fine_width if isinstance(store, Timeline) else 1
    found = []
    for fraction in (2, 4, 8, 16, 32, 64):
        span = (short - short // fraction) // width * width
        if 0 < span < short:
            found.append((span, short - span))
    return tuple(found)


class Engine:
    """Live state for one `EngineSpec`; `record` runs, `evaluate` at each tick."""

    def __init__(
        self,
        spec: EngineSpec,
        alerts: AlertState | None = None,
        *,
        windows: WindowMode = "daemon",
        origin: float = 0.0,
    ) -> None:
        """`windows="exact"`: events arrive in time order and `now` only moves forward
        (a replay), so every window is counted exactly at any `now`. `"daemon"`: bounded
        memory, exact at ticks `origin + n × evaluation_interval` (`slo.windows`)."""
        self.spec = spec
        self.alerts = alerts or AlertState()
        self.mode: WindowMode = windows
        self.origin = origin
        journeys = list(dict.fromkeys(slo.journey for slo in spec.slos))
        self.indicators = {journey: spec.indicators(journey) for journey in journeys}
        self.timelines: dict[str, Timeline | Stream] = {
            journey: self._new_store(journey) for journey in journeys
        }
        self.windows: dict[str, SloWindow] = {}
        self._slos_by_journey: dict[str, list[SloSpec]] = {}
        for slo in spec.slos:
            self._slos_by_journey.setdefault(slo.journey, []).append(slo)
        self._slo_names = {
            journey: tuple(slo.name for slo in slos)
            for journey, slos in self._slos_by_journey.items()
        }
        #: Whether the run `record_windows` counted last was bad for some SLO of its journey.
        self.last_run_bad = False
        self._rule_retention: dict[str, float] = {}
        self._changed_captures: dict[str, set[str]] = {}
        for rule in spec.rules:
            if rule.expression.windowed:
                previous = self._rule_retention.get(rule.journey, 0.0)
                self._rule_retention[rule.journey] = max(previous, rule.window)
            elif rule.expression.capture is not None:
                self._changed_captures.setdefault(rule.journey, set()).add(rule.expression.capture)
        self._recent: dict[str, deque[Event]] = {
            journey: deque() for journey in self._rule_retention
        }
        self._last_capture: dict[tuple[str, str], object] = {}
        self._changed: dict[str, set[str]] = {}
        self._last_report: dict[str, float] = {}
        self._started: float | None = None
        self._clean = False  # after a lean evaluation: no bad event in any policy's short window
        self._tainted: list[tuple[_PolicyGroup, int]] = []  # the groups with one, and how many
        self._moment = 0  # the last evaluation, µs
        self._lean_at: int | None = None  # the last lean one (`quiet_until` speaks of it)
        self._windows_quiet: float | None = None  # `_quiet_windows` of the last lean one
        self._fired_on: dict[AlertKey, Signal] = {}  # the signal each policy last fired on
        self._policy_labels = {
            slo.name: tuple(self._policy_key(slo, policy) for policy in slo.policies)
            for slo in spec.slos
        }
        self._slo_plans = {
            slo.name: _plan_slo(slo, self._policy_labels[slo.name]) for slo in spec.slos
        }
        self._slo_plan_list = tuple(self._slo_plans[slo.name] for slo in spec.slos)
        #: A policy's alert labels -> (where its SLO is in `spec.slos`, its plan).
        self._policy_at = {
            policy_plan.labels: (index, policy_plan)
            for index, plan in enumerate(self._slo_plan_list)
            for policy_plan in plan.plans
        }
        #: Every policy's signal inactive: where a full evaluation starts from.
        self._inactive = dict.fromkeys(
            (labels for slo in spec.slos for labels in self._policy_labels[slo.name]), _INACTIVE
        )
        self._bind_windows()
        self._rule_labels = tuple(
            alert_key(
                {
                    "alertname": rule.name,
                    "severity": rule.severity,
                    "journey": rule.journey,
                    "step": rule.step or "",
                    "service": spec.service,
                }
            )
            for rule in spec.rules
        )
        self._no_data_labels = {
            journey: alert_key(
                {
                    "alertname": NO_DATA_ALERT,
                    "severity": "warning",
                    "journey": journey,
                    "service": spec.service,
                }
            )
            for journey in spec.intervals
        }
        self.annotations: dict[AlertKey, Mapping[str, str]] = self._annotations()

    def _new_store(self, journey: str) -> Timeline | Stream:
        indicators = len(self.indicators[journey])
        if self.mode == "exact":
            return Stream(indicators)
        return Timeline(self.spec.layout(journey, self.origin), indicators)

    def _bind_windows(self) -> None:
        """(Re)build the per-SLO views and the lean evaluation's policy groups over the
        current stores (after construction, a restore or an adoption)."""
        grouped: dict[tuple[str, int, int, int], list[_Plan]] = {}
        for slo in self.spec.slos:
            indicator = self.indicators[slo.journey].index(slo.latency_below)
            self.windows[slo.name] = SloWindow(self.timelines[slo.journey], indicator)
            spans = self._slo_plans[slo.name].micro_spans
            for plan in self._slo_plans[slo.name].plans:
                key = (slo.journey, indicator, spans[plan.short], spans[plan.long])
                grouped.setdefault(key, []).append(plan)
        self._groups = tuple(
            _PolicyGroup(
                self.timelines[journey],
                indicator,
                short,
                long,
                tuple(sorted(plans, key=lambda plan: plan.limit)),
                tuple(sorted(plan.limit for plan in plans)),
                _probes(self.timelines[journey], short),
                _probes(self.timelines[journey], long),
            )
            for (journey, indicator, short, long), plans in grouped.items()
        )
        self._plan_by_labels = {
            plan.labels: (group, plan) for group in self._groups for plan in group.plans
        }
        self._slo_stores = tuple(
            (self._slo_plans[slo.name], view.store, view.indicator)
            for slo in self.spec.slos
            for view in (self.windows[slo.name],)
        )

    def _annotations(self) -> dict[AlertKey, Mapping[str, str]]:
        """`summary`, `description` and `runbook_url` for every alert this engine can raise:
        the config's where it gives them, a sentence from the figures where not."""
        found: dict[AlertKey, Mapping[str, str]] = {}
        for slo in self.spec.slos:
            for policy, labels in zip(slo.policies, self._policy_labels[slo.name], strict=True):
                windows = (
                    f"{format_window(policy.long_window)}/{format_window(policy.short_window)}"
                )
                long, short = format_window(policy.long_window), format_window(policy.short_window)
                rate = f"{policy.threshold:g}"
                summary = f"{slo.name}: error budget burning {rate}x too fast ({windows})"
                description = (
                    f"SLO {slo.name} ({slo.objective:.3%} of {slo.journey} runs over"
                    f" {format_window(slo.window)}) is spending its error budget at more than"
                    f" {rate} times the sustainable rate over both the {long} and {short} windows."
                )
                found[labels] = _merged(
                    slo.annotations, {"summary": summary, "description": description}
                )
        for rule, labels in zip(self.spec.rules, self._rule_labels, strict=True):
            where = rule.journey + (f" step {rule.step}" if rule.step else "")
            found[labels] = _merged(
                rule.annotations,
                {
                    "summary": f"{rule.name}: {rule.expression.text} ({where})",
                    "description": (
                        f"{rule.expression.text} held for journey {where}"
                        + (
                            f" over {format_window(rule.window)}"
                            if rule.expression.windowed
                            else ""
                        )
                        + "."
                    ),
                },
            )
        for journey, labels in self._no_data_labels.items():
            found[labels] = {
                "summary": f"{journey}: no results for {self.spec.no_data_intervals} intervals",
                "description": (
                    f"Journey {journey} has not reported for {self.spec.no_data_intervals} probe"
                    " intervals: the prober is stuck or down, so its SLOs see no data."
                ),
            }
        return found

    def _policy_key(self, slo: SloSpec, policy: BurnRatePolicy) -> AlertKey:
        return alert_key(
            {
                "alertname": slo.alert_name,
                "severity": policy.severity,
                "slo": slo.name,
                "journey": slo.journey,
                "service": self.spec.service,
                "long_window": format_window(policy.long_window),
                "short_window": format_window(policy.short_window),
                "burnrate_tier": "page" if policy.severity == "critical" else "ticket",
            }
        )

    def record(self, event: Event) -> tuple[tuple[str, bool], ...]:
        """Count one run (events may arrive slightly out of order); returns, per SLO of the
        journey, whether the run was a good event for it."""
        judged = self.record_windows(event)
        self.record_rules(event)
        return judged

    def record_windows(
        self, event: Event, journeys: Collection[str] | None = None
    ) -> tuple[tuple[str, bool], ...]:
        """The SLO-window part of `record` (restoring: only the timelines of `journeys`)."""
        self.last_run_bad = False
        if event.inconclusive:
            return ()
        store = self.timelines.get(event.journey)
        if store is None or (journeys is not None and event.journey not in journeys):
            return ()
        verdicts = [
            _is_good(event, latency_below) for latency_below in self.indicators[event.journey]
        ]
        bad = tuple(i for i, good in enumerate(verdicts) if not good)
        store.add(event.timestamp, bad)
        self.last_run_bad = bool(bad)
        windows = self.windows
        return tuple(
            (name, verdicts[windows[name].indicator]) for name in self._slo_names[event.journey]
        )

    def record_rules(self, event: Event) -> None:
        """The rest of `record`: last report, recent runs for rules, changed captures."""
        previous = self._last_report.get(event.journey)
        if previous is None or event.timestamp > previous:
            self._last_report[event.journey] = event.timestamp
        if event.inconclusive:
            return
        recent = self._recent.get(event.journey)
        if recent is not None:
            recent.append(event)
        for capture in self._changed_captures.get(event.journey, ()):
            if capture not in event.captures:
                continue  # missing is not a change; keep the last value seen
            key = (event.journey, capture)
            value = event.captures[capture]
            if is_changed(self._last_capture.get(key), value):
                self._changed.setdefault(event.journey, set()).add(capture)
            self._last_capture[key] = value

    def last_captures(self) -> tuple[tuple[str, str, object], ...]:
        """The last value of every watched capture, as (journey, capture, value)."""
        return tuple(
            (journey, capture, value) for (journey, capture), value in self._last_capture.items()
        )

    def restore_last_captures(self, values: Iterable[tuple[str, str, object]]) -> None:
        """Seed the last values (before feeding stored runs), so that a change that happened
        while the prober was down is still announced."""
        for journey, capture, value in values:
            self._last_capture.setdefault((journey, capture), value)

    def settle(self) -> None:
        """Forget capture changes seen so far: after a restart has fed the stored runs back,
        the changes among them were already reported before it (no second NewDeployment)."""
        self._changed.clear()

    @property
    def rule_retention(self) -> float:
        """How far back `record_rules` needs runs after a restart."""
        return max(self._rule_retention.values(), default=0.0)

    @cached_property
    def journeys_tracked(self) -> frozenset[str]:
        """Journeys whose runs matter to some SLO or rule (the ones worth persisting)."""
        rules = {rule.journey for rule in self.spec.rules}
        return frozenset(self._slos_by_journey) | rules

    def checkpoint(self) -> Checkpoint:
        """What a restart needs (the timelines of a daemon engine; an exact one has none)."""
        return Checkpoint(
            timelines={
                journey: store.snapshot()
                for journey, store in self.timelines.items()
                if isinstance(store, Timeline)
            },
            alerts=self.alerts.to_records(),
            last_reports=dict(self._last_report),
            last_captures=self.last_captures(),
            started=self._started,
        )

    def history_since(self, checkpoint: Checkpoint, now: float) -> float:
        """How far back `resume` needs the stored runs: the retention of every journey whose
        snapshot is missing or unusable, and the threshold rules' longest window."""
        needed = [now - self.rule_retention]
        for journey in self.timelines:
            if self._restored_timeline(checkpoint, journey) is None:
                needed.append(now - self._retention(journey))
        return min(needed)

    def resume(
        self,
        checkpoint: Checkpoint,
        events_after: Iterable[Event],
        history: Iterable[Event],
        now: float,
    ) -> dict[str, str]:
        """Pick up where a `checkpoint` left off, on a fresh engine, in one call: the alert
        state, the timelines (plus `events_after`, the runs stored after the snapshots), the
        last captures, the runs the threshold rules look back on, the last reports. `history`
        holds the stored runs since `history_since(checkpoint, now)`, oldest first: a
        timeline whose snapshot is missing or does not fit this config is rebuilt from them.
        Returns journey → why its snapshot was unusable."""
        self.alerts = AlertState.from_records(checkpoint.alerts)
        unusable: dict[str, str] = {}
        restored = set()
        for journey in self.timelines:
            found = self._restored_timeline(checkpoint, journey, unusable)
            if found is not None:
                self.timelines[journey] = found
                restored.add(journey)
        for event in events_after:
            self.record_windows(event, restored)
        rebuild = {
            journey: now - self._retention(journey)
            for journey in self.timelines
            if journey not in restored
        }
        rules_since = now - self.rule_retention
        self.restore_last_captures(checkpoint.last_captures)
        for event in history:
            since = rebuild.get(event.journey)
            if since is not None and event.timestamp > since:
                self.record_windows(event, rebuild)
            if event.timestamp > rules_since:
                self.record_rules(event)
        self._bind_windows()
        self.settle()
        self.restore_last_reports(checkpoint.last_reports)
        if checkpoint.started is not None:
            self._started = checkpoint.started
        return unusable

    def _restored_timeline(
        self, checkpoint: Checkpoint, journey: str, unusable: dict[str, str] | None = None
    ) -> Timeline | None:
        data = checkpoint.timelines.get(journey)
        if data is None or self.mode == "exact":
            return None
        try:
            if isinstance(data, Timeline):
                return self._fitting(journey, data)
            return self.load_timeline(journey, data)
        except SLOError as error:
            if unusable is not None:
                unusable[journey] = str(error)
            return None

    def load_timeline(self, journey: str, snapshot: bytes) -> Timeline:
        """A journey's timeline from its snapshot, for this config (SLOError if it does not
        fit): what the daemon puts in a `Checkpoint` as it reads the state file, so that
        the snapshots are not all in memory at once."""
        if journey not in self.indicators:
            raise SLOError(f"no SLO watches journey {journey}")
        return Timeline.restore(
            snapshot, self.spec.layout(journey, self.origin), len(self.indicators[journey])
        )

    def _fitting(self, journey: str, timeline: Timeline) -> Timeline:
        layout = self.spec.layout(journey, self.origin)
        if timeline.layout != layout or timeline.indicators != len(self.indicators[journey]):
            raise SLOError(f"timeline of journey {journey} slices time or judges differently")
        return timeline

    def _retention(self, journey: str) -> float:
        return max(slo.retention for slo in self._slos_by_journey[journey])

    def adopt(self, previous: Engine) -> None:
        """Carry another engine's state over (a config reload): the timelines of journeys
        whose SLOs still slice and judge the same way, the alert state, recent runs, last
        captures and reports. A journey keeps its timeline while its slots stay the same and
        it gains no indicator; otherwise it starts afresh."""
        for journey, indicators in self.indicators.items():
            old = previous.timelines.get(journey)
            before = previous.indicators.get(journey, ())
            if old is None or self.mode != previous.mode or self.origin != previous.origin:
                continue
            if indicators == before:
                if not isinstance(old, Timeline) or old.layout == self.spec.layout(
                    journey, self.origin
                ):
                    self.timelines[journey] = old
            elif (
                isinstance(old, Timeline)
                and set(indicators) <= set(before)
                and old.layout == self.spec.layout(journey, self.origin)
            ):
                self.timelines[journey] = old.select([before.index(i) for i in indicators])
        self._bind_windows()
        self.alerts = previous.alerts
        for journey, recent in previous._recent.items():
            if journey in self._recent:
                self._recent[journey].extend(recent)
        self._last_capture.update(previous._last_capture)
        self._last_report.update(previous._last_report)
        self._started = previous._started

    def prune(self, now: float) -> None:
        """Let the timelines forget what no window ending at `now` or later needs."""
        for store in self.timelines.values():
            if isinstance(store, Timeline):
                store.prune(now)

    def evaluate(self, now: float, *, figures: bool = True) -> Tick:
        """Every SLO's figures and every alert's signal at `now`; advances the alert state.

        `figures=False` (replay) computes only what alert transitions depend on: a policy
        whose short window is under its limit cannot start firing, so its long window is
        only counted while it fires, and only the signals of alerts that are active or were
        pending or firing are made (an absent signal is an inactive one). `Tick.slos` is
        then empty; the transitions are the same.
        """
        if self._started is None:
            self._started = now
        moment = self._moment = micros(now)
        if self.mode == "daemon":
            self.prune(now)
        signals: dict[AlertKey, Signal] = {}
        statuses: Sequence[SloStatus]
        if figures:
            statuses = self._evaluate_slos(moment, signals)
            self._lean_at = None  # `quiet_until` speaks only of a lean evaluation
        else:
            statuses = ()
            self._clean = self._signal_policies(moment, signals)
            self._lean_at = moment
            self._windows_quiet = None
        self._evaluate_rules(now, signals)
        self._evaluate_no_data(now, signals)
        held = self.alerts.alerts
        # `_INACTIVE` is never a held alert's signal (those are always judged), so the
        # identity test spares hashing every inactive alert's labels.
        moving = {
            key: sig
            for key, sig in signals.items()
            if sig is not _INACTIVE and (sig.active or key in held)
        }
        if moving:
            # An absent signal is an inactive one: `step` needs only these.
            self.alerts, transitions = step(self.alerts, moving, now)
        else:
            transitions = ()  # nothing pending or firing, nothing starting: no transition
        return Tick(now, statuses, transitions, self.alerts, signals)

    def _signal_policies(self, moment: int, signals: dict[AlertKey, Signal]) -> bool:
        """Signals of the policies that are active or were pending or firing; True when no
        short window holds a bad event."""
        clean = True
        self._tainted = []
        for group in self._groups:
            bad, total = group.store.bad_and_total(group.indicator, group.short, moment)
            if not bad:
                continue
            clean = False
            self._tainted.append((group, bad))
            # The plans whose limit both ratios exceed: the same comparison as
            # `evaluate_policy` (ratio > limit), so the shortcut never disagrees with it.
            reach = bisect_left(group.limits, bad / total)
            if not reach:
                continue
            long_bad, long_total = group.store.bad_and_total(group.indicator, group.long, moment)
            reach = bisect_left(group.limits, long_bad / long_total, hi=reach)
            for plan in group.plans[:reach]:
                signals[plan.labels] = self._plan_signal(group, plan, bad, total, moment)
        for labels in self.alerts.alerts:
            found = self._plan_by_labels.get(labels)
            if found is not None and labels not in signals:
                group, plan = found
                bad, total = group.store.bad_and_total(group.indicator, group.short, moment)
                signals[labels] = self._plan_signal(group, plan, bad, total, moment)
        return clean

    def _plan_signal(
        self, group: _PolicyGroup, plan: _Plan, bad: int, total: int, moment: int
    ) -> Signal:
        """The policy's signal; an alert that keeps firing gets the signal it fired on again
        (`step` then leaves it as it is: in a replay only transitions carry values)."""
        long_bad, long_total = group.store.bad_and_total(group.indicator, group.long, moment)
        evaluation = judge_policy(
            plan.policy, 1 - plan.slo.objective, plan.min_events, long_bad, long_total, bad, total
        )
        held = self.alerts.alerts.get(plan.labels)
        kept = self._fired_on.get(plan.labels)
        if evaluation.firing and held and kept and kept.values is held.values:
            return kept
        signal = _signal_of(evaluation)
        if signal.active:
            self._fired_on[plan.labels] = signal
        return signal

    def quiet_until(self) -> float:
        """After a lean evaluation (`figures=False`): a time before which, as long as only
        good events arrive, another evaluation would change nothing — no alert is pending
        or firing, there are no threshold rules, no journey can fall silent sooner, and no
        policy can start firing: its short window holds no bad event, or so few that the
        runs certain to stay in its short or long window keep that ratio under its limit.
        `replay` skips the ticks in between. -inf when it cannot promise anything."""
        if self.alerts.alerts or self.spec.rules or self._lean_at is None:
            return -math.inf
        horizon = math.inf
        for journey, interval in self.spec.intervals.items():
            last = self._last_report.get(journey, self._started or 0.0)
            horizon = min(horizon, last + self.spec.no_data_intervals * interval)
        if self._windows_quiet is None:
            self._windows_quiet = self._quiet_windows()
        return min(horizon, self._windows_quiet)

    def _quiet_windows(self) -> float:
        """The policies' part of `quiet_until`, worked out once per lean evaluation.

        A short window with bad runs: until a bad run arrives its bad count cannot grow,
        and it keeps at least the runs of its last `span` for `quiet` more; if even those
        few keep the ratio at or under the smallest limit, no policy can start firing. The
        same holds of the long window: a policy fires only while both exceed it."""
        if self._clean:
            return math.inf
        horizon = math.inf
        moment = self._moment
        for group, bad in self._tainted:
            quiet = self._quiet_for(group, group.probes, bad, moment)
            if quiet is None:
                long_bad, _ = group.store.bad_and_total(group.indicator, group.long, moment)
                quiet = self._quiet_for(group, group.long_probes, long_bad, moment)
            if quiet is None:
                return -math.inf
            horizon = min(horizon, (moment + quiet) / MICROS)
        return horizon

    @staticmethod
    def _quiet_for(
        group: _PolicyGroup, probes: tuple[tuple[int, int], ...], bad: int, moment: int
    ) -> int | None:
        """How long (µs) a window with `bad` bad runs surely stays at or under the group's
        smallest limit while no bad run arrives, by the first probe that shows it; None."""
        for span, quiet in probes:
            _, kept = group.store.bad_and_total(group.indicator, span, moment)
            if kept and not bad / kept > group.limits[0]:
                return quiet
        return None

    def _evaluate_slos(self, moment: int, signals: dict[AlertKey, Signal]) -> SloStatuses:
        """Every SLO's window counts at `moment`, and every policy's signal: judged where
        both ratios exceed its limit (the comparison `judge_policy` makes, so no policy that
        it would fire is missed) or its alert is pending or firing; inactive otherwise (its
        values matter only to an alert that moves). The figures are made from the counts
        when first read (`SloStatuses`)."""
        held = self.alerts.alerts
        signals.update(self._inactive)
        counts = []
        judged: list[tuple[_SloPlan, _Plan, list[tuple[int, int]]]] = []
        for plan, store, indicator in self._slo_stores:
            found = store.bad_and_totals(indicator, plan.micro_spans, moment)
            counts.append(found)
            for policy_plan in plan.plans:
                long_bad, long_total = found[policy_plan.long]
                short_bad, short_total = found[policy_plan.short]
                if (
                    short_total
                    and long_total
                    and short_bad / short_total > policy_plan.limit
                    and long_bad / long_total > policy_plan.limit
                ):
                    judged.append((plan, policy_plan, found))
        # The held alerts are few: looking each one up spares hashing every policy's labels.
        if held:
            seen = {id(policy_plan) for _, policy_plan, _ in judged}
            for labels in held:
                at = self._policy_at.get(labels)
                if at is not None and id(at[1]) not in seen:
                    index, policy_plan = at
                    judged.append((self._slo_plan_list[index], policy_plan, counts[index]))
        for plan, policy_plan, found in judged:
            labels = policy_plan.labels
            long_bad, long_total = found[policy_plan.long]
            short_bad, short_total = found[policy_plan.short]
            evaluation = judge_policy(
                policy_plan.policy,
                1 - plan.slo.objective,
                policy_plan.min_events,
                long_bad,
                long_total,
                short_bad,
                short_total,
            )
            if evaluation.firing or labels in held:
                signals[labels] = _signal_of(evaluation)
        return SloStatuses(self._slo_plan_list, counts)

    def _evaluate_rules(self, now: float, signals: dict[AlertKey, Signal]) -> None:
        if not self.spec.rules:
            return
        for journey, recent in self._recent.items():
            horizon = now - self._rule_retention[journey]
            while recent and recent[0].timestamp <= horizon:
                recent.popleft()
        changed = self._changed
        self._changed = {}
        for rule, labels in zip(self.spec.rules, self._rule_labels, strict=True):
            if rule.expression.windowed:
                data = summarize(self._samples(rule, now))
                result = rule.expression.evaluate(data)
                values = {} if result.value is None else {"value": result.value}
                signals[labels] = Signal(result.active, rule.for_seconds, values)
            else:
                data = WindowData(runs=0, changed_captures=frozenset(changed.get(rule.journey, ())))
                result = rule.expression.evaluate(data)
                signals[labels] = Signal(result.active, 0.0, {}, one_shot=True)

    def _samples(self, rule: RuleSpec, now: float) -> Iterable[RunSample]:
        start = now - rule.window
        for event in self._recent.get(rule.journey, ()):
            if start < event.timestamp <= now:
                sample = event.sample(rule.step)
                if sample is not None:
                    yield sample

    def _evaluate_no_data(self, now: float, signals: dict[AlertKey, Signal]) -> None:
        assert self._started is not None
        for journey, interval in self.spec.intervals.items():
            limit = self.spec.no_data_intervals * interval
            last = self._last_report.get(journey, self._started or 0.0)
            labels = self._no_data_labels[journey]
            silent = now - last
            if silent > limit or labels in self.alerts.alerts:
                signals[labels] = Signal(silent > limit, 0.0, {"seconds_without_data": silent})
            else:
                signals[labels] = _INACTIVE

    def last_reports(self) -> Mapping[str, float]:
        return MappingProxyType(dict(self._last_report))

    def restore_last_reports(self, reports: Mapping[str, float]) -> None:
        for journey, timestamp in reports.items():
            if math.isfinite(timestamp):
                self._last_report[journey] = max(
                    timestamp, self._last_report.get(journey, timestamp)
                )
