"""The `alertmanager` notifier against a real Alertmanager (Debian `prometheus-alertmanager`):
firing and resolved alerts with the right labels, every URL of a cluster, two replicas
de-duplicated; and the re-send protocol, read off a loopback stand-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from prober.notify.message import fingerprint
from tests.notify.conftest import Alertmanager, Receiver
from tests.notify.harness import API_DOWN, RETRY_FAST, Harness, until

pytestmark = pytest.mark.integration


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def notified(hook: Receiver, status: str) -> list[dict[str, Any]]:
    """The alerts Alertmanager itself notified `hook` about with this status."""
    return [
        alert
        for request in hook.delivered()
        for alert in request.json()["alerts"]
        if alert["status"] == status
    ]


def test_firing_and_resolved_reach_alertmanager(
    tmp_path: Path, receiver: Callable[..., Receiver], alertmanager: Callable[..., Alertmanager]
) -> None:
    """Firing: the labels, annotations, startsAt and endsAt = now + 4 × resend_interval;
    resolved: endsAt = the resolve time, and Alertmanager sends its resolved notification."""
    hook = receiver()
    am = alertmanager(hook=f"{hook.url}/am")
    notifiers = f"    - {{type: alertmanager, url: {am.url}, resend_interval: 1m}}\n"

    async def main() -> tuple[dict[str, Any], float, float]:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            since = round(h.clock()) - 30.0
            await h.evaluate({API_DOWN: since})
            sent = time.time()
            (alert,) = await until(am.alerts, "the alert in Alertmanager")
            await until(lambda: notified(hook, "firing"), "Alertmanager's firing notification")
            resolved_at = h.clock()
            await h.evaluate({}, now=resolved_at)
            await until(lambda: not am.alerts(), "the alert to resolve in Alertmanager")
            await until(lambda: notified(hook, "resolved"), "Alertmanager's resolved notification")
            assert since
            return alert, sent, resolved_at

    alert, sent, resolved_at = asyncio.run(main())
    assert alert["labels"] == dict(API_DOWN)
    assert alert["annotations"]["summary"] == "ApiDown: error_ratio > 90% (healthcheck)"
    assert alert["fingerprint"] == fingerprint(dict(API_DOWN))
    assert alert["status"]["state"] == "active"
    assert alert["generatorURL"] == "http://prober.example.com/"
    assert abs(seconds(alert["endsAt"]) - (sent + 240)) < 10
    (done,) = notified(hook, "resolved")
    assert done["labels"] == dict(API_DOWN)
    assert abs(seconds(done["endsAt"]) - resolved_at) < 0.002


def test_every_alertmanager_of_a_cluster_gets_every_alert(
    tmp_path: Path, alertmanager: Callable[..., Alertmanager]
) -> None:
    """Two URLs: the one that is up gets the alert at once, the one that was down when it
    fired gets it once it is up."""
    first, second = alertmanager(), alertmanager(start=False)
    notifiers = f"    - {{type: alertmanager, url: [{first.url}, {second.url}], {RETRY_FAST}}}\n"

    async def main() -> None:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: h.clock() - 30})
            await until(first.alerts, "the alert in the first Alertmanager")
            await until(
                lambda: h.metric(
                    "prober_notifications_total", notifier="alertmanager", result="retried"
                ),
                "a failed attempt at the second",
            )
            assert h.metric("prober_notification_queue_depth", notifier="alertmanager") == 1
            await asyncio.to_thread(second.start)
            await until(second.alerts, "the alert in the second Alertmanager")
            await until(
                lambda: h.metric("prober_notification_queue_depth", notifier="alertmanager") == 0,
                "an empty queue",
            )

    asyncio.run(main())
    assert [a["fingerprint"] for a in first.alerts()] == [a["fingerprint"] for a in second.alerts()]


def test_two_replicas_make_one_alert(
    tmp_path: Path, alertmanager: Callable[..., Alertmanager]
) -> None:
    """The HA setup: two probers, same config, own state files: one alert in Alertmanager."""
    am = alertmanager()
    notifiers = f"    - {{type: alertmanager, url: {am.url}}}\n"

    async def main() -> None:
        async with (
            Harness(notifiers, tmp_path / "a.db") as a,
            Harness(notifiers, tmp_path / "b.db") as b,
        ):
            await a.evaluate({API_DOWN: a.clock() - 30})
            await b.evaluate({API_DOWN: b.clock() - 29})
            for h in (a, b):
                await until(
                    lambda h=h: h.metric(  # type: ignore[misc]
                        "prober_notifications_total", notifier="alertmanager", result="sent"
                    ),
                    "both replicas to send",
                )

    asyncio.run(main())
    assert len(am.alerts()) == 1


def test_active_set_is_resent_and_resolved_ones_for_15_minutes(
    tmp_path: Path, receiver: Callable[..., Receiver]
) -> None:
    """Read off a stand-in: firing alerts are re-sent every resend_interval with a fresh
    endsAt = now + 4 × resend_interval; a resolved one is re-sent with its resolve time
    until 15 minutes after it, then no more."""
    stand_in = receiver()
    notifiers = f"    - {{type: alertmanager, url: {stand_in.url}, resend_interval: 500ms}}\n"

    def posts() -> list[tuple[float, list[dict[str, Any]]]]:
        return [(request.at, request.json()) for request in stand_in.delivered()]

    async def main() -> float:
        async with Harness(notifiers, tmp_path / "state.db") as h:
            await h.evaluate({API_DOWN: h.clock() - 30})
            await until(lambda: len(posts()) >= 4, "three re-sends")
            resolved_at = h.clock()
            await h.evaluate({}, now=resolved_at)
            count = len(posts())
            await until(lambda: len(posts()) >= count + 3, "re-sends of the resolved alert")
            await h.evaluate({}, now=resolved_at + 900)  # 15 minutes later: forgotten
            await asyncio.sleep(1.5)  # a re-send already on its way arrives
            count = len(posts())
            await asyncio.sleep(1.2)
            assert len(posts()) == count  # nothing left to re-send
            return resolved_at

    resolved_at = asyncio.run(main())
    assert all(len(body) == 1 for _, body in posts())
    sent = [(at, body[0]) for at, body in posts()]
    resolved = [alert for _, alert in sent if abs(seconds(alert["endsAt"]) - resolved_at) < 0.002]
    firing = [(at, alert) for at, alert in sent if alert not in resolved]
    assert len(firing) >= 4
    for at, alert in firing:  # endsAt = now + 4 × 500ms at each (re-)send
        assert at + 0.5 <= seconds(alert["endsAt"]) <= at + 2.01, (at, alert["endsAt"])
    assert firing[-1][0] - firing[0][0] >= 1.0
    assert len(resolved) >= 3
    assert sent[-1][1] in resolved  # after the resolve, only the resolved alert
