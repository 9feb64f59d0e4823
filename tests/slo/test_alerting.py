"""The alert state machine (`slo.alerting.step`): sequences, one-shots, persistence."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slo.alerting import (
    AlertKey,
    AlertState,
    AlertStateError,
    Signal,
    Transition,
    alert_key,
    step,
)

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)

KEY = alert_key({"alertname": "HighLatency", "severity": "warning", "journey": "chat"})
OTHER = alert_key({"alertname": "ApiDown", "severity": "critical", "journey": "healthcheck"})

#: `None` in a sequence: the alert is absent from that evaluation.
Tick = tuple[float, bool | None]
Seen = tuple[float, str, float]  # (at, state, active_since)


def run(
    ticks: Sequence[Tick], for_seconds: float = 0.0, one_shot: bool = False
) -> tuple[AlertState, list[Seen]]:
    """Feed one alert's ticks through `step`; return the final state and what it emitted."""
    state, seen = AlertState(), list[Seen]()
    for now, active in ticks:
        evaluation = {} if active is None else {KEY: Signal(active, for_seconds, {}, one_shot)}
        state, transitions = step(state, evaluation, now)
        for transition in transitions:
            assert transition.labels == KEY
            assert transition.at == now
            seen.append((transition.at, transition.state, transition.active_since))
    return state, seen


SEQUENCES = [
    # name, for_seconds, one_shot, ticks, expected transitions
    ("never-active", 0.0, False, [(0, False), (30, False)], []),
    ("for-0-fires-at-once", 0.0, False, [(0, False), (30, True), (60, True)], [(30, "firing", 30)]),
    (
        "for-0-resolves",
        0.0,
        False,
        [(0, True), (30, False), (60, False)],
        [(0, "firing", 0), (30, "resolved", 0)],
    ),
    (
        "pending-then-firing-exactly-at-boundary",
        60.0,
        False,
        [(0, True), (30, True), (60, True), (90, True)],
        [(0, "pending", 0), (60, "firing", 0)],
    ),
    (
        "just-before-boundary-stays-pending",
        60.0,
        False,
        [(0, True), (59.999, True)],
        [(0, "pending", 0)],
    ),
    (
        "boundary-between-ticks-fires-at-next-tick",
        45.0,
        False,
        [(0, True), (30, True), (60, True)],
        [(0, "pending", 0), (60, "firing", 0)],
    ),
    (
        "pending-dropped-silently",
        60.0,
        False,
        [(0, True), (30, False), (60, True), (90, True), (120, True)],
        [(0, "pending", 0), (60, "pending", 60), (120, "firing", 60)],
    ),
    (
        "flapping-never-fires",
        60.0,
        False,
        [(0, True), (30, False), (60, True), (90, False), (120, True), (150, False)],
        [(0, "pending", 0), (60, "pending", 60), (120, "pending", 120)],
    ),
    (
        "flapping-for-0",
        0.0,
        False,
        [(0, True), (30, False), (60, True), (90, False)],
        [(0, "firing", 0), (30, "resolved", 0), (60, "firing", 60), (90, "resolved", 60)],
    ),
    (
        "resolve-then-refire-starts-anew",
        30.0,
        False,
        [(0, True), (30, True), (60, False), (90, True), (120, True)],
        [
            (0, "pending", 0),
            (30, "firing", 0),
            (60, "resolved", 0),
            (90, "pending", 90),
            (120, "firing", 90),
        ],
    ),
    (
        "firing-stays-quiet",
        0.0,
        False,
        [(0, True), (30, True), (60, True), (90, True)],
        [(0, "firing", 0)],
    ),
    (
        "absent-resolves-firing",
        0.0,
        False,
        [(0, True), (30, None)],
        [(0, "firing", 0), (30, "resolved", 0)],
    ),
    (
        "absent-drops-pending",
        60.0,
        False,
        [(0, True), (30, None), (60, True)],
        [(0, "pending", 0), (60, "pending", 60)],
    ),
    (
        "one-shot-fires-then-resolves",
        0.0,
        True,
        [(0, False), (30, True), (60, False), (90, False)],
        [(30, "firing", 30), (60, "resolved", 30)],
    ),
    (
        "one-shot-resolves-even-if-absent",
        0.0,
        True,
        [(0, True), (30, None)],
        [(0, "firing", 0), (30, "resolved", 0)],
    ),
    (
        "one-shot-twice-in-a-row",
        0.0,
        True,
        [(0, True), (30, True), (60, False)],
        [(0, "firing", 0), (30, "resolved", 0), (30, "firing", 30), (60, "resolved", 30)],
    ),
]


@pytest.mark.parametrize(
    ("for_seconds", "one_shot", "ticks", "expected"),
    [s[1:] for s in SEQUENCES],
    ids=[s[0] for s in SEQUENCES],
)
def test_sequence(
    for_seconds: float, one_shot: bool, ticks: list[Tick], expected: list[Seen]
) -> None:
    """A sequence of (now, active) evaluations gives exactly these transitions."""
    _, seen = run(ticks, for_seconds, one_shot)
    assert seen == expected


PHASES = [
    ("inactive", [(0, False)], 0.0, "inactive"),
    ("pending", [(0, True)], 60.0, "pending"),
    ("firing", [(0, True)], 0.0, "firing"),
    ("resolved-is-inactive", [(0, True), (30, False)], 0.0, "inactive"),
    ("dropped-pending-is-inactive", [(0, True), (30, False)], 60.0, "inactive"),
]


@pytest.mark.parametrize(
    ("ticks", "for_seconds", "phase"), [p[1:] for p in PHASES], ids=[p[0] for p in PHASES]
)
def test_phase(ticks: list[Tick], for_seconds: float, phase: str) -> None:
    """The state says each alert's phase, for the prober_alert_state gauge."""
    state, _ = run(ticks, for_seconds)
    assert state.phase(KEY) == phase


def test_for_follows_the_current_signal() -> None:
    """A reload that shortens `for` fires a pending alert as soon as the new `for` is met."""
    state, _ = step(AlertState(), {KEY: Signal(True, 300.0)}, 0)
    state, transitions = step(state, {KEY: Signal(True, 30.0)}, 30)
    assert [(t.state, t.active_since) for t in transitions] == [("firing", 0)]


def test_values_ride_on_transitions() -> None:
    """Firing carries the values that fired it; resolved the values that resolved it."""
    state, fired = step(AlertState(), {KEY: Signal(True, values={"burn_rate_long": 20.1})}, 0)
    state, _ = step(state, {KEY: Signal(True, values={"burn_rate_long": 25.0})}, 30)
    state, resolved = step(state, {KEY: Signal(False, values={"burn_rate_long": 0.5})}, 60)
    assert fired == (Transition(KEY, "firing", 0, 0, {"burn_rate_long": 20.1}),)
    assert resolved == (Transition(KEY, "resolved", 60, 0, {"burn_rate_long": 0.5}),)


def test_absent_alert_resolves_with_last_values() -> None:
    """An alert missing from the evaluation resolves with the last values it carried."""
    state, _ = step(AlertState(), {KEY: Signal(True, values={"value": 1.0})}, 0)
    state, _ = step(state, {KEY: Signal(True, values={"value": 2.0})}, 30)
    state, resolved = step(state, {}, 60)
    assert resolved == (Transition(KEY, "resolved", 60, 0, {"value": 2.0}),)


def test_alerts_are_independent_and_ordered_by_labels() -> None:
    """Each label set is its own alert; transitions come sorted by labels."""
    evaluation = {KEY: Signal(True), OTHER: Signal(True, 60.0)}
    state, transitions = step(AlertState(), evaluation, 0)
    assert [(t.labels, t.state) for t in transitions] == sorted(
        [(KEY, "firing"), (OTHER, "pending")]
    )
    assert (state.phase(KEY), state.phase(OTHER)) == ("firing", "pending")


def test_unsorted_key_names_the_same_alert() -> None:
    """A label tuple in any order is normalised, so it cannot fork one alert into two."""
    state, _ = step(AlertState(), {KEY: Signal(True)}, 0)
    reversed_key: AlertKey = tuple(reversed(KEY))
    state, transitions = step(state, {reversed_key: Signal(True)}, 30)
    assert transitions == ()
    assert list(state.alerts) == [KEY]


def test_same_alert_twice_is_refused() -> None:
    """Two signals for one label set are a caller's bug."""
    with pytest.raises(ValueError, match="two signals"):
        step(AlertState(), {KEY: Signal(True), tuple(reversed(KEY)): Signal(False)}, 0)


ALERT_KEYS = [
    ("sorted", {"b": "2", "a": "1"}, (("a", "1"), ("b", "2"))),
    ("empty-value-is-no-label", {"a": "1", "journey": ""}, (("a", "1"),)),
    ("pairs", [("b", "2"), ("a", "1")], (("a", "1"), ("b", "2"))),
    ("nothing", {}, ()),
]


@pytest.mark.parametrize(
    ("labels", "expected"), [k[1:] for k in ALERT_KEYS], ids=[k[0] for k in ALERT_KEYS]
)
def test_alert_key(labels: dict[str, str] | list[tuple[str, str]], expected: AlertKey) -> None:
    """An alert's identity is its sorted non-empty labels."""
    assert alert_key(labels) == expected


def test_alert_key_refuses_a_repeated_label() -> None:
    """A label given twice has no single value."""
    with pytest.raises(ValueError, match="given twice"):
        alert_key([("a", "1"), ("a", "2")])


SIGNAL_ERRORS = [
    ("negative-for", {"active": True, "for_seconds": -1.0}, "for_seconds must be finite"),
    ("nan-for", {"active": True, "for_seconds": float("nan")}, "for_seconds must be finite"),
    ("one-shot-with-for", {"active": True, "for_seconds": 60.0, "one_shot": True}, "one-shot"),
]


@pytest.mark.parametrize(
    ("fields", "message"), [s[1:] for s in SIGNAL_ERRORS], ids=[s[0] for s in SIGNAL_ERRORS]
)
def test_signal_refuses_nonsense(fields: dict[str, object], message: str) -> None:
    """A signal that cannot mean anything is refused when built."""
    with pytest.raises(ValueError, match=message):
        Signal(**fields)  # type: ignore[arg-type]


def test_now_must_be_finite() -> None:
    """An evaluation at no time is a caller's bug."""
    with pytest.raises(ValueError, match="finite"):
        step(AlertState(), {}, float("nan"))


def test_persistence_round_trip_resumes() -> None:
    """A state written to records (and JSON) and read back behaves as if never stopped."""
    state, _ = step(AlertState(), {KEY: Signal(True, 60.0, {"v": 1.5}), OTHER: Signal(True)}, 0)
    records = json.loads(json.dumps(state.to_records()))
    restored = AlertState.from_records(records)
    assert restored == state
    assert records == [
        {
            "labels": dict(OTHER),
            "phase": "firing",
            "active_since": 0,
            "fired_at": 0,
            "one_shot": False,
            "values": {},
        },
        {
            "labels": dict(KEY),
            "phase": "pending",
            "active_since": 0,
            "fired_at": None,
            "one_shot": False,
            "values": {"v": 1.5},
        },
    ]
    _, transitions = step(restored, {KEY: Signal(True, 60.0), OTHER: Signal(False)}, 60)
    assert [(t.labels, t.state, t.active_since) for t in transitions] == sorted(
        [(KEY, "firing", 0), (OTHER, "resolved", 0)]
    )


def test_one_shot_survives_a_restart() -> None:
    """A one-shot alert restored from records still resolves at the next evaluation."""
    state, _ = step(AlertState(), {KEY: Signal(True, one_shot=True)}, 0)
    restored = AlertState.from_records(state.to_records())
    _, transitions = step(restored, {KEY: Signal(False, one_shot=True)}, 30)
    assert [t.state for t in transitions] == ["resolved"]


GOOD_RECORD = {
    "labels": {"a": "1"},
    "phase": "firing",
    "active_since": 0.0,
    "fired_at": 1.0,
    "one_shot": False,
    "values": {},
}
BAD_RECORDS = [
    ("not-a-mapping", ["firing"], "expected the fields"),
    (
        "missing-field",
        [{k: v for k, v in GOOD_RECORD.items() if k != "phase"}],
        "expected the fields",
    ),
    ("extra-field", [{**GOOD_RECORD, "note": 1}], "expected the fields"),
    ("unknown-phase", [{**GOOD_RECORD, "phase": "resolved"}], "unknown phase 'resolved'"),
    ("pending-with-fired-at", [{**GOOD_RECORD, "phase": "pending"}], "fired_at is set exactly"),
    ("firing-without-fired-at", [{**GOOD_RECORD, "fired_at": None}], "fired_at is set exactly"),
    ("text-time", [{**GOOD_RECORD, "active_since": "0"}], "expected a number"),
    ("bool-time", [{**GOOD_RECORD, "active_since": True}], "expected a number"),
    ("bad-one-shot", [{**GOOD_RECORD, "one_shot": 1}], "one_shot must be true or false"),
    (
        "labels-not-mapping",
        [{**GOOD_RECORD, "labels": "a=1"}],
        "labels and values must be mappings",
    ),
    ("label-not-text", [{**GOOD_RECORD, "labels": {"a": 1}}], "alert labels are text"),
    ("value-not-number", [{**GOOD_RECORD, "values": {"v": "x"}}], "expected a number"),
    ("repeated", [GOOD_RECORD, GOOD_RECORD], "repeated"),
]


@pytest.mark.parametrize(
    ("records", "message"), [b[1:] for b in BAD_RECORDS], ids=[b[0] for b in BAD_RECORDS]
)
def test_from_records_refuses_what_it_did_not_write(records: list[object], message: str) -> None:
    """A corrupt record raises AlertStateError naming it, rather than resuming a guess."""
    with pytest.raises(AlertStateError, match=message):
        AlertState.from_records(records)  # type: ignore[arg-type]


# -- property: one alert's transitions always make sense ------------------------------------

TICKS = st.lists(
    st.tuples(
        st.sampled_from([1.0, 15.0, 30.0, 59.0, 60.0, 90.0]),  # time since the previous tick
        st.sampled_from([True, False, None]),  # active, inactive, absent
    ),
    max_size=40,
)


@PROPERTY
@given(TICKS, st.sampled_from([0.0, 30.0, 60.0, 120.0]), st.booleans())
def test_transitions_alternate_sensibly(
    ticks: list[tuple[float, bool | None]], for_seconds: float, one_shot: bool
) -> None:
    """Never two firings without a resolve between, resolved only after firing, pending only
    from inactive, no pending when for == 0, a one-shot resolved at the next step, and the
    state always agrees with the transitions and survives persistence."""
    for_seconds = 0.0 if one_shot else for_seconds
    state, now, phase = AlertState(), 0.0, "inactive"
    pending_since: float | None = None
    for gap, active in ticks:
        now += gap
        evaluation = {} if active is None else {KEY: Signal(active, for_seconds, {}, one_shot)}
        state, transitions = step(state, evaluation, now)
        if not active and phase == "pending":
            phase = "inactive"  # dropped silently
        if one_shot and phase == "firing":
            assert transitions[0].state == "resolved"  # one occurrence, one step
        for transition in transitions:
            if transition.state == "pending":
                assert for_seconds > 0
                assert phase == "inactive"
                pending_since = transition.active_since
            elif transition.state == "firing":
                assert phase in ("inactive", "pending")
                if phase == "inactive":
                    assert for_seconds == 0
                else:
                    assert transition.active_since == pending_since
                    assert now - transition.active_since >= for_seconds
            else:
                assert phase == "firing"
            phase = "inactive" if transition.state == "resolved" else transition.state
        assert state.phase(KEY) == phase
        assert AlertState.from_records(json.loads(json.dumps(state.to_records()))) == state
