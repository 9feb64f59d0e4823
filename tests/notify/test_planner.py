"""The planner: which messages an evaluation causes per channel — routing, one message per
state change, repeats, flap hold and summary, records across a restart. Time is an argument."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from prober.notify.planner import (
    AlertRecord,
    ChannelPolicy,
    FlapPolicy,
    Planner,
    key_from_text,
    key_text,
)
from slo.alerting import ActiveAlert, AlertKey, AlertState, Transition, alert_key

T0 = 1_780_000_000.0
API_DOWN = alert_key({"alertname": "ApiDown", "severity": "critical", "journey": "healthcheck"})
SLOW = alert_key({"alertname": "HighLatency", "severity": "warning", "journey": "chat"})
ALL = frozenset({"critical", "warning", "info"})
PERSON = ChannelPolicy(ALL, repeat_interval=4 * 3600, flapping=FlapPolicy(4, 3600, 1800))
ALERTMANAGER = ChannelPolicy(ALL, keep_resolved=900)

#: One evaluation: (seconds after T0, firing alerts as {key: active_since offset}).
Step = tuple[float, Mapping[AlertKey, float]]


def state(firing: Mapping[AlertKey, float], now: float) -> AlertState:
    return AlertState(
        {
            key: ActiveAlert("firing", T0 + since, max(now, T0 + since), False, {"value": 1.0})
            for key, since in firing.items()
        }
    )


def run(
    policies: Mapping[str, ChannelPolicy], steps: Sequence[Step], planner: Planner | None = None
) -> list[tuple[float, str, str, str, str]]:
    """Feed the steps; every message as (offset, channel, alertname, kind, status)."""
    planner = planner or Planner()
    planner.configure(policies)
    previous: dict[AlertKey, float] = {}
    sent = []
    for offset, firing in steps:
        now = T0 + offset
        gone = [
            Transition(key, "resolved", now, T0 + since, {"value": 0.0})
            for key, since in previous.items()
            if key not in firing
        ]
        plan = planner.plan(now, state(firing, now), gone)
        sent += [
            (m.at - T0, m.channel, dict(m.labels)["alertname"], m.kind, m.status)
            for m in plan.messages
        ]
        previous = dict(firing)
    return sent


def flapping(changes: int, every: float = 60.0) -> list[Step]:
    """ApiDown firing and resolving in turn, one change per `every` seconds."""
    return [(i * every, {API_DOWN: i * every} if i % 2 == 0 else {}) for i in range(changes)]


CASES: list[
    tuple[Mapping[str, ChannelPolicy], list[Step], list[tuple[float, str, str, str, str]]]
] = [
    (
        {"slack": PERSON},
        [(0, {API_DOWN: 0}), (30, {API_DOWN: 0}), (60, {API_DOWN: 0}), (90, {})],
        [
            (0, "slack", "ApiDown", "firing", "firing"),
            (90, "slack", "ApiDown", "resolved", "resolved"),
        ],
    ),
    (
        {"pager": ChannelPolicy(frozenset({"critical"}))},
        [(0, {SLOW: 0, API_DOWN: 0}), (30, {})],
        [
            (0, "pager", "ApiDown", "firing", "firing"),
            (30, "pager", "ApiDown", "resolved", "resolved"),
        ],
    ),
    (
        {"slack": PERSON},
        [
            (0, {API_DOWN: 0}),
            (4 * 3600 - 1, {API_DOWN: 0}),
            (4 * 3600, {API_DOWN: 0}),
            (6 * 3600, {API_DOWN: 0}),
            (8 * 3600, {API_DOWN: 0}),
            (8 * 3600 + 30, {}),
        ],
        [
            (0, "slack", "ApiDown", "firing", "firing"),
            (4 * 3600, "slack", "ApiDown", "repeat", "firing"),
            (8 * 3600, "slack", "ApiDown", "repeat", "firing"),
            (8 * 3600 + 30, "slack", "ApiDown", "resolved", "resolved"),
        ],
    ),
    (
        {"am": ALERTMANAGER},
        [(0, {API_DOWN: 0}), (5 * 3600, {API_DOWN: 0}), (5 * 3600 + 30, {})],
        [
            (0, "am", "ApiDown", "firing", "firing"),
            (5 * 3600 + 30, "am", "ApiDown", "resolved", "resolved"),
        ],
    ),
    (
        {"slack": PERSON},
        [*flapping(7), (360 + 1799, {API_DOWN: 360}), (360 + 1800, {API_DOWN: 360})],
        [
            (0, "slack", "ApiDown", "firing", "firing"),
            (60, "slack", "ApiDown", "resolved", "resolved"),
            (120, "slack", "ApiDown", "firing", "firing"),
            (180, "slack", "ApiDown", "resolved", "resolved"),
            (240, "slack", "ApiDown", "flapping", "firing"),
            (2160, "slack", "ApiDown", "settled", "firing"),
        ],
    ),
    (
        {"am": ALERTMANAGER},
        flapping(7),
        [
            (
                i * 60.0,
                "am",
                "ApiDown",
                "firing" if i % 2 == 0 else "resolved",
                "firing" if i % 2 == 0 else "resolved",
            )
            for i in range(7)
        ],
    ),
    (
        {"slack": PERSON},
        [(0, {API_DOWN: 0}), (30, {API_DOWN: 30})],  # resolved and fired again within one step
        [
            (0, "slack", "ApiDown", "firing", "firing"),
            (30, "slack", "ApiDown", "resolved", "resolved"),
            (30, "slack", "ApiDown", "firing", "firing"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("policies", "steps", "expected"),
    CASES,
    ids=[
        "one-message-per-change",
        "routed-by-severity",
        "repeat-every-repeat-interval",
        "alertmanager-never-repeats",
        "flapping-held-then-settled",
        "alertmanager-never-holds",
        "one-shot-resolve-and-refire",
    ],
)
def test_messages(
    policies: Mapping[str, ChannelPolicy],
    steps: list[Step],
    expected: list[tuple[float, str, str, str, str]],
) -> None:
    """Each sequence of evaluations makes exactly the expected messages."""
    assert run(policies, steps) == expected


def test_flapping_message_counts_changes_and_settled_counts_held_ones() -> None:
    """The flapping message says how many changes; the settled one how many were held."""
    planner = Planner()
    planner.configure({"slack": PERSON})
    messages = []
    for offset, firing in [*flapping(8), (8 * 60 + 1800, {})]:
        now = T0 + offset
        messages += planner.plan(now, state(firing, now)).messages
    flap = next(m for m in messages if m.kind == "flapping")
    settled = next(m for m in messages if m.kind == "settled")
    assert (flap.changes, flap.hold, settled.changes, settled.status) == (
        5,
        (3600, 1800),
        4,
        "resolved",
    )


def test_records_survive_a_restart_without_a_second_message() -> None:
    """Records written and read back (JSON) leave nothing to announce for the same state."""
    first = Planner()
    first.configure({"slack": PERSON, "am": ALERTMANAGER})
    plan = first.plan(T0, state({API_DOWN: 0}, T0))
    assert [m.kind for m in plan.messages] == ["firing", "firing"]
    stored = [(c, key_text(k), r.to_json()) for c, k, r in plan.records if r is not None]
    second = Planner()
    second.configure({"slack": PERSON, "am": ALERTMANAGER})
    second.restore((c, key_from_text(k), AlertRecord.from_json(r)) for c, k, r in stored)
    assert second.plan(T0 + 30, state({API_DOWN: 0}, T0 + 30)).messages == ()
    resolved = second.plan(T0 + 60, state({}, T0 + 60)).messages
    assert [(m.channel, m.kind) for m in resolved] == [("slack", "resolved"), ("am", "resolved")]


def test_a_channel_added_while_an_alert_fires_is_told() -> None:
    """A notifier added by a reload gets the alerts already firing, once."""
    planner = Planner()
    planner.configure({"slack": PERSON})
    planner.plan(T0, state({API_DOWN: 0}, T0))
    planner.configure({"slack": PERSON, "webhook": PERSON})
    plan = planner.plan(T0 + 30, state({API_DOWN: 0}, T0 + 30))
    assert [(m.channel, m.kind) for m in plan.messages] == [("webhook", "firing")]
    assert planner.plan(T0 + 60, state({API_DOWN: 0}, T0 + 60)).messages == ()


def test_an_announced_alert_is_followed_to_its_resolve_after_a_routing_change() -> None:
    """Routing decides what starts being announced; an announced alert still gets its resolve."""
    planner = Planner()
    planner.configure({"slack": PERSON})
    planner.plan(T0, state({API_DOWN: 0}, T0))
    planner.configure({"slack": ChannelPolicy(frozenset({"info"}), repeat_interval=3600)})
    plan = planner.plan(T0 + 30, state({}, T0 + 30))
    assert [(m.kind, m.ends_at) for m in plan.messages] == [("resolved", T0 + 30)]


def test_resolved_records_are_kept_for_the_resend_window_then_dropped() -> None:
    """Alertmanager's resolved record stays 15 minutes (its re-sends), then is deleted."""
    planner = Planner()
    planner.configure({"am": ALERTMANAGER})
    planner.plan(T0, state({API_DOWN: 0}, T0))
    planner.plan(T0 + 60, state({}, T0 + 60))
    assert planner.records["am"][API_DOWN].state == "resolved"
    planner.plan(T0 + 60 + 899, state({}, T0 + 60 + 899))
    assert API_DOWN in planner.records["am"]
    plan = planner.plan(T0 + 60 + 900, state({}, T0 + 60 + 900))
    assert plan.records == (("am", API_DOWN, None),)
    assert API_DOWN not in planner.records["am"]


def test_removed_channels_drop_their_records() -> None:
    """A channel gone from the config has its records deleted with the next write."""
    planner = Planner()
    planner.configure({"slack": PERSON})
    planner.plan(T0, state({API_DOWN: 0}, T0))
    dropped = planner.configure({})
    assert dropped.records == (("slack", API_DOWN, None),)


@pytest.mark.parametrize(
    "text",
    ['{"state": "burning"}', "[]", '{"state": "firing", "announced": null}'],
    ids=["unknown-state", "not-an-object", "missing-fields"],
)
def test_unreadable_records_are_refused(text: str) -> None:
    """A record that is not what to_json wrote is a ValueError, not a guess."""
    with pytest.raises(ValueError, match=r"not an alert record|unknown state"):
        AlertRecord.from_json(text)
