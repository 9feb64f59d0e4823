"""The SLO engine: indicators, no-data, inconclusive runs, one-shot changes, reloads."""

from __future__ import annotations

import pytest

from slo.engine import Engine, EngineSpec, Event, RuleSpec, SloSpec
from slo.policies import resolve_policies
from slo.rules import parse_rule_expression

DAY = 86400.0


def spec(**overrides: object) -> EngineSpec:
    values: dict[str, object] = {
        "service": "svc",
        "slos": (
            SloSpec("avail", "chat", 0.99, 30 * DAY, resolve_policies(30 * DAY)),
            SloSpec("fast", "chat", 0.9, 30 * DAY, resolve_policies(30 * DAY), latency_below=1.0),
        ),
        "intervals": {"chat": 60.0},
    }
    values.update(overrides)
    return EngineSpec(**values)  # type: ignore[arg-type]


def names(tick_transitions: object) -> list[tuple[str, str]]:
    return [(dict(t.labels)["alertname"], t.state) for t in tick_transitions]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("success", "duration", "expected"),
    [
        (True, 0.5, {"avail": True, "fast": True}),
        (True, 1.5, {"avail": True, "fast": False}),
        (False, 0.1, {"avail": False, "fast": False}),
    ],
    ids=["fast-success", "slow-success", "failure"],
)
def test_indicators(success: bool, duration: float, expected: dict[str, bool]) -> None:
    """Availability is success; latency is success and faster than the threshold."""
    engine = Engine(spec())
    assert dict(engine.record(Event(100.0, "chat", success, duration))) == expected


def test_inconclusive_runs_are_not_events() -> None:
    """An inconclusive run counts for no SLI but still reports the journey alive."""
    engine = Engine(spec())
    assert engine.record(Event(100.0, "chat", False, inconclusive=True)) == ()
    assert engine.windows["avail"].counts(3600, 100.0).total == 0
    assert engine.last_reports() == {"chat": 100.0}


def test_no_data_fires_after_three_intervals_and_resolves() -> None:
    """A journey silent for 3 intervals fires ProberNoData (warning); a run resolves it."""
    engine = Engine(spec(slos=()))
    engine.record(Event(0.0, "chat", True, 0.1))
    assert names(engine.evaluate(0.0).transitions) == []
    assert names(engine.evaluate(180.0).transitions) == []
    assert names(engine.evaluate(181.0).transitions) == [("ProberNoData", "firing")]
    engine.record(Event(200.0, "chat", True, 0.1))
    assert names(engine.evaluate(201.0).transitions) == [("ProberNoData", "resolved")]


def test_changed_capture_fires_once_per_change() -> None:
    """changed(version) fires once when the value changes, then resolves; the first value is no change."""
    rule = RuleSpec("NewDeployment", "info", "chat", parse_rule_expression("changed(version)"), 0.0)
    engine = Engine(spec(slos=(), rules=(rule,), intervals={}))
    engine.record(Event(0.0, "chat", True, captures={"version": "1.0"}))
    assert names(engine.evaluate(1.0).transitions) == []
    engine.record(Event(2.0, "chat", True, captures={"version": "1.1"}))
    assert names(engine.evaluate(3.0).transitions) == [("NewDeployment", "firing")]
    assert names(engine.evaluate(4.0).transitions) == [("NewDeployment", "resolved")]


def test_step_rule_counts_only_runs_that_reached_the_step() -> None:
    """A rule on a step sees that step's failures, not those of earlier steps."""
    rule = RuleSpec(
        "AuthFailing",
        "critical",
        "chat",
        parse_rule_expression("error_ratio > 50%"),
        300.0,
        step="login",
    )
    engine = Engine(spec(slos=(), rules=(rule,), intervals={}))
    for at in range(10):
        engine.record(
            Event(
                float(at),
                "chat",
                False,
                failed_step="send",
                status_codes={"login": 200, "send": 500},
            )
        )
    assert names(engine.evaluate(10.0).transitions) == []
    for at in range(10, 30):
        engine.record(
            Event(float(at), "chat", False, failed_step="login", status_codes={"login": 401})
        )
    assert names(engine.evaluate(30.0).transitions) == [("AuthFailing", "firing")]


def test_adopt_keeps_windows_of_unchanged_slos() -> None:
    """A reload keeps the history of an SLO that still counts the same events."""
    old = Engine(spec())
    old.record(Event(100.0, "chat", False, 0.1))
    new = Engine(spec(slos=(spec().slos[0],)))
    new.adopt(old)
    assert new.windows["avail"].counts(3600, 100.0).bad == 1


def test_settle_forgets_changes_fed_back_after_a_restart() -> None:
    """Runs fed back at start-up do not re-announce a change that was already reported."""
    rule = RuleSpec("NewDeployment", "info", "chat", parse_rule_expression("changed(version)"), 0.0)
    engine = Engine(spec(slos=(), rules=(rule,), intervals={}))
    engine.record_rules(Event(0.0, "chat", True, captures={"version": "1.0"}))
    engine.record_rules(Event(1.0, "chat", True, captures={"version": "1.1"}))
    engine.settle()
    assert names(engine.evaluate(2.0).transitions) == []


def test_every_alert_has_annotations_and_config_text_wins() -> None:
    """Each alert the engine can raise has a summary and description; the config's override."""
    rule = RuleSpec(
        "ApiDown",
        "critical",
        "chat",
        parse_rule_expression("error_ratio > 90%"),
        120.0,
        annotations={"summary": "API down", "runbook_url": "https://runbooks/api-down"},
    )
    engine = Engine(spec(rules=(rule,)))
    keys = list(engine.annotations)
    assert len(keys) == 2 * 4 + 1 + 1  # 2 SLOs × 4 policies, 1 rule, 1 no-data
    assert all({"summary", "description"} <= set(engine.annotations[key]) for key in keys)
    rule_key = next(key for key in keys if dict(key)["alertname"] == "ApiDown")
    assert engine.annotations[rule_key]["summary"] == "API down"
    assert engine.annotations[rule_key]["runbook_url"] == "https://runbooks/api-down"
    burn = next(
        key for key in keys if dict(key).get("long_window") == "1h" and dict(key)["slo"] == "avail"
    )
    assert (
        engine.annotations[burn]["summary"] == "avail: error budget burning 14.4x too fast (1h/5m)"
    )


@pytest.mark.parametrize(
    "every",
    [3, 10, 40],
    ids=["a third failing", "a tenth failing", "one in forty failing"],
)
def test_a_full_evaluation_judges_every_policy_as_evaluate_policy_does(every: int) -> None:
    """A day of runs with failures and slow runs, evaluated every 30 s: each policy's signal
    fires exactly when `evaluate_policy` on its windows' counts says so, with its figures,
    and the statuses made on first read are those figures."""
    from slo.alerting import Signal
    from slo.policies import evaluate_policy

    engine = Engine(spec())
    firing_seen = 0
    for index in range(2880):
        now = 1_790_000_040.0 + index * 30.0
        if index % 2 == 0:
            failing = (index // 2) % every == 0 and index < 1440
            engine.record(Event(now - 1.0, "chat", not failing, 2.0 if index % 7 == 0 else 0.1))
        held_before = set(engine.alerts.alerts)
        tick = engine.evaluate(now)
        for status in tick.slos:
            slo = status.spec
            view = engine.windows[slo.name]
            assert status.window_counts == view.counts(slo.window, now)
            for policy_status in status.policies:
                policy = policy_status.policy
                expected = evaluate_policy(
                    policy,
                    slo.objective,
                    view.counts(policy.long_window, now),
                    view.counts(policy.short_window, now),
                )
                assert policy_status.evaluation == expected
                signal = tick.signals[policy_status.labels]
                assert signal.active == expected.firing
                if expected.firing or policy_status.labels in held_before:
                    values = {"threshold": expected.threshold}
                    if expected.burn_rate_long is not None:
                        values["burn_rate_long"] = expected.burn_rate_long
                    if expected.burn_rate_short is not None:
                        values["burn_rate_short"] = expected.burn_rate_short
                    assert signal == Signal(expected.firing, 0.0, values)
                firing_seen += expected.firing
    assert firing_seen > 0
