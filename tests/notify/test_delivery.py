"""Delivery through the outbox to real loopback receivers: the webhook (payload, HMAC), the
Slack stand-in (Block Kit), email over STARTTLS with AUTH; outages, order, backoff, dead
letters, restarts, and secrets that never leak."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import sqlite3
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from prober.notify.message import fingerprint
from tests.notify.conftest import Receiver, SmtpServer
from tests.notify.harness import API_DOWN, RETRY_FAST, Clock, Harness, until

pytestmark = pytest.mark.integration

HOOK_KEY = "hook-signing-key-42"
SLACK_TOKEN = "T000/B000/XXXXslackTOKENxxxx"


def test_webhook_gets_the_alertmanager_payload_signed(
    tmp_path: Path, receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One POST per state change: version 4, status, labels, annotations, times,
    Alertmanager's fingerprint, and an HMAC-SHA256 signature of the exact body."""
    monkeypatch.setenv("HOOK_KEY", HOOK_KEY)
    hook = receiver()
    notifiers = (
        f'    - {{type: webhook, url: "{hook.url}/hook", hmac_secret: "${{secret.HOOK_KEY}}"}}\n'
    )

    async def main() -> None:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: 1_780_000_000.0}, now=1_780_000_030.0)
            await until(lambda: len(hook.delivered()) == 1, "the firing message")
            await h.evaluate({}, now=1_780_000_090.0)
            await until(lambda: len(hook.delivered()) == 2, "the resolved message")
            await asyncio.sleep(0.2)

    asyncio.run(main())
    firing, resolved = hook.delivered()
    assert len(hook.received) == 2  # nothing else, nothing twice
    for request in (firing, resolved):
        expected = "sha256=" + hmac.new(HOOK_KEY.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-prober-signature"] == expected
        assert request.path == "/hook"
    body = firing.json()
    assert (body["version"], body["status"], body["receiver"]) == ("4", "firing", "webhook")
    alert = body["alerts"][0]
    assert alert["labels"] == dict(API_DOWN)
    assert alert["annotations"]["runbook_url"] == "https://runbooks.example.com/api-down"
    assert alert["fingerprint"] == fingerprint(dict(API_DOWN))
    assert (alert["startsAt"], alert["endsAt"]) == (
        "2026-05-28T20:26:40.000Z",
        "0001-01-01T00:00:00Z",
    )
    assert body["groupKey"].startswith('{}:{alertname="ApiDown"')
    done = resolved.json()
    assert done["status"] == done["alerts"][0]["status"] == "resolved"
    assert done["alerts"][0]["endsAt"] == "2026-05-28T20:28:10.000Z"
    assert firing.headers["x-prober-notification-kind"] == "firing"
    assert (
        firing.headers["x-prober-notification-id"] != resolved.headers["x-prober-notification-id"]
    )


def test_slack_stand_in_gets_block_kit_messages(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    """A Block Kit message with the title, severity, figures and links; then a resolved one."""
    slack = receiver()
    notifiers = f'    - {{type: slack, webhook_url: "{slack.url}/services/{SLACK_TOKEN}"}}\n'

    async def main() -> None:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: h.clock() - 30})
            await until(lambda: len(slack.delivered()) == 1, "the firing message")
            await h.evaluate({})
            await until(lambda: len(slack.delivered()) == 2, "the resolved message")

    asyncio.run(main())
    firing, resolved = (request.json() for request in slack.delivered())
    assert firing["text"] == "[FIRING] ApiDown (critical, healthcheck)"
    assert firing["blocks"][0]["text"]["text"] == ":fire: [FIRING] ApiDown (critical, healthcheck)"
    fields = [f["text"] for block in firing["blocks"] for f in block.get("fields", ())]
    assert "*Severity*\ncritical" in fields
    buttons = {
        e["text"]["text"]: e["url"]
        for b in firing["blocks"]
        for e in b.get("elements", ())
        if e.get("type") == "button"
    }
    assert buttons == {
        "Status page": "http://prober.example.com/",
        "Runbook": "https://runbooks.example.com/api-down",
    }
    assert resolved["text"] == "[RESOLVED] ApiDown (critical, healthcheck)"
    assert slack.delivered()[0].path == f"/services/{SLACK_TOKEN}"


def test_email_goes_over_starttls_with_auth(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SMTP server that requires STARTTLS and AUTH receives a text + HTML message."""
    monkeypatch.setenv("SMTP_PASSWORD", smtp_server.password)
    notifiers = (
        f"    - {{type: email, smtp_host: {smtp_server.host}, smtp_port: {smtp_server.port},"
        f" from: prober@example.com, to: [oncall@example.com, sre@example.com],"
        f" username: {smtp_server.username}, password: '${{secret.SMTP_PASSWORD}}',"
        f" tls_ca_file: {smtp_server.ca_file}, {RETRY_FAST}}}\n"
    )

    async def main() -> None:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: h.clock() - 30})
            await until(lambda: len(smtp_server.messages) == 1, "the email")

    asyncio.run(main())
    (message,) = smtp_server.messages
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == (
        "[FIRING] ApiDown (critical, healthcheck): ApiDown: error_ratio > 90% (healthcheck)"
    )
    assert message["To"] == "oncall@example.com, sre@example.com"
    assert message["Message-ID"].endswith("@prober>")
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None
    assert page is not None
    assert "Runbook: https://runbooks.example.com/api-down" in text.get_content()
    assert "<a href='http://prober.example.com/'>" in page.get_content()


def test_a_receiver_down_gets_everything_in_order_when_back(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    """Down while the alert fires and resolves: retried with backoff, then delivered once
    each, in order; the queue depth and counters say so."""
    hook = receiver(start=False)
    notifiers = f"    - {{type: webhook, url: {hook.url}, {RETRY_FAST}}}\n"

    async def main() -> Harness:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: h.clock() - 30})
            await h.evaluate({})
            assert h.metric("prober_notification_queue_depth", notifier="webhook") == 2
            await until(
                lambda: (
                    (
                        h.metric("prober_notifications_total", notifier="webhook", result="retried")
                        or 0
                    )
                    >= 2
                ),
                "failed attempts",
            )
            assert h.status[0]["last_error"].startswith(
                f"webhook http://127.0.0.1:{hook.port}: connect"
            )
            hook.start()
            await until(lambda: len(hook.delivered()) == 2, "both messages")
            await until(
                lambda: h.metric("prober_notification_queue_depth", notifier="webhook") == 0,
                "an empty queue",
            )
            assert h.metric("prober_notifications_total", notifier="webhook", result="sent") == 2
            assert h.metric("prober_notifications_total", notifier="webhook", result="failed") == 0
            return h

    asyncio.run(main())
    assert [r.json()["status"] for r in hook.delivered()] == ["firing", "resolved"]


def test_undeliverable_for_too_long_is_dead_lettered(
    tmp_path: Path, receiver: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    """After dead_letter_after the message is given up: a log line, `failed`, a dead letter."""
    hook = receiver(start=False)
    clock = Clock()
    notifiers = f"    - {{type: webhook, url: {hook.url}, dead_letter_after: 1h, {RETRY_FAST}}}\n"

    async def main() -> None:
        async with Harness(notifiers, tmp_path / "state.db", clock=clock) as h:
            await h.evaluate({API_DOWN: clock() - 30})
            await until(
                lambda: h.metric(
                    "prober_notifications_total", notifier="webhook", result="retried"
                ),
                "a failed attempt",
            )
            assert h.metric("prober_notification_dead_letters", notifier="webhook") == 0
            clock.offset = 3600
            await until(
                lambda: (
                    h.metric("prober_notifications_total", notifier="webhook", result="failed") == 1
                ),
                "the dead letter",
            )
            assert h.metric("prober_notification_dead_letters", notifier="webhook") == 1
            assert h.metric("prober_notification_queue_depth", notifier="webhook") == 0
            assert h.status[0]["dead_letters"] == 1

    with caplog.at_level(logging.ERROR, logger="prober"):
        asyncio.run(main())
    (line,) = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert line.getMessage().startswith(
        "notification to webhook dead-lettered: undeliverable for 3600 s"
    )
    assert line.__dict__["alert"]["alertname"] == "ApiDown"
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("SELECT state FROM outbox").fetchall() == [("dead",)]
    db.close()


def test_a_refused_message_is_dead_lettered_at_once(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    """HTTP 400 refuses the message itself: no retry, dead-lettered; the next one goes on."""
    hook = receiver()
    hook.status = 400
    notifiers = f"    - {{type: webhook, url: {hook.url}, {RETRY_FAST}}}\n"

    async def main() -> Harness:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: h.clock() - 30})
            await until(
                lambda: (
                    h.metric("prober_notifications_total", notifier="webhook", result="failed") == 1
                ),
                "the refusal",
            )
            hook.status = 200
            await h.evaluate({})
            await until(lambda: len(hook.delivered()) == 1, "the next message")
            assert h.metric("prober_notifications_total", notifier="webhook", result="retried") == 0
            return h

    asyncio.run(main())
    assert [r.status for r in hook.received] == [400, 200]


def test_the_outbox_survives_a_restart_and_never_sends_twice(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    """Queued while the receiver is down, delivered by the next process; a third start
    sends nothing again, and the alert's resolve is announced once."""
    hook = receiver(start=False)
    notifiers = f"    - {{type: webhook, url: {hook.url}, {RETRY_FAST}}}\n"

    async def main() -> None:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            since = h.clock() - 30
            await h.evaluate({API_DOWN: since})
            await until(
                lambda: h.metric(
                    "prober_notifications_total", notifier="webhook", result="retried"
                ),
                "a failed attempt",
            )
            await h.restart()
            assert h.metric("prober_notification_queue_depth", notifier="webhook") == 1
            hook.start()
            await until(lambda: len(hook.delivered()) == 1, "the firing message")
            await h.restart()
            h.firing = {API_DOWN: since}
            assert await h.evaluate({API_DOWN: since}) == 0  # still firing: nothing new
            await h.evaluate({})
            await until(lambda: len(hook.delivered()) == 2, "the resolved message")
            await asyncio.sleep(0.3)

    asyncio.run(main())
    assert [r.json()["status"] for r in hook.received if r.status == 200] == ["firing", "resolved"]


def test_secrets_never_leak(
    tmp_path: Path,
    receiver: Callable[..., Receiver],
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Slack URL's token and the SMTP password stay out of logs, metrics, status, the
    stored errors — also when delivery fails (Slack down, a wrong SMTP password)."""
    from prober.redaction import redact

    slack = receiver(start=False)
    monkeypatch.setenv("SLACK_URL", f"{slack.url}/services/{SLACK_TOKEN}")
    wrong = "wrong-Pa55word-zz"
    monkeypatch.setenv("SMTP_PASSWORD", wrong)
    notifiers = (
        f"    - {{type: slack, webhook_url: '${{secret.SLACK_URL}}', {RETRY_FAST}}}\n"
        f"    - {{type: email, smtp_host: {smtp_server.host}, smtp_port: {smtp_server.port},"
        f" from: p@example.com, to: [o@example.com], username: {smtp_server.username},"
        f" password: '${{secret.SMTP_PASSWORD}}', tls_ca_file: {smtp_server.ca_file}, {RETRY_FAST}}}\n"
    )

    async def main() -> tuple[str, str]:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: h.clock() - 30})
            await until(lambda: len(smtp_server.refused_logins) >= 2, "refused logins")
            await until(
                lambda: (
                    (
                        h.metric("prober_notifications_total", notifier="slack", result="retried")
                        or 0
                    )
                    >= 2
                ),
                "failed Slack attempts",
            )
            return generate_latest(h.metrics.registry).decode(), repr(h.status)

    with caplog.at_level(logging.DEBUG, logger="prober"):
        metrics, status = asyncio.run(main())
    assert "login refused (535" in status
    with sqlite3.connect(tmp_path / "state.db") as db:
        stored = repr(db.execute("SELECT * FROM outbox").fetchall())
    db.close()
    logs = "\n".join(
        redact(record.getMessage()) + repr(record.__dict__) for record in caplog.records
    )
    for output in (metrics, status, stored, logs):
        assert "XXXXslackTOKENxxxx" not in output
        assert wrong not in output


def test_drain_delivers_what_is_queued_and_does_not_wait_for_a_dead_receiver(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    """At shutdown: a queued message to a live receiver goes out before `drain` returns;
    a receiver that is down (backing off) does not hold the shutdown up."""
    up, down = receiver(), receiver(start=False)
    notifiers = (
        f"    - {{type: webhook, name: up, url: {up.url}, {RETRY_FAST}}}\n"
        f"    - {{type: webhook, name: down, url: {down.url}, backoff_initial: 10s}}\n"
    )

    async def main() -> tuple[bool, float, Harness]:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: h.clock() - 30})
            started = asyncio.get_running_loop().time()
            drained = await h.service.drain(20.0)
            return drained, asyncio.get_running_loop().time() - started, h

    drained, took, h = asyncio.run(main())
    assert drained
    assert took < 10  # not the down receiver's 10 s backoff, nor the 20 s limit
    assert len(up.delivered()) == 1
    assert h.metric("prober_notifications_total", notifier="down", result="retried") == 1
