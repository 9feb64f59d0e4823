"""The generated rules under promtool: `promtool check rules` on every golden rule file, the
`promtool test rules` suites in tests/promtool/ (fast outage, 4% degradation, slow leak,
recovery, two replicas, a gap in the data, ProberAbsent, a threshold rule), and each suite's
expected burn-rate alerts checked against the daemon's own engine fed the same runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.config import load_config
from prober.slos import engine_spec
from slo.engine import Engine, Event
from slo.promrules import generate_rules, render_rules
from tests.conftest import REPO

pytestmark = pytest.mark.integration

SUITES_DIR = REPO / "tests" / "promtool"
SUITES = sorted(path.name for path in SUITES_DIR.glob("*.yml"))
#: The rule files (the inhibit snippet is Alertmanager's: test_rules_integration checks it).
GOLDEN_RULES = sorted(
    path
    for path in (REPO / "tests" / "golden" / "rules").glob("*.yml")
    if not path.name.endswith(".inhibit.yml")
)
MINUTE = 60.0


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


@pytest.fixture(scope="module")
def generated_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suites' rules, generated now from tests/promtool/prober.yaml (not the golden)."""
    spec = engine_spec(load_config(SUITES_DIR / "prober.yaml"))
    path = tmp_path_factory.mktemp("promtool") / "rules.yml"
    path.write_text(render_rules(generate_rules(spec)))
    return path


@pytest.mark.parametrize("suite", SUITES)
def test_promtool_suite(suite: str, generated_rules: Path, tmp_path: Path) -> None:
    """`promtool test rules` passes for each suite against freshly generated rules."""
    document = yaml.safe_load((SUITES_DIR / suite).read_text())
    assert document["rule_files"] == ["../golden/rules/promtool.yml"]
    document["rule_files"] = [str(generated_rules)]
    copy = tmp_path / suite
    copy.write_text(yaml.safe_dump(document, sort_keys=False))
    result = run_promtool("test", "rules", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_expectation_fails(generated_rules: Path, tmp_path: Path) -> None:
    """The suites can fail: the fast outage does not page after 4 failed runs out of 60."""
    document = yaml.safe_load((SUITES_DIR / "fast-outage.yml").read_text())
    document["rule_files"] = [str(generated_rules)]
    first = document["tests"][0]["alert_rule_test"][0]
    assert first["eval_time"] == "364m"
    second = document["tests"][0]["alert_rule_test"][1]
    first["exp_alerts"] = second["exp_alerts"]  # claim the page fires a minute early
    document["tests"][0]["alert_rule_test"] = [first]
    document["tests"][0].pop("promql_expr_test", None)
    copy = tmp_path / "broken.yml"
    copy.write_text(yaml.safe_dump(document, sort_keys=False))
    result = run_promtool("test", "rules", str(copy))
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


def slo_events(document: dict[str, Any]) -> list[Event]:
    """One engine event per run the suite's `prober_slo_events_total` counters count."""
    test = document["tests"][0]
    assert test["interval"] == "1m"
    per_minute: dict[int, list[bool]] = {}
    for series in test["input_series"]:
        name = series["series"]
        if not name.startswith("prober_slo_events_total"):
            continue
        good = 'result="good"' in name
        for index, count in enumerate(increments(expand(series["values"]))):
            per_minute.setdefault(index, []).extend([good] * count)
    return [
        Event(timestamp=index * MINUTE, journey="chat", success=good)
        for index in sorted(per_minute)
        for good in per_minute[index]
    ]


def duration(text: str) -> float:
    units = {"m": 60, "h": 3600, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))


@pytest.mark.parametrize(
    "suite", [s for s in SUITES if "SLOBurnRate" in (SUITES_DIR / s).read_text()]
)
def test_suite_expectations_are_the_daemons(suite: str) -> None:
    """Each suite's expected burn-rate alerts are what the daemon's engine says for the same runs."""
    document = yaml.safe_load((SUITES_DIR / suite).read_text())
    spec = engine_spec(load_config(SUITES_DIR / "prober.yaml"))
    engine = Engine(spec, windows="exact")
    events = slo_events(document)
    checks = [
        check
        for check in document["tests"][0]["alert_rule_test"]
        if check["alertname"] == "SLOBurnRate"
    ]
    assert checks
    position = 0
    for check in sorted(checks, key=lambda check: duration(check["eval_time"])):
        now = duration(check["eval_time"])
        while position < len(events) and events[position].timestamp <= now:
            engine.record(events[position])
            position += 1
        tick = engine.evaluate(now)
        firing = {
            (labels["long_window"], labels["short_window"])
            for key, signal in tick.signals.items()
            if signal.active and (labels := dict(key)).get("alertname") == "SLOBurnRate"
        }
        expected = {
            (alert["exp_labels"]["long_window"], alert["exp_labels"]["short_window"])
            for alert in check["exp_alerts"] or []
        }
        assert firing == expected, f"{suite} at {check['eval_time']}"


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
