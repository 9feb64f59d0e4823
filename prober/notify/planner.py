"""Which messages an evaluation causes, per notifier channel. Pure: time is an argument.

The planner compares, for every channel, what the alerts *are* (the tick's firing alerts)
with what the channel *was told* (its `AlertRecord`s, kept in the state file's `notified`
table) and makes the messages that close the gap. Being level-triggered rather than driven
by the transitions alone, it is right in every case a transition list would miss:

- a restart resumes the records with the alert state: nothing is announced twice, and a
  change lost with a `kill -9` (before its transaction committed) is seen again;
- a notifier added by a reload, or an Alertmanager URL added to a cluster, is told about
  the alerts already firing;
- an alert that resolved and fired again within one evaluation (a `changed(...)` alert)
  is announced as both.

Rules, per channel and alert:

- **Routing**: a firing alert is announced when its `severity` is in the channel's
  `severities`; once announced, the channel follows it to its resolve even if a reload
  changes the routing (no firing message without its resolved one).
- **One message per state change**: `firing` when it starts firing (at `fired_at`),
  `resolved` when it stops (at the resolve time, with the values that resolved it).
- **Repeats** (`repeat_interval`, Slack/email/webhook): a still-firing alert is repeated
  at most every `repeat_interval` after the last message about it.
- **Flapping** (`FlapPolicy`, Slack/email/webhook): every state change is counted; the
  change that makes more than `max_changes` within `window` sends one `flapping` message
  and starts a hold; changes while held send nothing. When the alert has kept one state for
  `settle`, one `settled` message gives that state and how many changes were held, and
  the count starts afresh.
- **Records** of resolved alerts are kept for `keep_resolved` (Alertmanager: 15 minutes,
  its resolved re-sends) or the flap window, whichever is longer, then forgotten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple, cast

from prober.notify.message import Kind, Status
from slo.alerting import AlertKey, AlertState, Transition, alert_key

_NO_TEXT: Mapping[str, str] = MappingProxyType({})

__all__ = [
    "AlertRecord",
    "ChannelPolicy",
    "FlapPolicy",
    "Message",
    "Plan",
    "Planner",
    "key_from_text",
    "key_text",
]


@dataclass(frozen=True)
class FlapPolicy:
    max_changes: int
    window: float
    settle: float


@dataclass(frozen=True)
class ChannelPolicy:
    severities: frozenset[str]
    repeat_interval: float | None = None
    flapping: FlapPolicy | None = None
    keep_resolved: float = 0.0

    @property
    def keep_for(self) -> float:
        """How long the record of a resolved alert is kept."""
        return max(self.keep_resolved, self.flapping.window if self.flapping else 0.0)


class AlertRecord(NamedTuple):
    """What one channel knows and was told about one alert. A named tuple: the planner
    makes a new one per change, and `_replace` costs a fraction of `dataclasses.replace`."""

    state: Status  # the alert's latest state as the channel follows it
    announced: Status | None  # the state last announced
    active_since: float
    resolved_at: float | None
    last_message_at: float
    annotations: Mapping[str, str] = _NO_TEXT
    changes: tuple[float, ...] = ()  # state changes within the flap window
    held_since: float | None = None
    held_changes: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "state": self.state,
                "announced": self.announced,
                "active_since": self.active_since,
                "resolved_at": self.resolved_at,
                "last_message_at": self.last_message_at,
                "annotations": dict(self.annotations),
                "changes": list(self.changes),
                "held_since": self.held_since,
                "held_changes": self.held_changes,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> AlertRecord:
        """Raises `ValueError` for anything `to_json` did not write."""
        try:
            data: dict[str, Any] = json.loads(text)
            state, announced = data["state"], data["announced"]
            if state not in ("firing", "resolved") or announced not in ("firing", "resolved", None):
                raise ValueError(f"unknown state {state!r}/{announced!r}")
            return cls(
                state=cast(Status, state),
                announced=cast("Status | None", announced),
                active_since=float(data["active_since"]),
                resolved_at=None if data["resolved_at"] is None else float(data["resolved_at"]),
                last_message_at=float(data["last_message_at"]),
                annotations={str(k): str(v) for k, v in data["annotations"].items()},
                changes=tuple(float(t) for t in data["changes"]),
                held_since=None if data["held_since"] is None else float(data["held_since"]),
                held_changes=int(data["held_changes"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not an alert record: {error!r}") from None


class Message(NamedTuple):
    """One message to queue for one channel (the service turns it into a `Notification`)."""

    channel: str
    labels: AlertKey
    kind: Kind
    status: Status
    starts_at: float
    ends_at: float | None
    at: float
    values: Mapping[str, float] = MappingProxyType({})
    changes: int = 0
    hold: tuple[float, float] = (0.0, 0.0)  # flapping: (window, settle)


@dataclass(frozen=True)
class Plan:
    messages: tuple[Message, ...] = ()
    #: Records to write: (channel, alert, record); record None deletes it.
    records: tuple[tuple[str, AlertKey, AlertRecord | None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.messages or self.records)


@lru_cache(maxsize=65536)
def key_text(key: AlertKey) -> str:
    """An alert key as the `notified` table stores it."""
    return json.dumps(dict(key), sort_keys=True)


def key_from_text(text: str) -> AlertKey:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"not a label set: {text[:80]!r}")
    return alert_key({str(k): str(v) for k, v in data.items()})


@dataclass(frozen=True)
class _Firing:
    active_since: float
    fired_at: float
    values: Mapping[str, float]


_EMPTY: Mapping[str, float] = MappingProxyType({})


class Planner:
    """Every channel's records, and `plan` to advance them by one evaluation."""

    def __init__(self) -> None:
        self.policies: dict[str, ChannelPolicy] = {}
        self.records: dict[str, dict[AlertKey, AlertRecord]] = {}

    def restore(self, rows: Iterable[tuple[str, AlertKey, AlertRecord]]) -> None:
        for channel, key, record in rows:
            self.records.setdefault(channel, {})[key] = record

    def configure(self, policies: Mapping[str, ChannelPolicy]) -> Plan:
        """Set the channels; the records of channels gone are dropped (returned to delete)."""
        self.policies = dict(policies)
        gone = []
        for channel in list(self.records):
            if channel not in self.policies:
                gone += [(channel, key, None) for key in self.records.pop(channel)]
        return Plan(records=tuple(gone))

    def plan(
        self,
        now: float,
        alerts: AlertState,
        transitions: Iterable[Transition] = (),
        annotations: Mapping[AlertKey, Mapping[str, str]] | None = None,
    ) -> Plan:
        """The messages and record changes of one evaluation at `now`; the records are
        advanced at once (write the plan in the same transaction as the alert state)."""
        firing = {key: alert for key, alert in alerts.alerts.items() if alert.phase == "firing"}
        resolves = {t.labels: t for t in transitions if t.state == "resolved"}
        notes = annotations or {}
        messages: list[Message] = []
        changed: list[tuple[str, AlertKey, AlertRecord | None]] = []
        for channel, policy in self.policies.items():
            records = self.records.setdefault(channel, {})
            repeat = policy.repeat_interval
            keep = policy.keep_for
            # Firing alerts first (in the state's order: sorted), then the rest of the records.
            for key in [*firing, *(key for key in records if key not in firing)]:
                before = records.get(key)
                alert = firing.get(key)
                if before is not None and before.held_since is None:
                    # The steady state, checked cheaply: every evaluation passes here for
                    # every firing alert and channel.
                    if alert is not None:
                        if (
                            before.state == "firing"
                            and before.active_since == alert.active_since
                            and (repeat is None or now - before.last_message_at < repeat)
                        ):
                            continue
                    elif before.state == "resolved" and (
                        before.resolved_at is None or now - before.resolved_at < keep
                    ):
                        continue
                elif before is None and _severity(key) not in policy.severities:
                    continue  # not routed to this channel
                seen = (
                    None
                    if alert is None
                    else _Firing(alert.active_since, alert.fired_at or now, alert.values)
                )
                after, made = _advance(
                    channel, policy, key, before, seen, resolves.get(key), now, notes
                )
                messages.extend(made)
                if after is before:
                    continue
                if after is None:
                    del records[key]
                else:
                    records[key] = after
                changed.append((channel, key, after))
        return Plan(tuple(messages), tuple(changed))


@lru_cache(maxsize=65536)
def _severity(key: AlertKey) -> str:
    return next((value for name, value in key if name == "severity"), "")


def _advance(
    channel: str,
    policy: ChannelPolicy,
    key: AlertKey,
    record: AlertRecord | None,
    firing: _Firing | None,
    resolve: Transition | None,
    now: float,
    annotations: Mapping[AlertKey, Mapping[str, str]],
) -> tuple[AlertRecord | None, list[Message]]:
    messages: list[Message] = []
    notes = annotations.get(key)
    if firing is not None:
        if (
            record is not None
            and record.state == "firing"
            and record.active_since != firing.active_since
        ):
            # It resolved and fired again between two evaluations (a one-shot alert).
            record = _change(channel, policy, key, record, "resolved", firing.fired_at, messages)
        routed = _severity(key) in policy.severities
        if routed and (record is None or record.state == "resolved"):
            base = record or AlertRecord(
                "resolved", None, firing.active_since, None, firing.fired_at, notes or {}
            )
            base = base._replace(
                active_since=firing.active_since,
                annotations=notes if notes is not None else base.annotations,
            )
            record = _change(
                channel, policy, key, base, "firing", firing.fired_at, messages, firing.values
            )
    elif record is not None and record.state == "firing":
        at = resolve.at if resolve is not None else now
        values = resolve.values if resolve is not None else _EMPTY
        record = _change(channel, policy, key, record, "resolved", at, messages, values)
    if record is None:
        return None, messages
    record = _settle(channel, policy, key, record, now, messages)
    if (
        policy.repeat_interval is not None
        and record.state == "firing"
        and record.announced == "firing"
        and record.held_since is None
        and now - record.last_message_at >= policy.repeat_interval
    ):
        messages.append(
            _message(
                channel,
                key,
                "repeat",
                record,
                now,
                firing.values if firing is not None else _EMPTY,
            )
        )
        record = record._replace(last_message_at=now)
    if (
        record.state == "resolved"
        and record.held_since is None
        and record.resolved_at is not None
        and now - record.resolved_at >= policy.keep_for
    ):
        return None, messages
    return record, messages


def _change(
    channel: str,
    policy: ChannelPolicy,
    key: AlertKey,
    record: AlertRecord,
    state: Status,
    at: float,
    messages: list[Message],
    values: Mapping[str, float] = _EMPTY,
) -> AlertRecord:
    """The alert entered `state` at `at`: announce it, start a hold, or hold it."""
    resolved_at = at if state == "resolved" else None
    flap = policy.flapping
    changes: tuple[float, ...] = ()
    if flap is not None:
        changes = (*(t for t in record.changes if t > at - flap.window), at)
    record = record._replace(state=state, resolved_at=resolved_at, changes=changes)
    if record.held_since is not None:
        return record._replace(held_changes=record.held_changes + 1)
    if flap is not None and len(changes) > flap.max_changes:
        flapping = _message(channel, key, "flapping", record, at, values, len(changes))
        messages.append(flapping._replace(hold=(flap.window, flap.settle)))
        return record._replace(announced=state, last_message_at=at, held_since=at, held_changes=1)
    messages.append(_message(channel, key, state, record, at, values))
    return record._replace(announced=state, last_message_at=at)


def _settle(
    channel: str,
    policy: ChannelPolicy,
    key: AlertKey,
    record: AlertRecord,
    now: float,
    messages: list[Message],
) -> AlertRecord:
    """End a hold once the alert has kept one state for `settle`."""
    flap = policy.flapping
    if record.held_since is None:
        return record
    if flap is None:  # the policy changed under a hold: end it quietly
        return record._replace(held_since=None, held_changes=0, changes=())
    last_change = record.changes[-1] if record.changes else record.held_since
    if now - last_change < flap.settle:
        return record
    messages.append(_message(channel, key, "settled", record, now, _EMPTY, record.held_changes))
    return record._replace(
        announced=record.state,
        last_message_at=now,
        held_since=None,
        held_changes=0,
        changes=(),
    )


def _message(
    channel: str,
    key: AlertKey,
    kind: Kind,
    record: AlertRecord,
    at: float,
    values: Mapping[str, float],
    changes: int = 0,
) -> Message:
    return Message(
        channel=channel,
        labels=key,
        kind=kind,
        status=record.state,
        starts_at=record.active_since,
        ends_at=record.resolved_at if record.state == "resolved" else None,
        at=at,
        values=values,
        changes=changes,
    )
