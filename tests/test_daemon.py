"""`prober run` as a subprocess against the sample API: metrics, endpoints, schedule,
rate limit, reload, shutdown, logs, secrets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prober.demo import SampleAPI
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.integration

DEADLINE = 30.0  # generous: the machine is shared and noisy


def wait_for(predicate: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll until `predicate()` is truthy; fail with `what` after the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)
    except OSError:
        return 0, "", {}


@dataclass
class Daemon:
    process: subprocess.Popen[str]
    url: str
    config: Path
    log: Path

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        return http_get(self.url + path, headers)

    def metrics(self) -> str:
        return self.get("/metrics")[1]

    def logs(self) -> list[dict[str, Any]]:
        return [
            json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")
        ]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=DEADLINE)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(
        config_text: str,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Daemon:
        """Start `prober run` on `config_text` (listening on `port`, a free one by default;
        `preexec_fn` runs in the child before exec, e.g. to set resource limits)."""
        config = tmp_path / f"config-{len(started)}.yaml"
        config.write_text(config_text)
        log = tmp_path / f"daemon-{len(started)}.log"
        port = port or free_port()
        if "--state" not in args:
            args = (*args, "--state", str(tmp_path / f"state-{len(started)}.db"))
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROBER_")}
        full_env.update(env or {})
        with log.open("w") as output:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prober",
                    "run",
                    "-c",
                    str(config),
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--grace",
                    "5s",
                    *args,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                env=full_env,
                cwd=REPO,
                preexec_fn=preexec_fn,
            )
        daemon = Daemon(process, f"http://127.0.0.1:{port}", config, log)
        started.append(daemon)
        wait_for(lambda: daemon.get("/healthz")[0] == 200 or process.poll() is not None, "/healthz")
        assert process.poll() is None, log.read_text()
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()


def demo_config(url: str, *, interval: str = "1s", extra_journey: str = "") -> str:
    return f"""
service: test-service
target: {{base_url: "{url}"}}
defaults: {{interval: {interval}, timeout: 2s, jitter: 0%}}
journeys:
  - name: healthcheck
    steps:
      - {{name: health, url: /health, expect: [status == 200], capture: {{version: json.version}}}}
  - name: chat
    steps:
      - name: login
        method: POST
        url: /api/auth/login
        json: {{email: probe@example.com, password: "${{secret.DEMO_PASSWORD}}"}}
        capture: {{token: json.data.session.accessToken}}
      - name: send-message
        method: POST
        url: /api/chat/message
        headers: {{Authorization: "Bearer ${{token}}"}}
        json: {{message: "probe ${{run_id}}"}}
{extra_journey}"""


SECRET_ENV = {"DEMO_PASSWORD": "demo-password"}


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one series in an exposition text, or None."""
    for line in metrics.splitlines():
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if all(found.get(key) == wanted for key, wanted in labels.items()):
            return float(value)
    return None


def test_serves_metrics_status_and_page(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon]
) -> None:
    """Once every journey ran, /readyz is 200 and the full metric set is served with config labels."""
    daemon = start_daemon(demo_config(sample_api.url), env=SECRET_ENV)
    wait_for(lambda: daemon.get("/readyz")[0] == 200, "/readyz")
    metrics = daemon.metrics()
    for name, labels in [
        ("probe_success", {"journey": "chat"}),
        ("probe_duration_seconds", {"journey": "healthcheck"}),
        ("probe_step_success", {"journey": "chat", "step": "send-message"}),
        ("probe_http_status_code", {"journey": "chat", "step": "login"}),
        ("probe_http_duration_seconds", {"journey": "chat", "step": "login", "phase": "connect"}),
        ("prober_journey_runs_total", {"journey": "chat", "result": "success"}),
        ("prober_journey_duration_seconds_count", {"journey": "chat"}),
        ("prober_step_duration_seconds_bucket", {"journey": "chat", "step": "login", "le": "2.0"}),
        ("prober_step_failures_total", {"journey": "chat", "step": "login", "reason": "timeout"}),
        (
            "prober_journey_latency_seconds",
            {"journey": "healthcheck", "quantile": "0.95", "window": "5m"},
        ),
        ("prober_schedule_lag_seconds_count", {}),
        ("prober_config_last_reload_successful", {}),
        ("prober_build_info", {}),
        ("prober_event_loop_lag_seconds", {}),
    ]:
        assert sample(metrics, name, **labels) is not None, f"{name}{labels} missing"
    assert sample(metrics, "probe_success", journey="chat") == 1.0
    assert sample(metrics, "probe_http_status_code", journey="chat", step="login") == 200.0
    journeys = set(re.findall(r'journey="([^"]*)"', metrics))
    assert journeys == {"healthcheck", "chat"}  # label values only from the config
    status = json.loads(daemon.get("/api/status")[1])
    assert [journey["name"] for journey in status["journeys"]] == ["healthcheck", "chat"]
    chat = status["journeys"][1]
    assert chat["last_run"]["success"] is True
    assert [step["name"] for step in chat["last_run"]["steps"]] == ["login", "send-message"]
    assert set(chat["latency_seconds"]["5m"]) == {"p50", "p90", "p95", "p99"}
    code, page, headers = daemon.get("/")
    assert code == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "healthcheck" in page
    assert "chat" in page


def test_openmetrics_negotiation(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon]
) -> None:
    """A scraper asking for OpenMetrics gets it."""
    daemon = start_daemon(demo_config(sample_api.url), env=SECRET_ENV)
    code, body, headers = daemon.get(
        "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert code == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


def test_request_counts_match_intervals(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon]
) -> None:
    """The sample API sees one health request per interval (0.5 s) — no more, no fewer."""
    daemon = start_daemon(demo_config(sample_api.url, interval="500ms"), env=SECRET_ENV)
    wait_for(lambda: daemon.get("/readyz")[0] == 200, "/readyz")
    first, started = sample_api.stats()["/health"], time.monotonic()
    wait_for(lambda: time.monotonic() - started >= 4.0, "4 s to pass")
    count, elapsed = sample_api.stats()["/health"] - first, time.monotonic() - started
    expected = elapsed / 0.5
    assert expected - 2 <= count <= expected + 2, (count, expected)


def test_rate_limit_per_host_holds(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon]
) -> None:
    """20 journeys due every 500 ms against one host never exceed max_requests_per_second (4)."""
    journeys = "\n".join(
        f"  - {{name: j{i}, steps: [{{name: s, url: /health}}]}}" for i in range(20)
    )
    config = (
        f'target: {{base_url: "{sample_api.url}"}}\n'
        "defaults: {interval: 500ms, timeout: 10s, jitter: 0%, max_requests_per_second: 4}\n"
        f"journeys:\n{journeys}\n"
    )
    daemon = start_daemon(config)
    wait_for(lambda: sample_api.stats()["/health"] >= 2, "first requests")
    first, started = sample_api.stats()["/health"], time.monotonic()
    wait_for(lambda: time.monotonic() - started >= 3.0, "3 s to pass")
    count, elapsed = sample_api.stats()["/health"] - first, time.monotonic() - started
    assert count <= 4 * elapsed + 1, (count, elapsed)
    assert count >= 4 * elapsed * 0.5, (count, elapsed)  # and it does not stall
    assert sample(daemon.metrics(), "prober_journey_overruns_total", journey="j0") is not None


def test_reload_good_and_bad(sample_api: SampleAPI, start_daemon: Callable[..., Daemon]) -> None:
    """SIGHUP swaps in a good config; a bad one keeps the old running and says why."""
    daemon = start_daemon(demo_config(sample_api.url), env=SECRET_ENV)
    wait_for(lambda: daemon.get("/readyz")[0] == 200, "/readyz")
    extra = "  - {name: extra, steps: [{name: s, url: /health}]}\n"
    daemon.config.write_text(demo_config(sample_api.url, extra_journey=extra))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: sample(daemon.metrics(), "probe_success", journey="extra") == 1.0, "the new journey"
    )
    assert sample(daemon.metrics(), "prober_config_last_reload_successful") == 1.0

    daemon.config.write_text(
        "journeys: [{name: broken, steps: [{name: s, url: /, expect: ['status =~ 2']}]}]\n"
    )
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: sample(daemon.metrics(), "prober_config_last_reload_successful") == 0.0,
        "reload failure",
    )
    errors = [line for line in daemon.logs() if line["level"] == "error"]
    assert any("unknown operator '=~'" in " ".join(line.get("errors", [])) for line in errors)
    runs = (
        sample(daemon.metrics(), "prober_journey_runs_total", journey="extra", result="success")
        or 0
    )
    wait_for(
        lambda: (
            (
                sample(
                    daemon.metrics(), "prober_journey_runs_total", journey="extra", result="success"
                )
                or 0
            )
            > runs
        ),
        "the old config to keep running",
    )


def test_reload_on_file_change(sample_api: SampleAPI, start_daemon: Callable[..., Daemon]) -> None:
    """Editing the config file is picked up without a signal."""
    daemon = start_daemon(demo_config(sample_api.url), env=SECRET_ENV)
    extra = "  - {name: edited, steps: [{name: s, url: /health}]}\n"
    daemon.config.write_text(demo_config(sample_api.url, extra_journey=extra))
    wait_for(
        lambda: sample(daemon.metrics(), "probe_success", journey="edited") == 1.0,
        "the edited journey",
    )


def test_sigterm_drains_and_exits_0(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon]
) -> None:
    """SIGTERM stops scheduling, lets the in-flight run finish, and exits 0."""
    sample_api.set_fault("/health", __import__("prober.demo", fromlist=["Fault"]).Fault(delay=1.0))
    daemon = start_daemon(demo_config(sample_api.url), env=SECRET_ENV)
    wait_for(lambda: sample_api.stats()["/health"] >= 1, "a slow run in flight")
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 5 + 3  # within the grace period, plus slack
    messages = [line["message"] for line in daemon.logs()]
    assert "stopped" in messages
    assert any(
        line.get("journey") == "healthcheck" and line.get("success") for line in daemon.logs()
    )


def test_json_log_shape(sample_api: SampleAPI, start_daemon: Callable[..., Daemon]) -> None:
    """Logs are JSON lines in the watched API's shape; one info line per run, per step at debug."""
    daemon = start_daemon(demo_config(sample_api.url), "--log-level", "debug", env=SECRET_ENV)
    wait_for(lambda: daemon.get("/readyz")[0] == 200, "/readyz")
    daemon.stop()
    lines = daemon.logs()
    run_lines = [line for line in lines if line["message"].startswith("journey run")]
    step_lines = [line for line in lines if line.get("step")]
    assert run_lines
    assert step_lines
    for line in run_lines:
        assert {
            "timestamp",
            "level",
            "message",
            "service",
            "journey",
            "run_id",
            "duration_ms",
        } <= set(line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
        assert line["service"] == "test-service"
    assert {"request_id", "status_code", "step", "run_id"} <= set(step_lines[0])


def test_secrets_absent_from_every_endpoint_and_log(
    echo_server: str, start_daemon: Callable[..., Daemon]
) -> None:
    """A target echoing the secret cannot leak it to /metrics, /api/status, / or the logs."""
    secret = "pa55-Word-daemon-secret"
    config = (
        f'target: {{base_url: "{echo_server}"}}\n'
        "defaults: {interval: 1s, jitter: 0%}\n"
        "journeys:\n"
        "  - name: login\n"
        "    steps:\n"
        "      - {name: login, method: POST, url: '/login?p=${secret.PW}', json: {password: '${secret.PW}'},"
        " expect: [json.received.password == x]}\n"
    )
    daemon = start_daemon(config, "--log-level", "debug", env={"PW": secret})
    wait_for(lambda: daemon.get("/readyz")[0] == 200, "/readyz")
    outputs = [daemon.get(path)[1] for path in ("/metrics", "/api/status", "/")]
    daemon.stop()
    outputs.append(daemon.log.read_text())
    assert "***" in outputs[1]  # the echoed value reached the status, masked
    for output in outputs:
        assert secret not in output


def slo_config(url: str) -> str:
    return f"""
service: shop
target: {{base_url: "{url}"}}
defaults: {{interval: 500ms, timeout: 2s, jitter: 0%}}
journeys:
  - {{name: healthcheck, steps: [{{name: health, url: /health, expect: [status == 200]}}]}}
slos:
  - {{name: health-availability, journey: healthcheck, objective: 99%, window: 1d}}
alerting:
  evaluation_interval: 1s
  rules:
    - {{name: ApiDown, severity: critical, journey: healthcheck, when: "error_ratio > 90%", window: 3s}}
"""


def test_slo_figures_and_alerts_move_with_failures(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon]
) -> None:
    """When the API fails, error ratios, burn rates and the budget move, ApiDown fires; healed, it resolves."""
    from prober.demo import Fault

    daemon = start_daemon(slo_config(sample_api.url))
    wait_for(
        lambda: (
            sample(
                daemon.metrics(), "prober_slo_error_ratio", slo="health-availability", window="5m"
            )
            == 0.0
        ),
        "a first evaluation with data",
    )
    assert sample(daemon.metrics(), "prober_slo_objective_ratio", slo="health-availability") == 0.99
    assert sample(daemon.metrics(), "prober_alert_state", alertname="ApiDown") == 0.0
    sample_api.set_fault("/health", Fault(error_rate=1.0, status=503))
    wait_for(
        lambda: (
            sample(daemon.metrics(), "prober_alert_state", alertname="ApiDown", severity="critical")
            == 2.0
        ),
        "ApiDown to fire",
    )
    metrics = daemon.metrics()
    assert (
        sample(metrics, "prober_slo_error_ratio", slo="health-availability", window="5m") or 0
    ) > 0
    assert (
        sample(metrics, "prober_slo_burn_rate", slo="health-availability", window="5m") or 0
    ) > 1
    assert (
        sample(metrics, "prober_slo_error_budget_remaining_ratio", slo="health-availability") or 1
    ) < 1
    assert (
        sample(metrics, "prober_slo_events_total", slo="health-availability", result="bad") or 0
    ) > 0
    status = json.loads(daemon.get("/api/status")[1])
    assert status["slos"][0]["name"] == "health-availability"
    api_down = next(alert for alert in status["alerts"] if alert["alertname"] == "ApiDown")
    assert api_down["state"] == "firing"
    assert api_down["annotations"]["summary"] == "ApiDown: error_ratio > 90% (healthcheck)"
    assert "ApiDown" in daemon.get("/")[1]
    sample_api.clear_faults()
    wait_for(
        lambda: sample(daemon.metrics(), "prober_alert_state", alertname="ApiDown") == 0.0,
        "ApiDown to resolve",
    )
    daemon.stop()
    states = [
        line["message"] for line in daemon.logs() if line["message"].startswith("alert ApiDown")
    ]
    assert states == ["alert ApiDown firing", "alert ApiDown resolved"]


def test_inconclusive_runs_stay_out_of_the_sli(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon]
) -> None:
    """When the connectivity check fails too, failed runs are inconclusive: counted, not bad events."""
    from prober.demo import Fault

    config = slo_config(sample_api.url) + f"connectivity_check: http://127.0.0.1:{free_port()}/\n"
    sample_api.set_fault("/health", Fault(error_rate=1.0, status=503))
    daemon = start_daemon(config)
    wait_for(
        lambda: (
            (sample(daemon.metrics(), "prober_inconclusive_runs_total", journey="healthcheck") or 0)
            >= 2
        ),
        "inconclusive runs",
    )
    metrics = daemon.metrics()
    assert (
        sample(metrics, "prober_slo_events_total", slo="health-availability", result="bad") == 0.0
    )
    assert (
        sample(metrics, "prober_journey_runs_total", journey="healthcheck", result="failure") or 0
    ) >= 2


def test_budgets_and_alerts_survive_kill_9(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """kill -9 mid-run: the state file passes integrity_check, and a restart resumes the
    budget and the firing alert (no second 'firing' transition)."""
    import sqlite3

    from prober.demo import Fault

    state = tmp_path / "kept.db"
    sample_api.set_fault("/health", Fault(error_rate=1.0, status=503))
    first = start_daemon(slo_config(sample_api.url), "--state", str(state))
    wait_for(
        lambda: sample(first.metrics(), "prober_alert_state", alertname="ApiDown") == 2.0,
        "ApiDown to fire",
    )
    wait_for(
        lambda: (
            (
                sample(
                    first.metrics(),
                    "prober_slo_error_budget_remaining_ratio",
                    slo="health-availability",
                )
                or 1
            )
            < 0
        ),
        "the budget to be overspent",
    )
    budget = sample(
        first.metrics(), "prober_slo_error_budget_remaining_ratio", slo="health-availability"
    )

    def stored_events() -> int:
        try:
            with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as reader:
                return int(reader.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.Error:
            return 0

    wait_for(lambda: stored_events() >= 4, "runs flushed to the state file")
    first.process.kill()
    first.process.wait()
    with sqlite3.connect(state) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = connection.execute("SELECT count(*) FROM events").fetchone()[0]
    assert stored > 0

    second = start_daemon(slo_config(sample_api.url), "--state", str(state))
    wait_for(
        lambda: (
            sample(
                second.metrics(),
                "prober_slo_error_budget_remaining_ratio",
                slo="health-availability",
            )
            is not None
        ),
        "a first evaluation after the restart",
    )
    resumed = sample(
        second.metrics(), "prober_slo_error_budget_remaining_ratio", slo="health-availability"
    )
    assert budget is not None
    assert resumed is not None
    assert resumed <= budget + 0.5  # not reset to a fresh budget of 1.0: still overspent
    assert resumed < 0
    wait_for(
        lambda: sample(second.metrics(), "prober_alert_state", alertname="ApiDown") == 2.0,
        "ApiDown state",
    )
    second.stop()
    messages = [line["message"] for line in second.logs()]
    assert "state restored" in messages
    assert "alert ApiDown firing" not in messages  # it was already firing: no new page


def test_deploy_during_a_restart_is_announced(
    start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """changed(version) remembers the last version across a restart: a deploy in between fires."""
    state = tmp_path / "kept.db"

    def config(url: str) -> str:
        return (
            f'target: {{base_url: "{url}"}}\n'
            "defaults: {interval: 500ms, jitter: 0%}\n"
            "journeys: [{name: healthcheck, steps: [{name: health, url: /health, capture: {version: json.version}}]}]\n"
            "alerting:\n  evaluation_interval: 1s\n"
            "  rules: [{name: NewDeployment, severity: info, journey: healthcheck, when: 'changed(version)'}]\n"
        )

    with SampleAPI(version="1.4.2").start() as old:
        first = start_daemon(config(old.url), "--state", str(state))
        wait_for(lambda: first.get("/readyz")[0] == 200, "a first run")
        assert first.stop() == 0
    with SampleAPI(version="1.5.0").start() as new:
        second = start_daemon(config(new.url), "--state", str(state))
        wait_for(
            lambda: any(line["message"] == "alert NewDeployment firing" for line in second.logs()),
            "NewDeployment to fire",
        )
        second.stop()


def test_second_daemon_on_one_state_file_is_refused(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """Two daemons would count runs and announce alerts into one budget: the second one
    exits 2 naming the first one's pid, and the first keeps running."""
    state = tmp_path / "shared.db"
    first = start_daemon(demo_config(sample_api.url), "--state", str(state))
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "prober",
            "run",
            "-c",
            str(first.config),
            "--state",
            str(state),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("PROBER_")},
    )
    assert second.returncode == 2
    assert f"is in use by prober pid {first.process.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.process.poll() is None
    assert first.stop() == 0
