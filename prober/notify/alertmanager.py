"""`alertmanager`: `POST /api/v2/alerts`, the way Prometheus does it.

- A firing alert is sent with `endsAt = now + 4 × resend_interval` (`now`: when it is
  sent), and the whole active set is re-sent every `resend_interval` (default 1m) while
  the queue is empty: if the prober dies, Alertmanager resolves its alerts by itself after
  four missed re-sends, as it does for Prometheus.
- A resolved alert is sent with `endsAt` = the resolve time, and re-sent for 15 minutes
  (`RESOLVED_RESEND`), so an Alertmanager that restarted in between still learns it.
- Every URL of `url:` (an HA cluster) is its own channel with its own queue: each
  receives every alert, and one that is down gets its copy when it is back.
- The API is state-based: within one batch only each alert's latest state is posted (an
  alert that fired and resolved while Alertmanager was down arrives resolved, with its
  `startsAt`, as Prometheus would send it).
- **HA**: two prober replicas with the same config send identical label sets (no replica
  label is added), so Alertmanager de-duplicates them into one alert and one page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from prober.config import AlertmanagerNotifier
from prober.http import HttpClient
from prober.notify.channels import (
    Channel,
    NotifierConfig,
    checked_url,
    client_for,
    http_post,
    origin_of,
    read_setting,
    url_hash,
)
from prober.notify.message import Notification, rfc3339
from prober.notify.planner import ChannelPolicy

__all__ = ["RESOLVED_RESEND", "AlertmanagerSender", "alert_json", "build"]

RESOLVED_RESEND: Final = 15 * 60.0
#: Alerts per POST (Prometheus sends 64; Alertmanager takes far more in one request).
BATCH_SIZE: Final = 500
ENDS_AT_RESENDS: Final = 4


def alert_json(notification: Notification, now: float, resend_interval: float) -> dict[str, Any]:
    """One alert of the `POST /api/v2/alerts` body."""
    ends = (
        notification.ends_at
        if notification.status == "resolved" and notification.ends_at is not None
        else now + ENDS_AT_RESENDS * resend_interval
    )
    alert: dict[str, Any] = {
        "labels": dict(notification.labels),
        "annotations": dict(notification.annotations),
        "startsAt": rfc3339(notification.starts_at),
        "endsAt": rfc3339(ends),
    }
    if notification.external_url:
        alert["generatorURL"] = notification.external_url
    return alert


class AlertmanagerSender:
    """One Alertmanager of a cluster."""

    def __init__(
        self, url: str, *, resend_interval: float, client: HttpClient, timeout: float
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.where = f"Alertmanager {origin_of(url)}"
        self.resend_interval = resend_interval
        self.client = client
        self.timeout = timeout

    async def send(self, notifications: Sequence[Notification], now: float) -> None:
        latest: dict[str, Notification] = {}
        for notification in notifications:
            latest.pop(notification.fingerprint, None)  # keep the batch's order of last states
            latest[notification.fingerprint] = notification
        body = [alert_json(n, now, self.resend_interval) for n in latest.values()]
        await http_post(self.client, self.endpoint, body, where=self.where, timeout=self.timeout)


def build(
    settings: NotifierConfig, path: str, environ: Mapping[str, str] | None = None
) -> tuple[Channel, ...]:
    assert isinstance(settings, AlertmanagerNotifier)
    name = settings.name_or_type()
    policy = ChannelPolicy(frozenset(settings.severities), keep_resolved=RESOLVED_RESEND)
    client = client_for(settings)
    channels = []
    for index, raw in enumerate(settings.url):
        where = f"{path}.url" if len(settings.url) == 1 else f"{path}.url[{index}]"
        url = checked_url(read_setting(raw, where, environ), where)
        channels.append(
            Channel(
                key=f"{name}@{url_hash(url)}",
                name=name,
                type="alertmanager",
                notifier=AlertmanagerSender(
                    url,
                    resend_interval=settings.resend_interval,
                    client=client,
                    timeout=settings.timeout,
                ),
                policy=policy,
                settings=settings,
                batch_size=BATCH_SIZE,
                resend_interval=settings.resend_interval,
            )
        )
    return tuple(channels)
