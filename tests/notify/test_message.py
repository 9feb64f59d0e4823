"""Message rendering, pinned by golden files: the Slack Block Kit message, the webhook and
Alertmanager payloads and the email's text and HTML parts; Alertmanager's fingerprint; the
outbox payload's round trip."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from prober.notify.alertmanager import alert_json
from prober.notify.mail import compose
from prober.notify.message import Notification, SloFigures, fingerprint
from prober.notify.slack import payload as slack_payload
from prober.notify.webhook import payload as webhook_payload

T0 = 1_780_000_000.0
BURN = Notification(
    id="6f1c2b1e-0000-4000-8000-000000000001",
    kind="firing",
    status="firing",
    labels={
        "alertname": "SLOBurnRate",
        "severity": "critical",
        "slo": "chat-availability",
        "journey": "chat",
        "service": "mirror-collective-api",
        "long_window": "1h",
        "short_window": "5m",
        "burnrate_tier": "page",
    },
    annotations={
        "summary": "chat-availability: error budget burning 14.4x too fast (1h/5m)",
        "description": "SLO chat-availability (99.500% of chat runs over 30d) is spending its"
        " error budget at more than 14.4 times the sustainable rate.",
        "runbook_url": "https://runbooks.example.com/chat-availability",
    },
    starts_at=T0,
    ends_at=None,
    at=T0 + 30,
    values={"threshold": 14.4, "burn_rate_long": 20.125, "burn_rate_short": 40.0},
    slos=(
        SloFigures(
            "chat-availability",
            0.995,
            0.4213,
            {"5m": 40.0, "1h": 20.125, "6h": 3.5, "1d": None},
        ),
    ),
    external_url="https://prober.example.com/",
)
RESOLVED = Notification(
    id="6f1c2b1e-0000-4000-8000-000000000002",
    kind="resolved",
    status="resolved",
    labels={"alertname": "ApiDown", "severity": "critical", "journey": "healthcheck"},
    annotations={"summary": "ApiDown: error_ratio > 90% (healthcheck) <&>"},
    starts_at=T0,
    ends_at=T0 + 300,
    at=T0 + 300,
    values={"value": 0.0},
    external_url="https://prober.example.com/",
)
FLAPPING = Notification(
    id="6f1c2b1e-0000-4000-8000-000000000003",
    kind="flapping",
    status="firing",
    labels={"alertname": "ApiDown", "severity": "critical", "journey": "healthcheck"},
    annotations={},
    starts_at=T0 + 600,
    ends_at=None,
    at=T0 + 600,
    changes=7,
    hold=(3600.0, 1800.0),
)

CASES = {"burn-rate-firing": BURN, "rule-resolved": RESOLVED, "flapping": FLAPPING}
RENDERERS: dict[str, tuple[str, Callable[[Notification], str]]] = {
    "slack": ("json", lambda n: json.dumps(slack_payload(n), indent=2, ensure_ascii=False)),
    "webhook": ("json", lambda n: json.dumps(webhook_payload(n, "webhook"), indent=2)),
    "alertmanager": ("json", lambda n: json.dumps([alert_json(n, T0 + 60, 60.0)], indent=2)),
    "email-text": (
        "txt",
        lambda n: compose(n, "p@example.com", ["o@example.com"]).get_body(("plain",)).get_content(),
    ),  # type: ignore[union-attr]
    "email-html": (
        "html",
        lambda n: compose(n, "p@example.com", ["o@example.com"]).get_body(("html",)).get_content(),
    ),  # type: ignore[union-attr]
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("renderer", sorted(RENDERERS))
def test_rendering_matches_golden(
    case: str, renderer: str, golden: Callable[[str, str], None]
) -> None:
    """Every notifier's rendering of every kind of message is pinned (make golden to refresh)."""
    extension, render = RENDERERS[renderer]
    golden(f"notify/{case}/{renderer}.{extension}", render(CASES[case]) + "\n")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {"alertname": "X", "severity": "critical"},
            "d5e08c84ef09a8b8",
        ),  # read from Alertmanager 0.25
        ({}, "cbf29ce484222325"),  # FNV-1a's offset basis: Alertmanager's empty label set
    ],
    ids=["two-labels", "no-labels"],
)
def test_fingerprint_is_alertmanagers(labels: dict[str, str], expected: str) -> None:
    """The webhook's fingerprint is the one Alertmanager computes for the same labels."""
    assert fingerprint(labels) == expected


@pytest.mark.parametrize("notification", list(CASES.values()), ids=list(CASES))
def test_payload_round_trip(notification: Notification) -> None:
    """The outbox payload reads back as the same notification."""
    assert Notification.from_json(notification.to_json()) == notification


@pytest.mark.parametrize(
    "text",
    ["{}", '{"kind": "exploded", "status": "firing"}', "[1]"],
    ids=["empty", "unknown-kind", "not-an-object"],
)
def test_unreadable_payload_is_refused(text: str) -> None:
    """A payload that is not what to_json wrote is a ValueError (the sender dead-letters it)."""
    with pytest.raises(ValueError, match=r"not a notification payload|unknown kind"):
        Notification.from_json(text)


def test_slack_escapes_mrkdwn_and_keeps_limits() -> None:
    """<, > and & are escaped in Slack text; the header stays within Slack's 150 characters."""
    long = Notification(**{**RESOLVED.__dict__, "labels": {"alertname": "A" * 300}})
    blocks = slack_payload(long)["blocks"]
    assert len(blocks[0]["text"]["text"]) <= 150
    prose = slack_payload(RESOLVED)["blocks"][1]["text"]["text"]
    assert "&lt;&amp;&gt;" in prose
