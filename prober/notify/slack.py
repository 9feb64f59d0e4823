"""`slack`: an incoming webhook, one Block Kit message per notification.

The message: a header (`:fire: [FIRING] ApiDown (critical, healthcheck)`), the summary and
description, fields for severity, the alert's burn rates or value, each related SLO's
error budget and burn rates, since/resolved times, and buttons to the status page
(`alerting.external_url`) and the runbook. `text` carries the same title for
notifications and clients that show no blocks. A resolved message has the same shape.

The webhook URL carries its token in its path: it is registered as a secret when the
notifier is built, so no log line, metric, status page or error ever shows it; errors
name only "the Slack webhook".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from prober.config import SlackNotifier
from prober.http import HttpClient
from prober.notify.channels import (
    Channel,
    NotifierConfig,
    checked_url,
    client_for,
    http_post,
    person_policy,
    secret_setting,
)
from prober.notify.message import Notification, facts, title

__all__ = ["SlackSender", "build", "payload"]

_EMOJI: Final[Mapping[str, str]] = {
    "firing": ":fire:",
    "repeat": ":fire:",
    "resolved": ":white_check_mark:",
    "flapping": ":warning:",
}
#: Slack's limits: header text 150 characters, section text 3,000, ten fields a section.
_HEADER_MAX: Final = 150
_TEXT_MAX: Final = 3000
_FIELDS_MAX: Final = 10
_LONG: Final = frozenset({"Summary", "Description", "Flapping", "Settled"})
_LINKS: Final = ("Status page", "Runbook")


def _escape(text: str) -> str:
    """Slack mrkdwn: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload(notification: Notification) -> dict[str, Any]:
    n = notification
    emoji = _EMOJI.get(n.kind, ":white_check_mark:" if n.status == "resolved" else ":fire:")
    heading = title(n)
    found = facts(n)
    prose = "\n".join(f"*{name}:* {_escape(text)}" for name, text in found if name in _LONG)
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{name}*\n{_escape(text)}", 2000)}
        for name, text in found
        if name not in _LONG and name not in _LINKS
    ][:_FIELDS_MAX]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(f"{emoji} {heading}", _HEADER_MAX)},
        }
    ]
    if prose:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(prose, _TEXT_MAX)}}
        )
    if fields:
        blocks.append({"type": "section", "fields": fields})
    links = dict(found)
    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": name},
            "url": links[name],
        }
        for name in _LINKS
        if links.get(name, "").startswith(("http://", "https://"))
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    labels = ", ".join(f"{key}={value}" for key, value in sorted(n.labels.items()))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_escape(labels), 2000)}]}
    )
    return {"text": heading, "blocks": blocks}


class SlackSender:
    def __init__(self, url: str, *, client: HttpClient, timeout: float) -> None:
        self.url = url
        self.client = client
        self.timeout = timeout

    async def send(self, notifications: Sequence[Notification], now: float) -> None:
        for notification in notifications:
            await http_post(
                self.client,
                self.url,
                payload(notification),
                where="the Slack webhook",
                timeout=self.timeout,
            )


def build(
    settings: NotifierConfig, path: str, environ: Mapping[str, str] | None = None
) -> tuple[Channel, ...]:
    assert isinstance(settings, SlackNotifier)
    name = settings.name_or_type()
    where = f"{path}.webhook_url"
    url = checked_url(secret_setting(settings.webhook_url, where, environ), where)
    return (
        Channel(
            key=name,
            name=name,
            type="slack",
            notifier=SlackSender(url, client=client_for(settings), timeout=settings.timeout),
            policy=person_policy(settings),
            settings=settings,
        ),
    )
