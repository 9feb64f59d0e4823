"""The generated rules and dashboard against real parts: a real Prometheus loads `prober
rules` output and scrapes a real daemon (subprocess) probing the sample API while one in
three... chat messages fail (seeded fault injection). Its 5m error ratio agrees with the
daemon's own `prober_slo_error_ratio{window="5m"}`, both fire the fast burn-rate page, every
query of `prober dashboard` runs and returns data, and the inhibit snippet passes amtool."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prober.config import parse_config
from prober.demo import SampleAPI
from prober.demo.api import Fault
from prober.slos import engine_spec
from slo.dashboard import dashboard_queries, generate_dashboard
from tests.conftest import free_port, run_prober
from tests.test_daemon import SECRET_ENV, Daemon, http_get, start_daemon, wait_for
from tests.test_prometheus import prometheus

__all__ = ["prometheus", "start_daemon"]  # the fixtures, re-used here

pytestmark = pytest.mark.integration

#: How far Prometheus' 5m ratio may be from the daemon's, in absolute terms (the ratio is
#: about 0.3 here). The two count the same runs but not quite the same ones: Prometheus
#: counts from its first scrape of the daemon (the runs before it are missed), extrapolates
#: to the window's edges, and evaluates up to a scrape interval (1 s, 4 runs) apart from the
#: daemon. Up to 6 runs counted differently, at the 150+ runs the comparison waits for, is
#: 0.04; measured: 0.015-0.021.
TOLERANCE = 0.04
MIN_EVENTS = 150
#: What `$__rate_interval` stands for in the dashboard's queries here (Grafana: at least four
#: scrape intervals).
RATE_INTERVAL = "10s"
#: Dashboard metrics another part of the daemon may not export yet (the notification outbox,
#: issue #5): a query on them may come back empty only while the daemon has no such metric.
PENDING_METRICS = {"prober_notification_queue_depth"}


def config_text(api_url: str, receiver_url: str) -> str:
    return f"""
service: rules-it
target: {{base_url: "{api_url}"}}
defaults: {{interval: 1s, timeout: 2s, jitter: 0%}}
journeys:
  - name: healthcheck
    steps:
      - {{name: health, url: /health, expect: [status == 200], capture: {{version: json.version}}}}
  - name: chat
    interval: 250ms
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
slos:
  - {{name: chat-availability, journey: chat, objective: 99.5%, window: 30d}}
  - {{name: health-availability, journey: healthcheck, objective: 99.9%, window: 30d}}
alerting:
  evaluation_interval: 1s
  rules:
    - {{name: HighErrorRate, severity: warning, journey: chat, when: "error_ratio > 5%", window: 1m}}
  notifiers:
    - {{type: webhook, url: "{receiver_url}", severities: [critical, warning, info]}}
"""


def _binary(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return binary


def api(prometheus_url: str, path: str, **params: str) -> dict[str, Any]:
    """A Prometheus HTTP API call; raises on an error answer (a bad query)."""
    code, body, _ = http_get(f"{prometheus_url}{path}?{urllib.parse.urlencode(params)}")
    answer: dict[str, Any] = json.loads(body) if body else {}
    assert code == 200, f"{path} {params}: {code} {body}"
    assert answer.get("status") == "success", f"{path} {params}: {body}"
    return answer["data"]  # type: ignore[no-any-return]


def instant(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    return api(prometheus_url, "/api/v1/query", query=expr)["result"]  # type: ignore[no-any-return]


def values_by_time(prometheus_url: str, expr: str, start: float, end: float) -> dict[float, float]:
    """One series' values over [start, end] at 1 s steps."""
    result = api(
        prometheus_url, "/api/v1/query_range", query=expr, start=str(start), end=str(end), step="1"
    )["result"]
    assert len(result) == 1, f"{expr}: {result}"
    return {float(at): float(value) for at, value in result[0]["values"]}


def substitute(expr: str, slos: list[str], journeys: list[str]) -> str:
    """The dashboard's variables as Grafana fills them with "All" selected."""
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$slo", "(" + "|".join(slos) + ")")
        .replace("$journey", "(" + "|".join(journeys) + ")")
    )


@pytest.fixture
def setup(
    tmp_path: Path,
    sample_api: SampleAPI,
    echo_server: str,
    prometheus: Callable[..., str],
    start_daemon: Callable[..., Daemon],
) -> tuple[str, Daemon, str]:
    """A daemon probing the sample API with 30% of chat messages failing, and Prometheus
    scraping it with the generated rules loaded; returns (Prometheus URL, daemon, config).

    Prometheus starts first, scraping the port the daemon will listen on, so that it counts
    the daemon's runs from (nearly) the first one, as the daemon's own windows do."""
    sample_api.set_fault("/api/chat/message", Fault(error_rate=0.3, status=503))
    text = config_text(sample_api.url, echo_server + "/hook")
    config = tmp_path / "prober.yaml"
    config.write_text(text)
    rules = tmp_path / "rules.yml"
    result = run_prober("rules", "-c", str(config), "-o", str(rules), env=SECRET_ENV)
    assert result.returncode == 0, result.stderr
    port = free_port()
    url = prometheus(f"127.0.0.1:{port}", rules)
    daemon = start_daemon(text, port=port, env=SECRET_ENV)
    return url, daemon, text


def test_prometheus_agrees_with_the_daemon(setup: tuple[str, Daemon, str]) -> None:
    """Prometheus' slo:sli_error:ratio_rate5m matches the daemon's 5m error ratio, and both fire
    the fast page; every dashboard query then runs and returns data."""
    url, daemon, text = setup
    chat = 'sloth_slo="chat-availability"'
    wait_for(
        lambda: (
            instant(url, f'sum(prober_slo_events_total{{slo="chat-availability"}}) >= {MIN_EVENTS}')
            and instant(url, f"slo:sli_error:ratio_rate5m{{{chat}}}")
        ),
        f"{MIN_EVENTS} chat runs counted and the 5m ratio recorded",
        deadline=60,
    )
    end = time.time() - 1
    ours = values_by_time(url, f"slo:sli_error:ratio_rate5m{{{chat}}}", end - 8, end)
    theirs = values_by_time(
        url, 'prober_slo_error_ratio{slo="chat-availability", window="5m"}', end - 8, end
    )
    common = sorted(set(ours) & set(theirs))
    assert len(common) >= 5
    worst = max(abs(ours[at] - theirs[at]) for at in common)
    print(f"5m error ratio: Prometheus vs daemon, largest difference {worst:.4f}")
    for at in common:
        assert 0.1 < theirs[at] < 0.5  # the fault is really failing runs
        assert ours[at] == pytest.approx(theirs[at], abs=TOLERANCE), f"at {at}: {ours} vs {theirs}"
    # The fast page (1h/5m: 30% > 7.2%) fires in Prometheus, and in the daemon.
    wait_for(
        lambda: instant(
            url,
            'ALERTS{alertname="SLOBurnRate", alertstate="firing", slo="chat-availability",'
            ' long_window="1h", short_window="5m", service="rules-it"}',
        ),
        "the fast burn-rate page in Prometheus",
    )
    wait_for(
        lambda: instant(
            url,
            'prober_alert_state{alertname="SLOBurnRate", severity="critical",'
            ' slo="chat-availability"} == 2',
        ),
        "the daemon's own page",
    )
    check_dashboard_queries(url, daemon, text)


def check_dashboard_queries(url: str, daemon: Daemon, text: str) -> None:
    spec = engine_spec(parse_config(text))
    dashboard = generate_dashboard(spec)
    slos = sorted(slo.name for slo in spec.slos)
    journeys = sorted(spec.intervals)
    exported = set(re.findall(r"^# TYPE (\w+) ", daemon.metrics(), re.MULTILINE))
    queries = list(dashboard_queries(dashboard))
    assert len(queries) >= 15
    empty: list[str] = []
    for title, expr in queries:
        filled = substitute(expr, slos, journeys)
        result = (
            wait_for(
                lambda filled=filled: instant(url, filled),
                f"data for {title}: {filled}",
                deadline=20,
            )
            if not _pending(filled, exported)
            else instant(url, filled)
        )
        if not result:
            empty.append(filled)
    # The variables' label_values(...) queries, through the series API as Grafana does.
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((?P<selector>.+), (?P<label>\w+)\)", query)
        assert match, query
        series = api(url, "/api/v1/series", **{"match[]": match["selector"]})
        values = {entry[match["label"]] for entry in series}
        assert values == set(slos if variable["name"] == "slo" else journeys)
    if empty:
        missing = {metric for metric in PENDING_METRICS if metric not in exported}
        assert all(any(metric in expr for metric in missing) for expr in empty), empty
        pytest.xfail(f"the daemon does not export {sorted(missing)} yet: {empty}")


def _pending(expr: str, exported: set[str]) -> bool:
    return any(metric in expr and metric not in exported for metric in PENDING_METRICS)


def test_inhibit_snippet_in_a_real_alertmanager(tmp_path: Path) -> None:
    """amtool accepts the snippet, and in a real Alertmanager a firing page suppresses the same
    SLO's ticket, not another SLO's."""
    amtool = _binary("amtool")
    binary = _binary("prometheus-alertmanager")
    result = run_prober("rules", "-c", "config/demo.yaml", "--inhibit-rules")
    assert result.returncode == 0, result.stderr
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: default}\nreceivers: [{name: default}]\n" + result.stdout)
    checked = subprocess.run(
        [amtool, "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 inhibit rules" in checked.stdout
    port = free_port()
    with (tmp_path / "alertmanager.log").open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(url + "/-/ready")[0] == 200, "Alertmanager to be ready")
        base = {"alertname": "SLOBurnRate", "service": "mirror-collective-api"}
        alerts = [
            {
                **base,
                "slo": "chat-availability",
                "severity": "critical",
                "burnrate_tier": "page",
                "long_window": "1h",
            },
            {
                **base,
                "slo": "chat-availability",
                "severity": "warning",
                "burnrate_tier": "ticket",
                "long_window": "1d",
            },
            {
                **base,
                "slo": "chat-latency",
                "severity": "warning",
                "burnrate_tier": "ticket",
                "long_window": "1d",
            },
        ]
        body = json.dumps([{"labels": labels} for labels in alerts]).encode()
        request = urllib.request.Request(
            url + "/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

        def states() -> dict[tuple[str, str], str]:
            code, text, _ = http_get(url + "/api/v2/alerts")
            return {
                (alert["labels"]["slo"], alert["labels"]["severity"]): alert["status"]["state"]
                for alert in (json.loads(text) if code == 200 else [])
            }

        wait_for(
            lambda: states().get(("chat-availability", "warning")) == "suppressed",
            "the page to suppress its SLO's ticket",
        )
        assert states() == {
            ("chat-availability", "critical"): "active",
            ("chat-availability", "warning"): "suppressed",
            ("chat-latency", "warning"): "active",
        }
    finally:
        process.terminate()
        process.wait(timeout=30)
