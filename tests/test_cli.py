"""The real `prober` command line as a subprocess against the bundled sample API:
exit codes, reports, failure reasons, secrets absent from every output."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from prober.demo import DEFAULT_PASSWORD, Fault, SampleAPI
from tests.conftest import CONFIG_DIR, free_port, run_prober

pytestmark = pytest.mark.integration

DEMO = str(CONFIG_DIR / "demo.yaml")
GOOD_ENV = {"DEMO_PASSWORD": DEFAULT_PASSWORD}


def test_run_once_passes_against_sample_api(sample_api: SampleAPI, tmp_path: Path) -> None:
    """All journeys pass: exit 0, summary says OK, reports written in DESIGN's shape."""
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    result = run_prober(
        "run-once",
        "-c",
        DEMO,
        "--base-url",
        sample_api.url,
        "--iterations",
        "2",
        "--json",
        str(report),
        "--junit",
        str(junit),
        env=GOOD_ENV,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: all journeys passed" in result.stdout
    data = json.loads(report.read_text())
    assert data["success"] is True
    assert [journey["name"] for journey in data["journeys"]] == ["healthcheck", "chat"]
    chat_run = data["journeys"][1]["runs"][0]
    assert set(chat_run) >= {"success", "duration_seconds", "failed_step", "steps"}
    assert [step["name"] for step in chat_run["steps"]] == ["login", "send-message"]
    step = chat_run["steps"][0]
    assert set(step) >= {"name", "success", "status_code", "duration_seconds", "phases", "failure"}
    assert set(step["phases"]) == {"resolve", "connect", "tls", "processing", "transfer"}
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert {case.get("classname") for case in cases} == {"healthcheck", "chat"}
    assert sample_api.stats()["/api/chat/message"] == 2


def test_fresh_connection_has_phase_timings(sample_api: SampleAPI, tmp_path: Path) -> None:
    """Each run opens a fresh connection (connect > 0); a reused one reports connect 0."""
    report = tmp_path / "r.json"
    result = run_prober(
        "run-once",
        "-c",
        DEMO,
        "--base-url",
        sample_api.url,
        "--journey",
        "chat",
        "--json",
        str(report),
        env=GOOD_ENV,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    login, send = json.loads(report.read_text())["journeys"][0]["runs"][0]["steps"]
    assert login["phases"]["connect"] > 0
    assert login["phases"]["processing"] > 0
    assert send["phases"]["connect"] == 0  # keep-alive within the run
    assert send["phases"]["processing"] > 0


@pytest.mark.parametrize(
    ("fault_route", "env", "failed_step", "reason", "message"),
    [
        (
            None,
            {"DEMO_PASSWORD": "wrong-password"},
            "login",
            "status",
            "expected status == 200, got 401",
        ),
        (
            "/api/chat/message",
            GOOD_ENV,
            "send-message",
            "status",
            "expected status == 200, got 503",
        ),
        (None, {}, "login", "template", "environment variable DEMO_PASSWORD is not set"),
    ],
    ids=["wrong-password", "chat-503", "secret-unset"],
)
def test_run_once_fails_naming_step_and_reason(
    sample_api: SampleAPI,
    tmp_path: Path,
    fault_route: str | None,
    env: dict[str, str],
    failed_step: str,
    reason: str,
    message: str,
) -> None:
    """A broken deploy exits 1 and says which step failed and why."""
    if fault_route:
        sample_api.set_fault(fault_route, Fault(error_rate=1.0, status=503))
    report = tmp_path / "r.json"
    result = run_prober(
        "run-once",
        "-c",
        DEMO,
        "--base-url",
        sample_api.url,
        "--journey",
        "chat",
        "--json",
        str(report),
        env=env,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{reason}: {message}" in result.stdout
    journey_run = json.loads(report.read_text())["journeys"][0]["runs"][0]
    assert journey_run["failed_step"] == failed_step
    assert journey_run["steps"][-1]["failure"]["reason"] == reason
    assert "FAILED: chat" in result.stdout


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [("http://127.0.0.1:{closed}", "connect")],
    ids=["connection-refused"],
)
def test_unreachable_target_is_classified(base_url: str, reason: str) -> None:
    """A target that is not there is a classified failure, not a crash."""
    url = base_url.format(closed=free_port())
    result = run_prober("run-once", "-c", DEMO, "--base-url", url, "--journey", "healthcheck")
    assert result.returncode == 1
    assert f"FAIL    {reason}: " in result.stdout
    assert "Traceback" not in result.stderr


def test_latency_gate_missed_exits_1(sample_api: SampleAPI, tmp_path: Path) -> None:
    """A run that passes its checks but misses a latency gate still fails the pipeline."""
    sample_api.set_fault("/health", Fault(delay=0.15))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"target: {{base_url: '{sample_api.url}'}}\n"
        "gates: {max_p95: 100ms}\n"
        "journeys: [{name: health, steps: [{name: get, url: /health}]}]\n"
    )
    result = run_prober("run-once", "-c", str(config), "--iterations", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gate MISS p95" in result.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("journeys:\n  - name: a\n    steps: [\n", "YAML syntax error"),
        (
            "journeys: [{name: a, steps: [{name: s, url: /, expect: ['status =~ 2']}]}]",
            "journeys[0].steps[0].expect[0]: unknown operator '=~'",
        ),
        (
            "journeys: [{name: a, steps: [{name: s, url: /}], intervall: 5s}]",
            "journeys[0].intervall: unknown key 'intervall'",
        ),
        (
            "journeys: [{name: a, steps: [{name: s, url: /}]}]\nslos: [{name: x, journey: b, objective: 99%}]",
            "slos[0].journey: unknown journey 'b'",
        ),
        (
            "journeys: [{name: a, steps: [{name: s, url: /}]}]\nslos: [{name: x, journey: a, objective: 100%}]",
            "slos[0].objective: objective must lie strictly between",
        ),
        (
            "journeys: [{name: a, steps: [{name: s, url: '/${tok}'}]}]",
            "journeys[0].steps[0].url: unknown variable ${tok}",
        ),
        (
            "journeys: [{name: a, interval: 5 min, steps: [{name: s, url: /}]}]",
            "journeys[0].interval: invalid duration '5 min'",
        ),
    ],
    ids=[
        "missing-file",
        "yaml-syntax",
        "bad-condition",
        "unknown-key",
        "unknown-journey",
        "bad-objective",
        "uncaptured-variable",
        "bad-duration",
    ],
)
@pytest.mark.parametrize("command", ["validate", "run-once"])
def test_bad_config_exits_2_without_traceback(
    tmp_path: Path, command: str, content: str | None, expected: str
) -> None:
    """Every kind of config error exits 2 with `path: message` and no traceback."""
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    result = run_prober(command, "-c", str(path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_explains_valid_config() -> None:
    """`validate` exits 0 and shows each journey with its inherited defaults."""
    result = run_prober("validate", "-c", DEMO)
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout
    assert "healthcheck: every 15s" in result.stdout
    assert "send-message: POST /api/chat/message (timeout 5s)" in result.stdout


def test_unknown_journey_is_usage_error() -> None:
    """`--journey` naming no journey exits 2 and suggests the right name."""
    result = run_prober("run-once", "-c", DEMO, "--journey", "chta")
    assert result.returncode == 2
    assert "did you mean 'chat'?" in result.stderr


def test_environment_twins_of_flags(sample_api: SampleAPI) -> None:
    """`PROBER_BASE_URL` and `PROBER_JOURNEY` act like their flags."""
    result = run_prober(
        "run-once",
        "-c",
        DEMO,
        env={"PROBER_BASE_URL": sample_api.url, "PROBER_JOURNEY": "healthcheck"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthcheck" in result.stdout
    assert "chat" not in result.stdout.split("\n\n")[0]
    assert sample_api.stats()["/api/auth/login"] == 0


def test_wait_ready_gives_up(tmp_path: Path) -> None:
    """`--wait-ready` against nothing exits 1 after the time is up, saying why."""
    result = run_prober(
        "run-once",
        "-c",
        DEMO,
        "--base-url",
        f"http://127.0.0.1:{free_port()}",
        "--wait-ready",
        "1s",
    )
    assert result.returncode == 1
    assert "healthcheck not ready after 1s: step health: connect:" in result.stderr


def test_wait_ready_waits_for_rollout() -> None:
    """`--wait-ready` polls until a target that starts late is up, then runs."""
    port = free_port()
    late = SampleAPI(port=port)
    timer = threading.Timer(1.5, late.start)
    timer.start()
    try:
        result = run_prober(
            "run-once",
            "-c",
            DEMO,
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--journey",
            "healthcheck",
            "--wait-ready",
            "30s",
        )
    finally:
        timer.join()
        late.stop()
    assert result.returncode == 0, result.stdout + result.stderr


def test_secret_never_appears_in_any_output(echo_server: str, tmp_path: Path) -> None:
    """A target that echoes the secret back cannot leak it to stdout, stderr or reports."""
    secret = "Tr0ub4dor&3-secret"
    config = tmp_path / "c.yaml"
    config.write_text(
        f"target: {{base_url: '{echo_server}'}}\n"
        "journeys:\n"
        "  - name: login\n"
        "    steps:\n"
        "      - name: login\n"
        "        method: POST\n"
        "        url: /login?password=${secret.PROBE_PASSWORD}\n"
        "        json: {password: '${secret.PROBE_PASSWORD}'}\n"
        "        expect: [status == 200, json.received.password == 'x', json.path contains 'nope']\n"
        "  - name: elsewhere\n"
        f"    steps: [{{name: s, url: 'http://127.0.0.1:{free_port()}/?p=${{secret.PROBE_PASSWORD}}'}}]\n"
    )
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    result = run_prober(
        "run-once",
        "-c",
        str(config),
        "--json",
        str(report),
        "--junit",
        str(junit),
        env={"PROBE_PASSWORD": secret},
    )
    assert result.returncode == 1
    assert "***" in result.stdout  # the echoed value was there, and masked
    outputs = [result.stdout, result.stderr, report.read_text(), junit.read_text()]
    for encoded in (secret, "Tr0ub4dor%263-secret", "Tr0ub4dor\\u00263"):
        assert not any(encoded in output for output in outputs)


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        (
            "99.5%",
            [
                "    with a full long window at this rate:",
                "    critical 1h/5m         burn rate > 14.4: trips at 5 failed of 60 runs in 1h",
                "    critical 1h/5m         from run 14 (13m): 2 failed of 14 trip it, rising to 5 of 60 when full",
                # Issue #13: the page that fired on the 2nd failed run of a cold start.
                "    critical 6h/30m        from run 34 (33m): 2 failed of 34 trip it, rising to 11 of 360 when full",
            ],
        ),
        (
            "99.9%",
            [
                "    critical 1h/5m         burn rate > 14.4: SILENT: needs 70 runs in 1h, this rate gives 60",
                "    critical 1h/5m         never fires (see above)",
                "    critical 6h/30m        from run 167 (2h46m): 2 failed of 167 trip it, rising to 3 of 360 when full",
            ],
        ),
    ],
    ids=["trips", "silenced-by-min-events"],
)
def test_validate_prints_resolution_table(
    tmp_path: Path, objective: str, expected: list[str]
) -> None:
    """`validate` says, per SLO and policy, how many failed runs trip it at the probe rate,
    with the long window full and while it fills."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "journeys: [{name: chat, interval: 1m, steps: [{name: s, url: /}]}]\n"
        f"slos: [{{name: avail, journey: chat, objective: {objective}, window: 30d}}]\n"
    )
    result = run_prober("validate", "-c", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in expected if line not in lines] == []


def test_validate_without_the_guard_warns_of_single_failures(tmp_path: Path) -> None:
    """With `min_events: 0` (or one set below the derived guard) `validate` says that a single
    failed run can page on a cold start, and when it does so in a full window too."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "journeys: [{name: chat, interval: 1m, steps: [{name: s, url: /}]}]\n"
        "slos: [{name: avail, journey: chat, objective: 99.5%, window: 30d}]\n"
        "alerting:\n"
        "  burn_rate_policies:\n"
        "    - {severity: critical, long: 1h, short: 5m, budget_consumed: 2%, min_events: 0}\n"
        "    - {severity: critical, long: 6h, short: 30m, burn_rate: 6, min_events: 10}\n"
        "    - {severity: warning, long: 1d, short: 2h, burn_rate: 0.1, min_events: 0}\n"
    )
    result = run_prober("validate", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-8:] == [
        "    while it fills (cold start, no saved state), min_events decides: a policy cannot fire",
        "    until its long window holds min_events runs (time shown from the first run), then:",
        "    critical 1h/5m         no guard (min_events 0): 1 failed of 1 run trips it, rising to 5 of 60 when full",
        "    critical 6h/30m        from run 10 (9m): 1 failed of 10 trips it, rising to 11 of 360 when full",
        "    warning 1d/2h          no guard (min_events 0): 1 failed of 1 run trips it, and 1 of 1440 when full",
        "    WARNING: a single failed run fires the critical 1h/5m policy on a cold start (1 failed of 1 run)",
        "    WARNING: a single failed run fires the critical 6h/30m policy on a cold start (1 failed of 10 runs)",
        "    WARNING: a single failed run fires the warning 1d/2h policy",
    ]


@pytest.mark.parametrize("name", ["demo", "mirror-collective"])
def test_validate_output_of_bundled_configs(name: str, golden) -> None:  # type: ignore[no-untyped-def]
    """`validate`'s whole text for the shipped configs (tests/golden/validate)."""
    result = run_prober("validate", "-c", str(CONFIG_DIR / f"{name}.yaml"))
    assert result.returncode == 0, result.stderr
    golden(f"validate/{name}.txt", result.stdout)


def test_corrupt_state_file_exits_2(tmp_path: Path) -> None:
    """`prober run` with a state file that is not SQLite says so and exits 2, no traceback."""
    state = tmp_path / "state.db"
    state.write_bytes(b"this is not a database" * 100)
    result = run_prober(
        "run", "-c", DEMO, "--state", str(state), "--listen", f"127.0.0.1:{free_port()}"
    )
    assert result.returncode == 2
    assert str(state) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("interval", "window", "expected"),
    [
        ("30s", "30d", "30s slots, exact at every evaluation up to 3d; 30d in 1h slots"),
        ("45s", "3d", "15s slots, exact at every evaluation up to 3d"),
        ("7s", "30d", "1s slots, exact at every evaluation up to 3d; 30d in 1h slots"),
        ("1ms", "30d", "WARNING: evaluations every 1ms fall between slots"),
    ],
    ids=["default", "45s-3d", "7s", "1ms"],
)
def test_validate_says_how_the_daemon_counts_each_window(
    tmp_path: Path, interval: str, window: str, expected: str
) -> None:
    """`validate` names the slot, how far the windows are exact, and what is rounded."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "journeys: [{name: j, interval: 10s, steps: [{name: s, url: /}]}]\n"
        f"slos: [{{name: s, journey: j, objective: 99%, window: {window}}}]\n"
        f"alerting: {{evaluation_interval: {interval}}}\n"
    )
    result = run_prober("validate", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
