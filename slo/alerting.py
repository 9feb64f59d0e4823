"""The alert state machine: one pure function, `step(state, evaluation, now)`.

An alert is identified by its label set (`alert_key`): one alert per set, whoever
computed it (a burn-rate policy, a threshold rule). At each evaluation the caller says,
for every alert it knows, whether its condition holds (`Signal`); `step` moves each
alert through

    inactive ──active, for > 0──▶ pending ──active for ≥ for──▶ firing
        │                           │                              │
        └──active, for == 0─────────┼─────────────▶ firing         │ not active
                                    │                              ▼
                      not active: back to inactive, silently    resolved ──▶ inactive

and returns the transitions it made (`pending`, `firing`, `resolved`), like Prometheus:

- `for` is measured from the evaluation that first saw the condition (`active_since`),
  and an alert fires at the first evaluation with `now - active_since >= for`, so exactly
  at the boundary. The current signal's `for_seconds` is used (a reload may change it).
- A pending alert whose condition stops holding goes back to inactive with no
  transition: nothing was announced beyond `pending`, so there is nothing to resolve.
  Callers see it leave the state (`AlertState.phase` is `inactive` again).
- `resolved` is a transition, not a resting state: after it the alert is inactive, and
  a later active evaluation starts a new alert (a new `active_since`, a new `pending`).
- An alert present in the state but absent from the evaluation is not active: it
  resolves if firing, so a rule or SLO removed from the config (or a renamed label)
  does not leave an alert firing forever.
- A resolved transition carries the values of the evaluation that resolved it (they
  show why, e.g. the burn rate back under its threshold), or the last values seen when
  the alert was absent from the evaluation.
- One-shot alerts (`changed(...)`) have no condition that stays true: each active
  evaluation is one occurrence. It fires at once (`for` does not apply), and resolves
  at the next evaluation whatever that says; if that evaluation is active again, a new
  occurrence fires right after the resolve, in the same step.

`AlertState` holds only pending and firing alerts, as plain values; `to_records` and
`from_records` turn it into JSON-ready dicts and back, so that a restart resumes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ActiveAlert",
    "AlertKey",
    "AlertPhase",
    "AlertState",
    "AlertStateError",
    "Evaluation",
    "PendingOrFiring",
    "Signal",
    "Transition",
    "TransitionState",
    "alert_key",
    "step",
]

#: An alert's identity: its labels as sorted `(name, value)` pairs, built by `alert_key`.
AlertKey = tuple[tuple[str, str], ...]
AlertPhase = Literal["inactive", "pending", "firing"]
PendingOrFiring = Literal["pending", "firing"]
TransitionState = Literal["pending", "firing", "resolved"]
_RECORD_FIELDS = frozenset({"labels", "phase", "active_since", "fired_at", "one_shot", "values"})


class AlertStateError(ValueError):
    """A persisted alert state that cannot be read back (a corrupt or foreign record)."""


def alert_key(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> AlertKey:
    """The identity of the alert with these labels. An empty value is no label, as in
    Prometheus, so `{journey: ""}` and no `journey` are the same alert."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    key: dict[str, str] = {}
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"alert labels are text, got {name!r}: {value!r}")
        if name in key:
            raise ValueError(f"label {name!r} given twice")
        if value:
            key[name] = value
    return tuple(sorted(key.items()))


def _frozen_values(values: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType({name: float(value) for name, value in values.items()})


@dataclass(frozen=True)
class Signal:
    """What one evaluation says about one alert.

    `for_seconds` is how long the condition must hold before firing (0: fire at once,
    as burn-rate alerts do); `values` are carried on transitions (burn rates, the rule's
    value); `one_shot` marks an alert that fires once per active evaluation.
    """

    active: bool
    for_seconds: float = 0.0
    values: Mapping[str, float] = field(default_factory=dict)
    one_shot: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.for_seconds) or self.for_seconds < 0:
            raise ValueError(f"for_seconds must be finite and >= 0, got {self.for_seconds!r}")
        if self.one_shot and self.for_seconds:
            raise ValueError("a one-shot alert has no pending phase: for_seconds must be 0")
        object.__setattr__(self, "values", _frozen_values(self.values))


#: One evaluation: a signal for every alert the caller knows, by `alert_key`.
Evaluation = Mapping[AlertKey, Signal]


@dataclass(frozen=True)
class Transition:
    """An alert entering `pending`, `firing` or `resolved` at `at`.

    `active_since` is when the condition was first seen (Alertmanager's `startsAt`);
    for `resolved`, `at` is the resolve time (its `endsAt`).
    """

    labels: AlertKey
    state: TransitionState
    at: float
    active_since: float
    values: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _frozen_values(self.values))


@dataclass(frozen=True)
class ActiveAlert:
    """One pending or firing alert (inactive alerts are not kept): when its condition was
    first seen, when it fired, and the latest values its signal carried."""

    phase: PendingOrFiring
    active_since: float
    fired_at: float | None
    one_shot: bool
    values: Mapping[str, float]


@dataclass(frozen=True)
class AlertState:
    """Every pending and firing alert, by key. Empty is the state of a fresh start."""

    alerts: Mapping[AlertKey, ActiveAlert] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alerts", MappingProxyType(dict(self.alerts)))

    def phase(self, key: AlertKey) -> AlertPhase:
        """`inactive`, `pending` or `firing`: the `prober_alert_state` gauge's three values."""
        alert = self.alerts.get(key)
        return "inactive" if alert is None else alert.phase

    def to_records(self) -> tuple[dict[str, object], ...]:
        """Plain, JSON-ready dicts, one per alert, sorted by labels, for storage."""
        return tuple(
            {
                "labels": dict(key),
                "phase": alert.phase,
                "active_since": alert.active_since,
                "fired_at": alert.fired_at,
                "one_shot": alert.one_shot,
                "values": dict(alert.values),
            }
            for key, alert in sorted(self.alerts.items())
        )

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]]) -> AlertState:
        """The state `to_records` wrote (also after a JSON round trip); raises
        `AlertStateError` on anything else rather than resuming a guess."""
        alerts: dict[AlertKey, ActiveAlert] = {}
        for index, record in enumerate(records):
            try:
                key, alert = _read_record(record)
            except (TypeError, ValueError) as error:
                raise AlertStateError(f"alert record {index}: {error}") from None
            if key in alerts:
                raise AlertStateError(f"alert record {index}: labels {dict(key)} repeated")
            alerts[key] = alert
        return cls(alerts)


def _read_record(record: Mapping[str, object]) -> tuple[AlertKey, ActiveAlert]:
    if not isinstance(record, Mapping) or set(record) != _RECORD_FIELDS:
        raise ValueError(f"expected the fields {sorted(_RECORD_FIELDS)}, got {record!r}")
    labels, values = record["labels"], record["values"]
    if not isinstance(labels, Mapping) or not isinstance(values, Mapping):
        raise ValueError("labels and values must be mappings")
    phase = record["phase"]
    if phase not in ("pending", "firing"):
        raise ValueError(f"unknown phase {phase!r}")
    one_shot = record["one_shot"]
    if not isinstance(one_shot, bool):
        raise ValueError(f"one_shot must be true or false, got {one_shot!r}")
    fired_at = None if record["fired_at"] is None else _time(record["fired_at"])
    if (fired_at is None) != (phase == "pending"):
        raise ValueError("fired_at is set exactly when the alert is firing")
    alert = ActiveAlert(
        phase="firing" if phase == "firing" else "pending",
        active_since=_time(record["active_since"]),
        fired_at=fired_at,
        one_shot=one_shot,
        values=_frozen_values({str(name): _time(value) for name, value in values.items()}),
    )
    return alert_key(labels), alert


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def step(
    state: AlertState, evaluation: Evaluation, now: float
) -> tuple[AlertState, tuple[Transition, ...]]:
    """Advance every alert by one evaluation at `now`; return the new state and the
    transitions made, ordered by labels (and, for one alert, in the order they happened)."""
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite time, got {now!r}")
    signals = _normalised(evaluation)
    alerts: dict[AlertKey, ActiveAlert] = {}
    transitions: list[Transition] = []
    for key in sorted(set(state.alerts) | set(signals)):
        alert, made = _advance(key, state.alerts.get(key), signals.get(key), now)
        if alert is not None:
            alerts[key] = alert
        transitions.extend(made)
    return AlertState(alerts), tuple(transitions)


@lru_cache(maxsize=65536)
def _normal_key(key: AlertKey) -> AlertKey:
    """`alert_key` of a key, remembered: the same alerts are evaluated every tick."""
    return alert_key(key)


def _normalised(evaluation: Evaluation) -> dict[AlertKey, Signal]:
    """Keys in `alert_key` form, so an unsorted label tuple still names the same alert."""
    signals: dict[AlertKey, Signal] = {}
    for key, signal in evaluation.items():
        normal = _normal_key(key)
        if normal in signals:
            raise ValueError(f"two signals for the alert {dict(normal)}")
        signals[normal] = signal
    return signals


def _advance(
    key: AlertKey, alert: ActiveAlert | None, signal: Signal | None, now: float
) -> tuple[ActiveAlert | None, tuple[Transition, ...]]:
    """One alert's move: its new record (`None`: inactive) and the transitions made."""
    active = signal if signal is not None and signal.active else None
    if alert is None:
        return _start(key, active, now)
    if alert.phase == "firing":
        if alert.one_shot:
            after, made = _start(key, active, now)
            return after, (_resolved(key, alert, None, now), *made)
        if active is None:
            return None, (_resolved(key, alert, signal, now),)
        if active.values is alert.values:  # the very signal it fired on: nothing to update
            return alert, ()
        return replace(alert, values=active.values), ()
    if active is None:
        return None, ()  # pending that stops: back to inactive, nothing to announce
    if now - alert.active_since >= active.for_seconds:
        firing = ActiveAlert("firing", alert.active_since, now, active.one_shot, active.values)
        return firing, (Transition(key, "firing", now, alert.active_since, active.values),)
    return replace(alert, values=active.values), ()


def _start(
    key: AlertKey, active: Signal | None, now: float
) -> tuple[ActiveAlert | None, tuple[Transition, ...]]:
    """A new alert for an active signal (`for` > 0: pending first), or none."""
    if active is None:
        return None, ()
    phase: PendingOrFiring = "pending" if active.for_seconds > 0 else "firing"
    fired_at = now if phase == "firing" else None
    alert = ActiveAlert(phase, now, fired_at, active.one_shot, active.values)
    return alert, (Transition(key, phase, now, now, active.values),)


def _resolved(key: AlertKey, alert: ActiveAlert, signal: Signal | None, now: float) -> Transition:
    """The resolve, with the resolving evaluation's values, or the last ones seen."""
    values = alert.values if signal is None else signal.values
    return Transition(key, "resolved", now, alert.active_since, values)
