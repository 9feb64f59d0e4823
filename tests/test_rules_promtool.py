"""The generated rules under promtool: `promtool check rules` on every golden rule file, the
`promtool test rules` suites in tests/promtool/ (fast outage, 4% degradation, slow leak,
recovery, two replicas, a gap in the data, ProberAbsent, a threshold rule, low traffic), and
each suite's expected burn-rate alerts checked against the daemon's own engine fed the same
runs; for the low-traffic suite, at every evaluation, under Prometheus 2.x's closed and 3.x's
left-open range semantics, at two evaluation intervals."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.config import load_config
from prober.slos import engine_spec
from slo.alerting import AlertKey, alert_key
from slo.engine import Engine, EngineSpec, Event
from slo.promrules import RuleSet, generate_rules, prometheus_duration, render_rules
from tests.conftest import REPO

pytestmark = pytest.mark.integration

SUITES_DIR = REPO / "tests" / "promtool"
SUITES = sorted(path.name for path in SUITES_DIR.glob("*.yml"))
#: The rule file each suite names, and the config in tests/promtool/ it is generated from.
SUITE_RULES = {
    "../golden/rules/promtool.yml": "prober.yaml",
    "../golden/rules/promtool-low-traffic.yml": "low-traffic.yaml",
}
LOW_TRAFFIC = "low-traffic.yml"
#: The rule files (the inhibit snippet is Alertmanager's: test_rules_integration checks it).
GOLDEN_RULES = sorted(
    path
    for path in (REPO / "tests" / "golden" / "rules").glob("*.yml")
    if not path.name.endswith(".inhibit.yml")
)


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(
                "promtool is not installed (.ci/run installs the Debian package prometheus)"
            )
        pytest.skip("promtool is not installed: apt-get install prometheus")
    return binary


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("path", GOLDEN_RULES, ids=lambda path: path.name)
def test_promtool_check_rules(path: Path, tmp_path: Path) -> None:
    """Every generated rule file (and the PrometheusRule's groups) passes promtool's check."""
    document = yaml.safe_load(path.read_text())
    if document.get("kind") == "PrometheusRule":
        rules = tmp_path / "rules.yml"
        rules.write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}))
        path = rules
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def load_suite(suite: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SUITES_DIR / suite).read_text())
    return document


def suite_spec(document: dict[str, Any]) -> EngineSpec:
    """The engine spec of the config the suite's rule file is generated from."""
    (rule_file,) = document["rule_files"]
    return engine_spec(load_config(SUITES_DIR / SUITE_RULES[rule_file]))


def run_suite(
    document: dict[str, Any], rules: Path, path: Path
) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` on `document` (written to `path`) against the rule file `rules`."""
    document = {**document, "rule_files": [str(rules)]}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return run_promtool("test", "rules", str(path))


@pytest.fixture(scope="module")
def generated_rules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The suites' rule files, generated now from their configs (not the golden copies)."""
    directory = tmp_path_factory.mktemp("promtool")
    paths = {}
    for rule_file, config in SUITE_RULES.items():
        path = directory / Path(rule_file).name
        path.write_text(render_rules(generate_rules(engine_spec(load_config(SUITES_DIR / config)))))
        paths[rule_file] = path
    return paths


@pytest.mark.parametrize("suite", SUITES)
def test_promtool_suite(suite: str, generated_rules: dict[str, Path], tmp_path: Path) -> None:
    """`promtool test rules` passes for each suite against freshly generated rules."""
    document = load_suite(suite)
    (rule_file,) = document["rule_files"]
    assert rule_file in SUITE_RULES
    result = run_suite(document, generated_rules[rule_file], tmp_path / suite)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("interval", ["30s", "1m"])
def test_low_traffic_pages_at_every_evaluation_interval(
    interval: str, generated_rules: dict[str, Path], tmp_path: Path
) -> None:
    """Issue #13: a 99.9% SLO probed every 2 minutes pages on 6h/30m once its 6h window holds
    167 runs, at a 30s and a 1m evaluation interval alike. The guard used to count the runs
    from the 5m slices and, under Prometheus 2.x's closed ranges, came out 10/11 (30s) or 5/6
    (1m) of them: 164 or 150 of the 180, and the page never fired."""
    document = load_suite(LOW_TRAFFIC)
    document["evaluation_interval"] = interval
    (rule_file,) = document["rule_files"]
    result = run_suite(document, generated_rules[rule_file], tmp_path / LOW_TRAFFIC)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_expectation_fails(generated_rules: dict[str, Path], tmp_path: Path) -> None:
    """The suites can fail: the fast outage does not page after 4 failed runs out of 60."""
    document = load_suite("fast-outage.yml")
    first = document["tests"][0]["alert_rule_test"][0]
    assert first["eval_time"] == "364m"
    second = document["tests"][0]["alert_rule_test"][1]
    first["exp_alerts"] = second["exp_alerts"]  # claim the page fires a minute early
    document["tests"][0]["alert_rule_test"] = [first]
    document["tests"][0].pop("promql_expr_test", None)
    result = run_suite(
        document, generated_rules["../golden/rules/promtool.yml"], tmp_path / "broken.yml"
    )
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


# ------------------------------------------------ the same runs through the daemon's engine

_RUN = re.compile(r"(?P<start>-?[0-9.]+)(?:(?P<op>[+-])(?P<step>[0-9.]+))?x(?P<count>\d+)")


def expand(values: str) -> list[float | None]:
    """promtool's series notation: `a+bxn` (n+1 values), `axn`, `_`, `_xn` (n gaps), `stale`."""
    out: list[float | None] = []
    for token in values.split():
        if token in ("_", "stale"):
            out.append(None)
        elif token.startswith("_x"):
            out.extend([None] * int(token[2:]))
        elif match := _RUN.fullmatch(token):
            start, step = float(match["start"]), float(match["step"] or 0)
            sign = -1 if match["op"] == "-" else 1
            out.extend(start + sign * step * i for i in range(int(match["count"]) + 1))
        else:
            out.append(float(token))
    return out


def increments(values: list[float | None]) -> list[int]:
    """Events per sample from a counter's samples (a drop is a restart from 0)."""
    out, previous = [], None
    for value in values:
        if value is None:
            out.append(0)
            continue
        step = value if previous is None or value < previous else value - previous
        out.append(round(step) if previous is not None else 0)
        previous = value
    return out


def slo_events(document: dict[str, Any], spec: EngineSpec) -> list[Event]:
    """One engine event per run the suite's `prober_slo_events_total` counters count, at the
    scrape that first counts it, for the journey of the counter's SLO."""
    test = document["tests"][0]
    scrape = duration(test["interval"])
    journeys = {slo.name: slo.journey for slo in spec.slos}
    per_scrape: dict[int, list[tuple[str, bool]]] = {}
    for series in test["input_series"]:
        name = series["series"]
        if not name.startswith("prober_slo_events_total"):
            continue
        match = re.search(r'slo="(?P<slo>[^"]+)"', name)
        assert match is not None
        journey = journeys[match["slo"]]
        good = 'result="good"' in name
        for index, count in enumerate(increments(expand(series["values"]))):
            per_scrape.setdefault(index, []).extend([(journey, good)] * count)
    return [
        Event(timestamp=index * scrape, journey=journey, success=good)
        for index in sorted(per_scrape)
        for journey, good in per_scrape[index]
    ]


_DURATION = re.compile(r"(\d+)(ms|[smhdw])")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> float:
    """A Prometheus duration (`30s`, `334m`, `5h34m`, `1d`, `1500ms`) in seconds."""
    parts = _DURATION.findall(text)
    assert "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * _UNITS[u] for n, u in parts)


def firing_burn_rate_alerts(engine: Engine, now: float) -> frozenset[AlertKey]:
    """The engine's firing burn-rate alerts after evaluating at `now`."""
    tick = engine.evaluate(now)
    names = {slo.alert_name for slo in engine.spec.slos}
    return frozenset(
        key
        for key, alert in tick.alerts.alerts.items()
        if alert.phase == "firing" and dict(key)["alertname"] in names
    )


def burn_rate_checks(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        check
        for check in document["tests"][0].get("alert_rule_test", [])
        if check["alertname"] == "SLOBurnRate"
    ]


@pytest.mark.parametrize("suite", [s for s in SUITES if burn_rate_checks(load_suite(s))])
def test_suite_expectations_are_the_daemons(suite: str) -> None:
    """Each suite's expected burn-rate alerts are what the daemon's engine says for the same runs."""
    document = load_suite(suite)
    spec = suite_spec(document)
    engine = Engine(spec, windows="exact")
    events = slo_events(document, spec)
    checks = burn_rate_checks(document)
    position = 0
    for check in sorted(checks, key=lambda check: duration(check["eval_time"])):
        now = duration(check["eval_time"])
        while position < len(events) and events[position].timestamp <= now:
            engine.record(events[position])
            position += 1
        firing = {
            (labels["slo"], labels["long_window"], labels["short_window"])
            for labels in map(dict, firing_burn_rate_alerts(engine, now))
        }
        expected = {
            (labels["slo"], labels["long_window"], labels["short_window"])
            for alert in check["exp_alerts"] or []
            for labels in [alert["exp_labels"]]
        }
        assert firing == expected, f"{suite} at {check['eval_time']}"


# ------------------------------------- every evaluation, closed and left-open range semantics


def left_open(rules: str) -> str:
    """The rule file with every range 1 ms shorter: on samples at whole seconds, a closed
    range `[t-W+1ms, t]` (Prometheus 2.x) holds what the left-open `(t-W, t]` of Prometheus
    3.x holds. (rate/increase then extrapolate to t-W+1ms: a 1 ms / W difference.)"""
    document = yaml.safe_load(rules)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["expr"] = re.sub(
                r"\[(\w+)\]",
                lambda match: f"[{prometheus_duration(duration(match[1]) - 0.001)}]",
                rule["expr"],
            )
    return yaml.safe_dump(document, sort_keys=False)


def promtool_alert(rule_set: RuleSet, key: AlertKey) -> dict[str, Any]:
    """The alert promtool reports for the engine's `key`: the rule's labels and annotations,
    and the labels of its long window's ratio (Sloth's ids, `sloth_window`)."""
    for group in rule_set.groups:
        for rule in group["rules"]:
            labels = {k: v for k, v in rule.get("labels", {}).items() if k != "sloth_severity"}
            if "alert" in rule and alert_key({"alertname": rule["alert"], **labels}) == key:
                ratio = re.search(r"slo:sli_error:ratio_rate(\w+)\{([^}]*)\}", rule["expr"])
                assert ratio is not None
                ids = dict(re.findall(r'(\w+)="([^"]*)"', ratio[2]))
                return {
                    "exp_labels": {**rule["labels"], **ids, "sloth_window": ratio[1]},
                    "exp_annotations": rule["annotations"],
                }
    raise AssertionError(f"no rule for {key}")


@pytest.mark.parametrize("semantics", ["closed", "left-open"])
@pytest.mark.parametrize("interval", ["30s", "1m"])
def test_low_traffic_alerts_are_the_daemons_at_every_evaluation(
    interval: str, semantics: str, tmp_path: Path
) -> None:
    """The low-traffic runs through the daemon's engine and through promtool, evaluated every
    `interval`: at every evaluation, promtool fires exactly the engine's burn-rate alerts,
    except within one evaluation interval and one scrape interval of the engine's changes
    (the guard counts from scrapes, which see a run up to a scrape interval late; promtool
    and the engine each change state at their own evaluations). Under Prometheus 2.x's closed
    ranges, and under 3.x's left-open ones (emulated by `left_open`)."""
    document = load_suite(LOW_TRAFFIC)
    test = document["tests"][0]
    spec = suite_spec(document)
    step, scrape = duration(interval), duration(test["interval"])
    end = max(duration(check["eval_time"]) for check in test["alert_rule_test"]) + 10 * 60

    engine = Engine(spec)
    events = slo_events(document, spec)
    timeline: list[tuple[float, frozenset[AlertKey]]] = []
    position = 0
    for index in range(round(end / step) + 1):
        now = index * step
        while position < len(events) and events[position].timestamp <= now:
            engine.record(events[position])
            position += 1
        timeline.append((now, firing_burn_rate_alerts(engine, now)))
    changes = [now for (_, before), (now, firing) in pairwise(timeline) if firing != before]
    tolerance = step + scrape
    checks = [
        (now, firing)
        for now, firing in timeline
        if not any(change - tolerance <= now < change + tolerance for change in changes)
    ]
    # The engine pages twice (see the suite): from the 167th run (334m) until both failed
    # runs have left the 30m window (342m), and from the run that fails at 402m for 30m.
    assert changes == [minutes * 60.0 for minutes in (334, 342, 402, 432)]
    assert any(firing for _, firing in checks)
    assert any(not firing for _, firing in checks)

    rule_set = generate_rules(spec)
    rules = render_rules(rule_set)
    if semantics == "left-open":
        rules = left_open(rules)
    rules_path = tmp_path / "rules.yml"
    rules_path.write_text(rules)
    document["evaluation_interval"] = interval
    test["alert_rule_test"] = [
        {
            "eval_time": f"{now:.0f}s",
            "alertname": "SLOBurnRate",
            "exp_alerts": [promtool_alert(rule_set, key) for key in sorted(firing)],
        }
        for now, firing in checks
    ]
    test.pop("promql_expr_test", None)
    result = run_suite(document, rules_path, tmp_path / "every-evaluation.yml")
    assert result.returncode == 0, result.stdout[:5000] + result.stderr


def without_slices_check(rules: str) -> str:
    """The rule file without the burn-rate alerts' check that the 5m slices cover the window."""
    document = yaml.safe_load(rules)
    removed = 0
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["expr"], found = re.subn(
                r"\nand on \(\)\nabsent_over_time\(\n.*?\n\)(?=\nand on)",
                "",
                rule["expr"],
                flags=re.S,
            )
            removed += found
    assert removed == 3  # the 6h, 1d and 3d policies' (1h reads the counters)
    return yaml.safe_dump(document, sort_keys=False)


@pytest.mark.parametrize("semantics", ["closed", "left-open"])
@pytest.mark.parametrize(
    ("check", "pages"), [(True, False), (False, True)], ids=["with-check", "without-check"]
)
def test_the_guard_waits_for_the_slices_to_cover_the_long_window(
    semantics: str, check: bool, pages: bool, tmp_path: Path
) -> None:
    """The rules loaded onto a prober with history: its counters reach 6h back, the 5m slices
    only to when the rules came. The long window's ratio is then over the few runs since, the
    guard's count over all 180 of the 6h: one failed run (1 of 20 since the rules came, 1 of
    180 in the 6h, under the daemon's 0.6%) would page. Emulated by scraping the counters
    every 6 minutes for the first 6h (a 5m range holds one scrape: no slice is recorded), then
    every minute. The check that the slices cover the window keeps the page silent; without
    it, the page fires."""
    runs, failed, dense_from, end = range(2, 451, 2), {400}, 360, 450
    good = [
        sum(1 for run in runs if run <= minute and run not in failed) for minute in range(end + 1)
    ]
    bad = [sum(1 for run in runs if run <= minute and run in failed) for minute in range(end + 1)]

    def values(counts: list[int]) -> str:
        return " ".join(
            str(count) if minute >= dense_from or minute % 6 == 0 else "_"
            for minute, count in enumerate(counts)
        )

    series = 'prober_slo_events_total{{slo="search-availability", result="{}", job="prober", instance="a"}}'
    spec = engine_spec(load_config(SUITES_DIR / "low-traffic.yaml"))
    rule_set = generate_rules(spec)
    rules = render_rules(rule_set)
    if not check:
        rules = without_slices_check(rules)
    if semantics == "left-open":
        rules = left_open(rules)
    rules_path = tmp_path / "rules.yml"
    rules_path.write_text(rules)
    (page,) = [
        rule
        for group in rule_set.groups
        for rule in group["rules"]
        if rule.get("labels", {}).get("long_window") == "6h"
    ]
    key = alert_key(
        {
            "alertname": page["alert"],
            **{k: v for k, v in page["labels"].items() if k != "sloth_severity"},
        }
    )
    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series.format("good"), "values": values(good)},
                    {"series": series.format("bad"), "values": values(bad)},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": f"{minute}m",
                        "alertname": "SLOBurnRate",
                        "exp_alerts": [promtool_alert(rule_set, key)] if pages else [],
                    }
                    for minute in (400, 410, 420)
                ],
                "promql_expr_test": [
                    {  # the guard's count: the 180 runs of the 6h, sparse scrapes or not
                        "expr": 'round(sum(increase(prober_slo_events_total{slo="search-availability"}[6h])))',
                        "eval_time": "400m",
                        "exp_samples": [{"labels": "{}", "value": 180}],
                    }
                ],
            }
        ],
    }
    result = run_suite(document, rules_path, tmp_path / "loaded-late.yml")
    assert result.returncode == 0, result.stdout[:5000] + result.stderr


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("0+1x2 5x2 _x1 7 stale 9", [0, 1, 2, 5, 5, 5, None, 7, None, 9]),
        ("3", [3]),
        ("10-2x2", [10, 8, 6]),
        ("_", [None]),
    ],
)
def test_expand_notation(values: str, expected: list[float | None]) -> None:
    """The notation reader matches promtool's (checked against promtool by hand: `axn` gives
    n+1 values, `_xn` gives n)."""
    assert expand(values) == expected
