"""The notification service as the daemon drives it, without the daemon: a config's
notifiers, a real state file, evaluations given as "these alerts fire now"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prober.config import parse_config
from prober.metrics import ProberMetrics
from prober.notify import NotificationService, build_channels
from prober.store import StateStore
from slo.alerting import ActiveAlert, AlertKey, AlertState, Transition, alert_key
from slo.engine import Tick

API_DOWN = alert_key(
    {
        "alertname": "ApiDown",
        "severity": "critical",
        "journey": "healthcheck",
        "service": "shop",
    }
)
ANNOTATIONS = {
    API_DOWN: {
        "summary": "ApiDown: error_ratio > 90% (healthcheck)",
        "description": "error_ratio > 90% held for journey healthcheck over 3s.",
        "runbook_url": "https://runbooks.example.com/api-down",
    }
}
BASE_CONFIG = "service: shop\njourneys: [{name: healthcheck, steps: [{name: health, url: /}]}]\n"
RETRY_FAST = "backoff_initial: 50ms, backoff_max: 200ms"


class Clock:
    """Real time plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Harness:
    def __init__(
        self,
        notifiers: str,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        external_url: str = "http://prober.example.com/",
    ) -> None:
        self.config = parse_config(BASE_CONFIG + f"alerting:\n  notifiers:\n{notifiers}")
        self.path = path
        self.clock = clock
        self.external_url = external_url
        self.metrics = ProberMetrics("test")
        self.status: tuple[dict[str, Any], ...] = ()
        self.service = self._service()
        self.store: StateStore | None = None
        self.firing: dict[AlertKey, float] = {}

    def _service(self) -> NotificationService:
        def publish(status: tuple[dict[str, Any], ...]) -> None:
            self.status = status

        return NotificationService(self.metrics, publish=publish, clock=self.clock)

    async def __aenter__(self) -> Harness:
        self.store = StateStore.open(self.path)
        self.service.configure(build_channels(self.config), self.external_url)
        await self.service.start(self.store)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.service.stop()
        assert self.store is not None
        await self.store.close()

    async def restart(self) -> None:
        """Stop and start again on the same state file (a new service, like a new process)."""
        await self.__aexit__(None, None, None)
        self.metrics = ProberMetrics("test")
        self.service = self._service()
        await self.__aenter__()

    async def evaluate(self, firing: Mapping[AlertKey, float], now: float | None = None) -> int:
        """One evaluation at which exactly `firing` (key → active since) fire; writes its
        notifications as the daemon does. How many were queued."""
        assert self.store is not None
        now = self.clock() if now is None else now
        alerts = AlertState(
            {key: ActiveAlert("firing", since, since, False, {}) for key, since in firing.items()}
        )
        gone = tuple(
            Transition(key, "resolved", now, since, {"value": 0.0})
            for key, since in self.firing.items()
            if key not in firing
        )
        self.firing = dict(firing)
        tick = Tick(now, (), gone, alerts, {})
        entries, notified = self.service.plan(tick, ANNOTATIONS)
        await self.store.save_alerts_with_notifications(alerts.to_records(), now, entries, notified)
        self.service.queued(entries)
        return len(entries)

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


async def until(predicate: Callable[[], Any], what: str, deadline: float = 30.0) -> Any:
    """Poll (letting the loop run) until `predicate()` is truthy; fail after `deadline`."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
