"""`webhook`: the Alertmanager webhook payload, one POST per message, so receivers written
for Alertmanager work unchanged.

    {"version": "4", "groupKey": "{}:{alertname=\\"ApiDown\\", ...}", "truncatedAlerts": 0,
     "status": "firing", "receiver": "<notifier name>", "groupLabels": {...},
     "commonLabels": {...}, "commonAnnotations": {...}, "externalURL": "...",
     "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt",
                 "generatorURL", "fingerprint"}]}

Each message is its own group of one alert (`groupLabels` = its labels), and a firing
alert's `endsAt` is Alertmanager's zero time, as Alertmanager writes it.

Headers: `X-Prober-Notification-Id` (unique per message: a receiver can drop the rare
duplicate of a message whose delivery was cut off before it was marked sent),
`X-Prober-Notification-Kind` (firing, resolved, repeat, flapping, settled), and with
`hmac_secret` set, `X-Prober-Signature: sha256=HEX`, the HMAC-SHA256 of the exact body
bytes under the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from prober.config import WebhookNotifier
from prober.http import HttpClient
from prober.notify.channels import (
    Channel,
    NotifierConfig,
    checked_url,
    client_for,
    http_post,
    origin_of,
    person_policy,
    read_setting,
    secret_setting,
)
from prober.notify.message import Notification, rfc3339

__all__ = ["SIGNATURE_HEADER", "WebhookSender", "build", "payload", "signature"]

SIGNATURE_HEADER: Final = "X-Prober-Signature"
ZERO_TIME: Final = "0001-01-01T00:00:00Z"


def _label_set(labels: Mapping[str, str]) -> str:
    """Alertmanager's `LabelSet.String()`: `{a="1", b="2"}`."""
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def payload(notification: Notification, receiver: str) -> dict[str, Any]:
    n = notification
    labels, annotations = dict(n.labels), dict(n.annotations)
    ends = rfc3339(n.ends_at) if n.status == "resolved" and n.ends_at is not None else ZERO_TIME
    return {
        "version": "4",
        "groupKey": "{}:" + _label_set(labels),
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": receiver,
        "groupLabels": labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": n.external_url,
        "alerts": [
            {
                "status": n.status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(n.starts_at),
                "endsAt": ends,
                "generatorURL": n.external_url,
                "fingerprint": n.fingerprint,
            }
        ],
    }


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(
        self,
        receiver: str,
        url: str,
        *,
        secret: bytes | None,
        client: HttpClient,
        timeout: float,
    ) -> None:
        self.receiver = receiver
        self.url = url
        self.where = f"webhook {origin_of(url)}"
        self.secret = secret
        self.client = client
        self.timeout = timeout

    async def send(self, notifications: Sequence[Notification], now: float) -> None:
        for notification in notifications:
            body = json.dumps(payload(notification, self.receiver)).encode()
            headers = [
                ("X-Prober-Notification-Id", notification.id),
                ("X-Prober-Notification-Kind", notification.kind),
            ]
            if self.secret is not None:
                headers.append((SIGNATURE_HEADER, signature(self.secret, body)))
            await http_post(
                self.client,
                self.url,
                body,
                where=self.where,
                timeout=self.timeout,
                headers=headers,
            )


def build(
    settings: NotifierConfig, path: str, environ: Mapping[str, str] | None = None
) -> tuple[Channel, ...]:
    assert isinstance(settings, WebhookNotifier)
    name = settings.name_or_type()
    url = checked_url(read_setting(settings.url, f"{path}.url", environ), f"{path}.url")
    secret = (
        None
        if settings.hmac_secret is None
        else secret_setting(settings.hmac_secret, f"{path}.hmac_secret", environ).encode()
    )
    return (
        Channel(
            key=name,
            name=name,
            type="webhook",
            notifier=WebhookSender(
                name, url, secret=secret, client=client_for(settings), timeout=settings.timeout
            ),
            policy=person_policy(settings),
            settings=settings,
        ),
    )
