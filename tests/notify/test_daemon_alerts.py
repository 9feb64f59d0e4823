"""`prober run` end to end: the sample API's health forced to 503 makes ApiDown (critical)
reach a real Alertmanager (down when it fired), the webhook, the Slack stand-in and email
(aiosmtpd, STARTTLS + AUTH); recovery resolves it everywhere; one message per change per
notifier, also across `kill -9` restarts while a receiver is down."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from prober.demo import Fault, SampleAPI
from tests.notify.conftest import Alertmanager, Receiver, SmtpServer
from tests.test_daemon import Daemon, sample, start_daemon, wait_for

__all__ = ["start_daemon"]  # the fixture, re-used here

pytestmark = pytest.mark.integration

SLACK_TOKEN = "T0DAEMON/B0DAEMON/daemonSLACKtoken"
HOOK_KEY = "daemon-hook-key-7"
FAST = "backoff_initial: 100ms, backoff_max: 500ms"


def config(api: str, notifiers: str) -> str:
    return f"""
service: shop
target: {{base_url: "{api}"}}
defaults: {{interval: 500ms, timeout: 2s, jitter: 0%}}
journeys:
  - {{name: healthcheck, steps: [{{name: health, url: /health, expect: [status == 200]}}]}}
slos:
  - {{name: health-availability, journey: healthcheck, objective: 99%, window: 1d}}
alerting:
  evaluation_interval: 1s
  external_url: http://prober.test/
  rules:
    - {{name: ApiDown, severity: critical, journey: healthcheck, when: "error_ratio > 90%", window: 3s, runbook_url: "https://runbooks.test/api-down"}}
  notifiers:
{notifiers}"""


def statuses(receiver: Receiver) -> list[str]:
    return [request.json()["status"] for request in receiver.delivered()]


def slack_titles(receiver: Receiver) -> list[str]:
    return [request.json()["text"] for request in receiver.delivered()]


def test_api_down_reaches_every_notifier_and_resolves(
    sample_api: SampleAPI,
    start_daemon: Callable[..., Daemon],
    receiver: Callable[..., Receiver],
    alertmanager: Callable[..., Alertmanager],
    smtp_server: SmtpServer,
) -> None:
    """Health 503 → ApiDown reaches the webhook, Slack, email, and Alertmanager once it is
    up; health back → resolved everywhere; once each; no secret anywhere."""
    hook, slack = receiver(), receiver()
    am = alertmanager(start=False)
    notifiers = (
        f"    - {{type: alertmanager, url: {am.url}, {FAST}}}\n"
        f"    - {{type: slack, webhook_url: '${{secret.SLACK_URL}}', {FAST}}}\n"
        f"    - {{type: webhook, url: {hook.url}/hook, hmac_secret: '${{secret.HOOK_KEY}}', {FAST}}}\n"
        f"    - {{type: email, smtp_host: {smtp_server.host}, smtp_port: {smtp_server.port},"
        f" from: prober@example.com, to: [oncall@example.com], username: {smtp_server.username},"
        f" password: '${{secret.SMTP_PASSWORD}}', tls_ca_file: {smtp_server.ca_file}, {FAST}}}\n"
    )
    env = {
        "SLACK_URL": f"{slack.url}/services/{SLACK_TOKEN}",
        "HOOK_KEY": HOOK_KEY,
        "SMTP_PASSWORD": smtp_server.password,
    }
    daemon = start_daemon(config(sample_api.url, notifiers), env=env)
    wait_for(lambda: daemon.get("/readyz")[0] == 200, "a first round")
    sample_api.set_fault("/health", Fault(error_rate=1.0, status=503))

    wait_for(lambda: statuses(hook) == ["firing"], "the webhook's firing message")
    wait_for(lambda: slack_titles(slack) == ["[FIRING] ApiDown (critical, healthcheck)"], "Slack")
    wait_for(lambda: len(smtp_server.messages) == 1, "the email")
    wait_for(
        lambda: (
            (
                sample(
                    daemon.metrics(),
                    "prober_notifications_total",
                    notifier="alertmanager",
                    result="retried",
                )
                or 0
            )
            >= 1
        ),
        "attempts at the Alertmanager that is down",
    )
    am.start()
    (alert,) = wait_for(am.alerts, "ApiDown in Alertmanager once it is up")
    assert alert["labels"] == {
        "alertname": "ApiDown",
        "journey": "healthcheck",
        "service": "shop",
        "severity": "critical",
    }
    assert alert["annotations"]["runbook_url"] == "https://runbooks.test/api-down"

    body = hook.delivered()[0].json()
    assert body["alerts"][0]["labels"]["alertname"] == "ApiDown"
    assert body["externalURL"] == "http://prober.test/"
    mail = smtp_server.messages[0]
    assert mail["Subject"].startswith("[FIRING] ApiDown (critical, healthcheck)")
    text = mail.get_body(("plain",))
    assert text is not None
    assert "SLO health-availability: objective 99.000%, error budget left" in text.get_content()

    sample_api.clear_faults()
    wait_for(lambda: statuses(hook) == ["firing", "resolved"], "the webhook's resolved message")
    wait_for(lambda: len(slack_titles(slack)) == 2, "Slack's resolved message")
    wait_for(lambda: len(smtp_server.messages) == 2, "the resolved email")
    wait_for(lambda: not am.alerts(), "ApiDown to resolve in Alertmanager")
    wait_for(  # a receiver has a message a moment before its sender marks it sent
        lambda: all(
            sample(daemon.metrics(), "prober_notification_queue_depth", notifier=name) == 0
            for name in ("alertmanager", "slack", "webhook", "email")
        ),
        "every queue to be empty",
    )
    metrics = daemon.metrics()
    status = daemon.get("/api/status")[1]
    page = daemon.get("/")[1]
    assert daemon.stop() == 0

    assert slack_titles(slack)[1] == "[RESOLVED] ApiDown (critical, healthcheck)"
    assert smtp_server.messages[1]["Subject"].startswith("[RESOLVED] ApiDown")
    assert statuses(hook) == ["firing", "resolved"]  # nothing sent twice
    notifiers_status = {n["name"]: n for n in json.loads(status)["notifiers"]}
    assert set(notifiers_status) == {"alertmanager", "slack", "webhook", "email"}
    assert all(n["queued"] == 0 and n["dead_letters"] == 0 for n in notifiers_status.values())
    assert "<h2>Notifications</h2>" in page
    assert sample(metrics, "prober_notifications_total", notifier="email", result="sent") == 2
    assert sample(metrics, "prober_notification_queue_depth", notifier="slack") == 0
    logs = daemon.log.read_text()
    for output in (metrics, status, page, logs):
        for secret in (SLACK_TOKEN, HOOK_KEY, smtp_server.password):
            assert secret not in output


def test_kill_9_while_a_receiver_is_down_loses_nothing_and_repeats_nothing(
    sample_api: SampleAPI,
    start_daemon: Callable[..., Daemon],
    receiver: Callable[..., Receiver],
    tmp_path: Path,
) -> None:
    """The webhook is down when ApiDown fires; the prober is killed (-9) and restarted: the
    message arrives once the webhook is up, exactly once, and a second kill -9 and restart
    send nothing again; the resolve comes once."""
    hook = receiver(start=False)
    state = tmp_path / "kept.db"
    text = config(sample_api.url, f"    - {{type: webhook, url: {hook.url}, {FAST}}}\n")
    sample_api.set_fault("/health", Fault(error_rate=1.0, status=503))
    first = start_daemon(text, "--state", str(state))
    wait_for(
        lambda: sample(
            first.metrics(), "prober_notifications_total", notifier="webhook", result="retried"
        ),
        "a failed delivery",
    )
    first.process.kill()
    first.process.wait()

    second = start_daemon(text, "--state", str(state))
    wait_for(
        lambda: (
            sample(second.metrics(), "prober_notification_queue_depth", notifier="webhook") == 1
        ),
        "the queued message after the restart",
    )
    hook.start()
    wait_for(lambda: statuses(hook) == ["firing"], "the firing message")
    wait_for(
        lambda: (
            sample(second.metrics(), "prober_notification_queue_depth", notifier="webhook") == 0
        ),
        "the queue to empty",
    )
    second.process.kill()
    second.process.wait()

    third = start_daemon(text, "--state", str(state))
    wait_for(
        lambda: sample(third.metrics(), "prober_alert_state", alertname="ApiDown") == 2.0,
        "ApiDown still firing after the second restart",
    )
    sample_api.clear_faults()
    wait_for(lambda: statuses(hook) == ["firing", "resolved"], "the resolved message")
    assert third.stop() == 0
    assert len(hook.received) == 2  # one message per change, across both kills
    assert [request.json()["alerts"][0]["fingerprint"] for request in hook.received] == [
        hook.received[0].json()["alerts"][0]["fingerprint"]
    ] * 2


def test_reload_changes_the_notifier_list(
    sample_api: SampleAPI,
    start_daemon: Callable[..., Daemon],
    receiver: Callable[..., Receiver],
) -> None:
    """A reload whose notifier secret is unset is refused (the running notifiers go on); a
    notifier added by a good reload is told about ApiDown, already firing, once; the first
    notifier gets nothing twice."""
    first, second = receiver(), receiver()
    one = f"    - {{type: webhook, name: first, url: {first.url}, {FAST}}}\n"
    two = f"    - {{type: webhook, name: second, url: {second.url}, {FAST}}}\n"
    unset = f"    - {{type: slack, webhook_url: '${{secret.NOT_SET_ANYWHERE}}', {FAST}}}\n"
    sample_api.set_fault("/health", Fault(error_rate=1.0, status=503))
    daemon = start_daemon(config(sample_api.url, one))
    wait_for(lambda: statuses(first) == ["firing"], "the first notifier's message")

    daemon.config.write_text(config(sample_api.url, one + unset))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: sample(daemon.metrics(), "prober_config_last_reload_successful") == 0.0,
        "the reload to be refused",
    )
    daemon.config.write_text(config(sample_api.url, one + two))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: statuses(second) == ["firing"], "the added notifier's message")
    # /metrics is rendered at most once a second and shared, so it may lag the reload.
    wait_for(
        lambda: sample(daemon.metrics(), "prober_config_last_reload_successful") == 1.0,
        "the reload to be reported",
    )

    sample_api.clear_faults()
    wait_for(lambda: statuses(second) == ["firing", "resolved"], "the resolve at the second")
    wait_for(lambda: statuses(first) == ["firing", "resolved"], "the resolve at the first")
    assert daemon.stop() == 0
    assert len(first.received) == len(second.received) == 2
    refused = [
        line for line in daemon.logs() if "failed; keeping the running config" in line["message"]
    ]
    assert refused[0]["errors"] == [
        "alerting.notifiers[1].webhook_url: environment variable NOT_SET_ANYWHERE is not set"
        " (for ${secret.NOT_SET_ANYWHERE})"
    ]
