"""`slo.promrules`: the generated Prometheus rules, pinned by golden files, and checked
against the daemon's own engine (same thresholds, windows, low-traffic guard, labels)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.config import load_config, parse_config
from prober.slos import engine_spec
from slo.alerting import alert_key
from slo.engine import Engine, EngineSpec, format_window
from slo.policies import min_events_for
from slo.promrules import (
    RuleSet,
    generate_rules,
    inhibit_rules,
    prometheus_duration,
    render_inhibit_rules,
    render_rules,
)
from tests.conftest import REPO

CONFIGS = {
    "demo": REPO / "config" / "demo.yaml",
    "mirror-collective": REPO / "config" / "mirror-collective.yaml",
    "promtool": REPO / "tests" / "promtool" / "prober.yaml",
    "promtool-low-traffic": REPO / "tests" / "promtool" / "low-traffic.yaml",
}


def spec_of(path: Path) -> EngineSpec:
    return engine_spec(load_config(path))


def rules_of(text: str, **kwargs: Any) -> RuleSet:
    return generate_rules(engine_spec(parse_config(text)), **kwargs)


def all_rules(rule_set: RuleSet) -> list[dict[str, Any]]:
    return [rule for group in rule_set.groups for rule in group["rules"]]


@pytest.mark.parametrize(
    ("case", "config", "render"),
    [
        ("rules/demo.yml", "demo", lambda spec: render_rules(generate_rules(spec))),
        ("rules/promtool.yml", "promtool", lambda spec: render_rules(generate_rules(spec))),
        (
            "rules/promtool-low-traffic.yml",
            "promtool-low-traffic",
            lambda spec: render_rules(generate_rules(spec)),
        ),
        (
            "rules/mirror-collective.yml",
            "mirror-collective",
            lambda spec: render_rules(generate_rules(spec)),
        ),
        (
            "rules/mirror-collective.prometheusrule.yml",
            "mirror-collective",
            lambda spec: render_rules(generate_rules(spec), "prometheusrule"),
        ),
        (
            "rules/mirror-collective.unoptimized.yml",
            "mirror-collective",
            lambda spec: render_rules(generate_rules(spec, optimize_long_windows=False)),
        ),
        ("rules/mirror-collective.inhibit.yml", "mirror-collective", render_inhibit_rules),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_golden(case: str, config: str, render: Any, golden: Any) -> None:
    """Every generated output is pinned (review the diff after `make golden`)."""
    golden(case, render(spec_of(CONFIGS[config])))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (300, "5m"),
        (1800, "30m"),
        (3600, "1h"),
        (5400, "90m"),
        (86400, "1d"),
        (2592000, "30d"),
        (604800, "1w"),
        (2419200, "4w"),
        (3661, "1h1m1s"),
        (1.5, "1500ms"),
        (45, "45s"),
    ],
)
def test_prometheus_duration(seconds: float, expected: str) -> None:
    """Durations read as Prometheus reads them, one unit where one fits."""
    assert prometheus_duration(seconds) == expected


@pytest.mark.parametrize("seconds", [0, -5, float("inf"), float("nan")])
def test_prometheus_duration_rejects_nonsense(seconds: float) -> None:
    """A window that is not a positive finite duration is a caller's mistake."""
    with pytest.raises(ValueError, match="positive"):
        prometheus_duration(seconds)


LIMIT = re.compile(r"> \((?P<threshold>[0-9.e+-]+) \* \(1 - (?P<objective>[0-9.e+-]+)\)\)")
GUARD = re.compile(r">= (?P<events>\d+)$")


@pytest.mark.parametrize("config", ["demo", "mirror-collective"])
def test_burn_rate_alerts_use_the_daemons_policies(config: str) -> None:
    """One alert per SLO policy, with the engine's threshold, windows, guard and labels."""
    spec = spec_of(CONFIGS[config])
    alerts = [
        rule for rule in all_rules(generate_rules(spec)) if "long_window" in rule.get("labels", {})
    ]
    engine = Engine(spec)
    expected = []
    for slo in spec.slos:
        for policy in slo.policies:
            labels = {
                "alertname": slo.alert_name,
                "severity": policy.severity,
                "slo": slo.name,
                "journey": slo.journey,
                "service": spec.service,
                "long_window": format_window(policy.long_window),
                "short_window": format_window(policy.short_window),
                "burnrate_tier": "page" if policy.severity == "critical" else "ticket",
            }
            expected.append((labels, policy, slo))
    assert len(alerts) == len(expected)
    for alert, (labels, policy, slo) in zip(alerts, expected, strict=True):
        assert {"alertname": alert["alert"], **alert["labels"]} == {
            **labels,
            "sloth_severity": labels["burnrate_tier"],
        }
        assert "for" not in alert  # burn-rate alerts have no pending phase
        assert alert["annotations"] == dict(engine.annotations[alert_key(labels)])
        limits = [match.groupdict() for match in LIMIT.finditer(alert["expr"])]
        assert len(limits) == 2  # the long and the short window
        for limit in limits:
            assert float(limit["threshold"]) == pytest.approx(policy.threshold, rel=1e-12)
            assert float(limit["objective"]) == pytest.approx(slo.objective, rel=1e-12)
        windows = re.findall(r"slo:sli_error:ratio_rate(\w+)\{", alert["expr"])
        assert windows == [labels["long_window"], labels["short_window"]]
        guard = GUARD.search(alert["expr"])
        assert guard is not None
        assert int(guard["events"]) == min_events_for(policy, slo.objective)


def test_min_events_zero_drops_the_guard() -> None:
    """`min_events: 0` turns the daemon's low-traffic guard off, and the alert's with it."""
    rule_set = rules_of(
        """
journeys: [{name: chat, steps: [{name: send, url: /}]}]
slos: [{name: chat-availability, journey: chat, objective: 99%}]
alerting:
  burn_rate_policies:
    - {severity: critical, long: 1h, short: 5m, burn_rate: 14.4}
    - {severity: warning, long: 6h, short: 30m, burn_rate: 6, min_events: 5}
"""
    )
    alerts = [rule for rule in all_rules(rule_set) if "alert" in rule and "slo" in rule["labels"]]
    assert [GUARD.search(alert["expr"]) is not None for alert in alerts] == [True, True]
    assert alerts[1]["expr"].endswith(">= 5")


def test_every_reported_window_has_a_ratio_record() -> None:
    """The recorded windows are the daemon's `prober_slo_error_ratio` windows."""
    spec = spec_of(CONFIGS["demo"])
    rules = all_rules(generate_rules(spec))
    for slo in spec.slos:
        recorded = {
            rule["labels"]["sloth_window"]
            for rule in rules
            if rule.get("record", "").startswith("slo:sli_error:ratio_rate")
            and rule["labels"]["sloth_slo"] == slo.name
        }
        assert recorded == {prometheus_duration(window) for window in slo.windows}


@pytest.mark.parametrize(
    ("optimize", "window", "reads"),
    [
        (True, "5m", "slo:sli_bad_events:increase5m"),
        (True, "1h", "rate(prober_slo_events_total"),
        (True, "6h", "sum_over_time(slo:sli_bad_events:increase5m"),
        (True, "30d", "sum_over_time(slo:sli_bad_events:increase5m"),
        (False, "5m", "rate(prober_slo_events_total"),
        (False, "6h", "rate(prober_slo_events_total"),
        (False, "30d", "rate(prober_slo_events_total"),
    ],
)
def test_long_windows_come_from_the_5m_slices(optimize: bool, window: str, reads: str) -> None:
    """Windows over 1h sum the 5m slices; without the optimization all read the counters."""
    rules = all_rules(generate_rules(spec_of(CONFIGS["promtool"]), optimize_long_windows=optimize))
    record = next(
        rule for rule in rules if rule.get("record") == f"slo:sli_error:ratio_rate{window}"
    )
    assert reads in record["expr"]
    # No events is no sample (a filter on the denominator), never 0/0 = NaN.
    assert "> 0)" in record["expr"]
    slices = [rule for rule in rules if rule.get("record", "").endswith(":increase5m")]
    assert len(slices) == (2 if optimize else 0)


@pytest.mark.parametrize(
    ("optimize", "long_window", "slices_check"),
    [
        (True, "1h", None),  # the 1h ratio reads the counters too
        (True, "6h", "[6h:15m]"),  # 24 steps over the window
        (True, "1d", "[1d:1h]"),
        (True, "3d", "[3d:3h]"),
        (False, "1h", None),
        (False, "6h", None),
        (False, "3d", None),
    ],
)
def test_the_guard_counts_the_runs_from_the_counters(
    optimize: bool, long_window: str, slices_check: str | None
) -> None:
    """The low-traffic guard is the long window's runs by `increase()` of the counters, which
    Prometheus 2.x's closed and 3.x's left-open ranges agree on, never a count of samples;
    where the long window's ratio comes from the 5m slices, it also waits for the slices to
    cover the window wherever the counters do."""
    rules = all_rules(generate_rules(spec_of(CONFIGS["promtool"]), optimize_long_windows=optimize))
    (alert,) = [rule for rule in rules if rule.get("labels", {}).get("long_window") == long_window]
    runs = f'sum(increase(prober_slo_events_total{{slo="chat-availability"}}[{long_window}]))'
    guard = GUARD.search(alert["expr"])
    assert guard is not None
    assert alert["expr"].endswith(f"(\n  {runs}\n) >= {guard['events']}")
    assert "count_over_time" not in alert["expr"]
    assert "sum_over_time(slo:sli_events" not in alert["expr"]
    assert ("absent_over_time(" in alert["expr"]) == (slices_check is not None)
    if slices_check is not None:
        assert f"){slices_check}\n)" in alert["expr"]
        assert "present_over_time(slo:sli_events:increase5m{" in alert["expr"]


@pytest.mark.parametrize(
    ("when", "extra", "translated", "reason"),
    [
        ("error_ratio > 90%", "", "prober_journey_runs_total", None),
        ("error_ratio > 50%", "step: send, ", "prober_step_failures_total", None),
        ("p95 > 2s", "", "histogram_quantile(0.95", None),
        ("p99 >= 500ms", "", "histogram_quantile(0.99", None),
        ("p95 > 2s", "step: send, ", None, "percentile"),
        ("status_ratio(429) > 0", "", None, "last status code"),
        ("avg(tokens) > 500", "", None, "captured values"),
        ("changed(tokens)", "", None, "captured values"),
    ],
)
def test_threshold_rules(when: str, extra: str, translated: str | None, reason: str | None) -> None:
    """Rules the exported metrics express become alerts; the others are listed with a reason."""
    window = "" if when.startswith("changed") else ", window: 2m, for: 1m"
    rule_set = rules_of(
        f"""
service: shop
journeys:
  - {{name: chat, steps: [{{name: send, url: /, capture: {{tokens: json.n}}}}]}}
alerting:
  rules:
    - {{name: Rule, severity: warning, journey: chat, {extra}when: "{when}"{window}}}
"""
    )
    alerts = [rule for rule in all_rules(rule_set) if rule.get("alert") == "Rule"]
    if translated is None:
        assert alerts == []
        assert [skipped.name for skipped in rule_set.skipped] == ["Rule"]
        assert reason is not None
        assert reason in rule_set.skipped[0].reason
        return
    assert rule_set.skipped == ()
    (alert,) = alerts
    assert translated in alert["expr"]
    assert "[2m]" in alert["expr"]
    assert alert["for"] == "1m"
    assert alert["labels"]["journey"] == "chat"
    assert alert["labels"]["service"] == "shop"
    assert ("step" in alert["labels"]) == ("step:" in extra)


def test_absent_rules_cover_every_journey() -> None:
    """ProberAbsent: a target that is down, and per journey no run counted for 3 intervals."""
    rules = all_rules(generate_rules(spec_of(CONFIGS["promtool"])))
    absent = [rule for rule in rules if rule.get("alert") == "ProberAbsent"]
    causes = [(rule["labels"]["cause"], rule["labels"].get("journey")) for rule in absent]
    assert causes == [("target_down", None), ("no_runs", "chat"), ("no_runs", "healthcheck")]
    assert absent[0]["for"] == "3m"  # 3 intervals of the slowest journey (1m)
    assert "[3m]" in absent[1]["expr"]  # chat: every minute
    assert "[2m]" in absent[2]["expr"]  # healthcheck every 15s: 45s, raised to 2 scrapes
    assert all(rule["labels"]["severity"] == "critical" for rule in absent)


def test_prometheusrule_wraps_the_same_groups() -> None:
    """The Operator resource holds exactly the rule file's groups, under a valid name."""
    rule_set = generate_rules(spec_of(CONFIGS["demo"]))
    plain = yaml.safe_load(render_rules(rule_set))
    resource = yaml.safe_load(render_rules(rule_set, "prometheusrule"))
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["name"] == "prober-mirror-collective-api"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", resource["metadata"]["name"])
    assert resource["spec"]["groups"] == plain["groups"]


def test_unknown_format_is_refused() -> None:
    """A format other than the two is a caller's mistake."""
    with pytest.raises(ValueError, match="unknown rule format"):
        render_rules(generate_rules(spec_of(CONFIGS["demo"])), "json")  # type: ignore[arg-type]


def test_inhibit_rules_suppress_tickets_of_the_same_slo() -> None:
    """The snippet: a page suppresses the same alert/service/SLO's tickets."""
    (rule,) = inhibit_rules(spec_of(CONFIGS["demo"]))["inhibit_rules"]
    assert rule["equal"] == ["alertname", "service", "slo"]
    assert 'severity="critical"' in rule["source_matchers"]
    assert 'severity="warning"' in rule["target_matchers"]


def test_target_down_looks_back_over_one_series_per_replica() -> None:
    """ProberAbsent's target_down recognises this config's probers by its first journey's
    success counter (one series per replica, cheap to look back a day over)."""
    rules = all_rules(
        rules_of(
            "journeys: [{name: b, steps: [{name: s, url: /}]}, {name: api.v2, steps: [{name: s, url: /}]}]"
        )
    )
    down = next(rule for rule in rules if rule.get("labels", {}).get("cause") == "target_down")
    assert (
        'max_over_time(prober_journey_runs_total{journey="api.v2", result="success"}[1d])'
        in down["expr"]
    )
