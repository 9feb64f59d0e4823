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
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from slo.alerting import AlertKey, AlertState, Signal, Transition, alert_key, step
from slo.budget import Counts, budget_remaining, burn_rate, time_to_exhaustion
from slo.policies import BurnRatePolicy, PolicyEvaluation, evaluate_policy
from slo.rules import RuleExpression, RunSample, WindowData, is_changed, summarize
from slo.windows import DEFAULT_BUCKET_SECONDS, EventWindow, StreamWindow

__all__ = [
    "DEFAULT_ALERT_NAME",
    "NO_DATA_ALERT",
    "Engine",
    "EngineSpec",
    "Event",
    "RuleSpec",
    "SloSpec",
    "SloStatus",
    "Tick",
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
        if not event.success:
            return False
        if self.latency_below is None:
            return True
        return event.duration_seconds is not None and event.duration_seconds < self.latency_below

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

    @property
    def bucket_seconds(self) -> float:
        """Window buckets narrow enough that transitions stay within two evaluation
        intervals of the exact definition (see `slo.windows`)."""
        return min(DEFAULT_BUCKET_SECONDS, 2 * self.evaluation_interval)


@dataclass(frozen=True)
class PolicyStatus:
    policy: BurnRatePolicy
    evaluation: PolicyEvaluation
    labels: AlertKey


@dataclass(frozen=True)
class SloStatus:
    """One SLO at one tick. Ratios are None where a window holds no events."""

    spec: SloSpec
    error_ratios: Mapping[float, float | None]
    burn_rates: Mapping[float, float | None]
    window_counts: Counts
    budget_remaining: float | None
    time_to_exhaustion: float | None
    policies: tuple[PolicyStatus, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    """One evaluation's outcome (`slos` is empty for a lean, replay evaluation)."""

    now: float
    slos: tuple[SloStatus, ...]
    transitions: tuple[Transition, ...]
    alerts: AlertState
    signals: Mapping[AlertKey, Signal]


class Engine:
    """Live state for one `EngineSpec`; `record` runs, `evaluate` at each tick."""

    def __init__(
        self, spec: EngineSpec, alerts: AlertState | None = None, *, replay: bool = False
    ) -> None:
        """`replay=True`: events arrive in time order and `now` only moves forward, so every
        window is counted exactly and cheaply (`StreamWindow`), as DESIGN defines it."""
        self.spec = spec
        self.alerts = alerts or AlertState()
        self.windows: dict[str, EventWindow | StreamWindow] = {
            slo.name: StreamWindow()
            if replay
            else EventWindow(slo.retention, bucket_seconds=spec.bucket_seconds)
            for slo in spec.slos
        }
        self._slos_by_journey: dict[str, list[SloSpec]] = {}
        for slo in spec.slos:
            self._slos_by_journey.setdefault(slo.journey, []).append(slo)
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
        self._policy_labels = {
            slo.name: tuple(self._policy_key(slo, policy) for policy in slo.policies)
            for slo in spec.slos
        }
        #: Per SLO: (policy, alert labels, error-ratio limit) — what the lean evaluation needs.
        self._policy_plans = {
            slo.name: tuple(
                (policy, labels, policy.threshold * (1 - slo.objective))
                for policy, labels in zip(slo.policies, self._policy_labels[slo.name], strict=True)
            )
            for slo in spec.slos
        }
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
        self, event: Event, slos: Collection[str] | None = None
    ) -> tuple[tuple[str, bool], ...]:
        """The SLO-window part of `record` (restoring from a snapshot: only `slos`)."""
        if event.inconclusive:
            return ()
        judged = []
        for slo in self._slos_by_journey.get(event.journey, ()):
            if slos is not None and slo.name not in slos:
                continue
            good = slo.is_good(event)
            self.windows[slo.name].add(event.timestamp, good)
            judged.append((slo.name, good))
        return tuple(judged)

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

    def snapshots(self) -> dict[str, bytes]:
        """Every SLO window as `EventWindow.snapshot()` bytes (a replay engine has none)."""
        return {
            name: window.snapshot()
            for name, window in self.windows.items()
            if isinstance(window, EventWindow)
        }

    def settle(self) -> None:
        """Forget capture changes seen so far: after a restart has fed the stored runs back,
        the changes among them were already reported before it (no second NewDeployment)."""
        self._changed.clear()

    def restore_window(self, slo: str, snapshot: bytes) -> None:
        """Replace an SLO's window with a persisted one (raises SLOError if unusable)."""
        spec = next(spec for spec in self.spec.slos if spec.name == slo)
        self.windows[slo] = EventWindow.restore(
            snapshot, spec.retention, bucket_seconds=self.spec.bucket_seconds
        )

    @property
    def rule_retention(self) -> float:
        """How far back `record_rules` needs runs after a restart."""
        return max(self._rule_retention.values(), default=0.0)

    @cached_property
    def journeys_tracked(self) -> frozenset[str]:
        """Journeys whose runs matter to some SLO or rule (the ones worth persisting)."""
        rules = {rule.journey for rule in self.spec.rules}
        return frozenset(self._slos_by_journey) | rules

    def adopt(self, previous: Engine) -> None:
        """Carry another engine's state over (a config reload): the windows of SLOs that
        still count the same events, the alert state, recent runs, last captures and
        reports. An SLO whose journey, indicator or retention changed starts afresh."""
        old_specs = {slo.name: slo for slo in previous.spec.slos}
        for slo in self.spec.slos:
            old = old_specs.get(slo.name)
            if (
                old is not None
                and (old.journey, old.latency_below, old.retention)
                == (slo.journey, slo.latency_below, slo.retention)
                and previous.spec.bucket_seconds == self.spec.bucket_seconds
            ):
                self.windows[slo.name] = previous.windows[slo.name]
        self.alerts = previous.alerts
        for journey, recent in previous._recent.items():
            if journey in self._recent:
                self._recent[journey].extend(recent)
        self._last_capture.update(previous._last_capture)
        self._last_report.update(previous._last_report)
        self._started = previous._started

    def evaluate(self, now: float, *, figures: bool = True) -> Tick:
        """Every SLO's figures and every alert's signal at `now`; advances the alert state.

        `figures=False` (replay) computes only what alert transitions depend on: a policy
        whose short window is under its threshold cannot start firing, so its long window is
        only counted while it fires. `Tick.slos` is then empty; the transitions are the same.
        """
        if self._started is None:
            self._started = now
        signals: dict[AlertKey, Signal] = {}
        if figures:
            statuses = tuple(self._evaluate_slo(slo, now, signals) for slo in self.spec.slos)
        else:
            statuses = ()
            self._clean = True
            for slo in self.spec.slos:
                self._clean &= self._signal_slo(slo, now, signals)
        self._evaluate_rules(now, signals)
        self._evaluate_no_data(now, signals)
        if self.alerts.alerts or any(signal.active for signal in signals.values()):
            self.alerts, transitions = step(self.alerts, signals, now)
        else:
            transitions = ()  # nothing pending or firing, nothing starting: no transition
        return Tick(now, statuses, transitions, self.alerts, signals)

    def _signal_slo(self, slo: SloSpec, now: float, signals: dict[AlertKey, Signal]) -> bool:
        """Signals of one SLO's policies; True when no short window holds a bad event."""
        window = self.windows[slo.name]
        raw = window.bad_and_total  # plain integers: no object per count on this hot path
        shorts: dict[float, tuple[int, int]] = {}
        firing_or_pending = self.alerts.alerts
        clean = True
        for policy, labels, limit in self._policy_plans[slo.name]:
            short = shorts.get(policy.short_window)
            if short is None:
                short = shorts[policy.short_window] = raw(policy.short_window, now)
            bad, total = short
            clean = clean and bad == 0
            # The same comparison as `evaluate_policy`, so the shortcut never disagrees with it.
            if not (total and bad / total > limit) and labels not in firing_or_pending:
                signals[labels] = _INACTIVE  # the short window alone keeps it from firing
                continue
            signals[labels] = self._policy_signal(
                policy,
                slo.objective,
                window.counts(policy.long_window, now),
                Counts(total - bad, bad),
            )
        return clean

    def quiet_until(self) -> float:
        """After a lean evaluation (`figures=False`): a time before which, as long as only
        good events arrive, another evaluation would change nothing — no alert is pending
        or firing, no policy's short window holds a bad event (so none can exceed its
        threshold: ratios only grow with bad events), there are no threshold rules, and no
        journey can fall silent sooner. `replay` skips the ticks in between. -inf when it
        cannot promise anything."""
        if self.alerts.alerts or self.spec.rules or not self._clean or self._started is None:
            return -math.inf
        horizon = math.inf
        for journey, interval in self.spec.intervals.items():
            last = self._last_report.get(journey, self._started)
            horizon = min(horizon, last + self.spec.no_data_intervals * interval)
        return horizon

    @staticmethod
    def _policy_signal(
        policy: BurnRatePolicy, objective: float, long: Counts, short: Counts
    ) -> Signal:
        evaluation = evaluate_policy(policy, objective, long, short)
        values = {"threshold": policy.threshold}
        if evaluation.burn_rate_long is not None:
            values["burn_rate_long"] = evaluation.burn_rate_long
        if evaluation.burn_rate_short is not None:
            values["burn_rate_short"] = evaluation.burn_rate_short
        return Signal(evaluation.firing, 0.0, values)

    def _evaluate_slo(self, slo: SloSpec, now: float, signals: dict[AlertKey, Signal]) -> SloStatus:
        window = self.windows[slo.name]
        counts = {span: window.counts(span, now) for span in slo.windows}
        policies = []
        for policy, labels in zip(slo.policies, self._policy_labels[slo.name], strict=True):
            evaluation = evaluate_policy(
                policy, slo.objective, counts[policy.long_window], counts[policy.short_window]
            )
            values = {"threshold": policy.threshold}
            if evaluation.burn_rate_long is not None:
                values["burn_rate_long"] = evaluation.burn_rate_long
            if evaluation.burn_rate_short is not None:
                values["burn_rate_short"] = evaluation.burn_rate_short
            signals[labels] = Signal(evaluation.firing, 0.0, values)
            policies.append(PolicyStatus(policy, evaluation, labels))
        slo_counts = counts[slo.window]
        remaining = budget_remaining(slo.objective, slo_counts)
        current_window = min(slo.windows, key=lambda span: abs(span - CURRENT_BURN_WINDOW))
        current = burn_rate(slo.objective, counts[current_window])
        exhaustion = None
        if remaining is not None and current is not None:
            exhaustion = time_to_exhaustion(remaining, current, slo.window)
        return SloStatus(
            spec=slo,
            error_ratios=MappingProxyType({span: counts[span].error_ratio for span in slo.windows}),
            burn_rates=MappingProxyType(
                {span: burn_rate(slo.objective, counts[span]) for span in slo.windows}
            ),
            window_counts=slo_counts,
            budget_remaining=remaining,
            time_to_exhaustion=exhaustion,
            policies=tuple(policies),
        )

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
            last = self._last_report.get(journey, self._started)
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
