"""`NotificationService`: what the daemon holds for alert delivery.

    build_channels(config)      every notifier's channels, settings read from the environment
                                (an unset `${secret.X}` is a config error: start-up exits 2,
                                a reload is refused and the running notifiers stay)
    configure(channels, url)    swap them in (a reload): unchanged channels keep their task
    plan(tick, annotations)     the outbox rows and channel records one evaluation causes; the
                                daemon writes them in the alert state's transaction, then
                                calls `queued` to wake the senders
    start(store) / drain(t) / stop()

Each message's text is rendered when it is sent, from the facts stored with it: the alert's
labels and annotations, the burn rates that made the change, the related SLOs' budget
remaining and burn rates (5m, 1h, 6h, 1d) at that tick — related: the SLO named by the
`slo` label, else every SLO of the alert's journey — and the status page link.

Housekeeping, hourly: sent and dead-lettered notifications older than 7 days are deleted;
pending ones of a notifier no longer configured are dead-lettered once older than 24 h
(kept until then: a reload that drops a notifier by mistake loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from prober.config import DEFAULT_DEAD_LETTER_AFTER, ProberConfig
from prober.errors import ConfigError, ConfigIssue, StateError
from prober.logs import LOGGER
from prober.metrics import ProberMetrics
from prober.notify import alertmanager, mail, slack, webhook
from prober.notify.channels import Channel, Factory
from prober.notify.message import Notification, SloFigures, rfc3339
from prober.notify.planner import AlertRecord, Plan, Planner, key_from_text, key_text
from prober.notify.sender import ChannelSender
from prober.store import NotifiedChange, OutboxEntry, StateStore
from slo.alerting import AlertKey
from slo.engine import Tick, format_window

__all__ = ["FACTORIES", "NotificationService", "build_channels"]

#: The config's `type:` → the factory of its channels (one module per notifier).
FACTORIES: Final[Mapping[str, Factory]] = {
    "alertmanager": alertmanager.build,
    "slack": slack.build,
    "webhook": webhook.build,
    "email": mail.build,
}
MESSAGE_WINDOWS: Final = (300.0, 3600.0, 21600.0, 86400.0)
OUTBOX_RETENTION: Final = 7 * 86400.0
HOUSEKEEPING_EVERY: Final = 3600.0


def build_channels(
    config: ProberConfig, environ: Mapping[str, str] | None = None
) -> tuple[Channel, ...]:
    """Every configured notifier's channels; raises `ConfigError` with every issue."""
    issues: list[ConfigIssue] = []
    channels: list[Channel] = []
    for index, settings in enumerate(config.alerting.notifiers):
        try:
            channels.extend(
                FACTORIES[settings.type](settings, f"alerting.notifiers[{index}]", environ)
            )
        except ConfigError as error:
            issues.extend(error.issues)
    if issues:
        raise ConfigError(issues)
    return tuple(channels)


class NotificationService:
    def __init__(
        self,
        metrics: ProberMetrics,
        *,
        publish: Callable[[tuple[dict[str, Any], ...]], None] | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.metrics = metrics
        self.planner = Planner()
        self.channels: dict[str, Channel] = {}
        self.senders: dict[str, ChannelSender] = {}
        self.external_url = ""
        self._publish = publish or (lambda _: None)
        self._clock = clock
        self._new_id = new_id
        self._sleep = sleep
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._store: StateStore | None = None
        self._counts: dict[str, tuple[int, int]] = {}
        self._forget: list[NotifiedChange] = []  # records to delete with the next write
        self._stopping: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ configuration

    def configure(self, channels: Sequence[Channel], external_url: str) -> None:
        """Use these channels from now on (start-up, reload)."""
        self.external_url = external_url
        dropped = self.planner.configure({c.key: c.policy for c in channels})
        self._forget.extend(_changes(dropped))
        previous, self.channels = self.channels, {channel.key: channel for channel in channels}
        self.metrics.configure_notifiers(
            {channel.name for channel in channels},
            resends={c.name for c in channels if c.resend_interval is not None},
        )
        if self._store is not None:
            for key, old in previous.items():
                new = self.channels.get(key)
                if new is None or new.settings != old.settings:
                    self._stop_sender(key)
            for key in self.channels:
                if key not in self.senders:
                    self._start_sender(key)
        self._changed()

    # ------------------------------------------------------------------ per evaluation

    def plan(
        self, tick: Tick, annotations: Mapping[AlertKey, Mapping[str, str]]
    ) -> tuple[list[OutboxEntry], list[NotifiedChange]]:
        """The outbox rows and channel records of one evaluation (advances the records)."""
        plan = self.planner.plan(tick.now, tick.alerts, tick.transitions, annotations)
        if not plan and not self._forget:
            return [], []
        figures = _figures(tick)
        entries = []
        for message in plan.messages:
            labels = dict(message.labels)
            record = self.planner.records.get(message.channel, {}).get(message.labels)
            notification = Notification(
                id=self._new_id(),
                kind=message.kind,
                status=message.status,
                labels=labels,
                annotations=annotations.get(message.labels)
                or (record.annotations if record else {}),
                starts_at=message.starts_at,
                ends_at=message.ends_at,
                at=message.at,
                values=message.values,
                slos=_related(labels, figures),
                external_url=self.external_url,
                changes=message.changes,
                hold=message.hold,
            )
            entries.append(OutboxEntry(message.channel, tick.now, notification.to_json()))
        changes = [*self._forget, *_changes(plan)]
        self._forget = []
        return entries, changes

    def queued(self, entries: Iterable[OutboxEntry]) -> None:
        """The rows were handed to the store: wake their senders."""
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.channel] = counts.get(entry.channel, 0) + 1
        for key, count in counts.items():
            sender = self.senders.get(key)
            if sender is not None:
                sender.enqueued(count)

    def active(self, key: str) -> list[Notification]:
        """An Alertmanager channel's active set: what it was told is firing, and what
        resolved within the last 15 minutes (the planner forgets it after that)."""
        now = self._clock()
        found = []
        for labels, record in self.planner.records.get(key, {}).items():
            if record.announced is None:
                continue
            found.append(
                Notification(
                    id=self._new_id(),
                    kind=record.state,
                    status=record.state,
                    labels=dict(labels),
                    annotations=record.annotations,
                    starts_at=record.active_since,
                    ends_at=record.resolved_at,
                    at=now,
                    external_url=self.external_url,
                )
            )
        return found

    # ------------------------------------------------------------------ life cycle

    async def start(self, store: StateStore) -> None:
        """Resume the channel records and queues from the state file; start the senders."""
        restored = []
        for channel, alert, text in await store.load_notified():
            try:
                key, record = key_from_text(alert), AlertRecord.from_json(text)
            except ValueError as error:
                LOGGER.warning(f"notification record of {channel} unreadable ({error}); dropped")
                self._forget.append(NotifiedChange(channel, alert, None))
                continue
            if channel in self.channels:
                restored.append((channel, key, record))
            else:
                self._forget.append(NotifiedChange(channel, alert, None))
        self.planner.restore(restored)
        self._counts = await store.outbox_counts()
        for name, (pending, _) in self._counts.items():
            if pending and name not in self.channels:
                LOGGER.warning(
                    f"{pending} notification(s) queued for {name}, which is no longer"
                    " configured: kept for 24 h, then dead-lettered"
                )
        self._store = store
        for name in self.channels:
            self._start_sender(name)
        self._housekeeping = asyncio.get_running_loop().create_task(self._housekeep())
        self._changed()

    async def drain(self, seconds: float) -> bool:
        """Let the senders deliver what is queued, up to `seconds`; a sender that is
        backing off (its receiver is down) is not waited for: its queue stays in the file."""
        busy = [
            sender.settled.wait()
            for sender in self.senders.values()
            if sender.queued or not sender.settled.is_set()
        ]
        if not busy:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*busy), seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for key in list(self._tasks):
            self._stop_sender(key)
        tasks = list(self._stopping)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            tasks.append(self._housekeeping)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._stopping.clear()
        self._store = None

    def _start_sender(self, key: str) -> None:
        assert self._store is not None
        channel = self.channels[key]
        sender = ChannelSender(
            channel,
            self._store,
            self.metrics,
            active=(lambda: self.active(key)) if channel.resend_interval else None,
            on_change=self._changed,
            clock=self._clock,
            sleep=self._sleep,
        )
        pending, dead = self._counts.get(key, (0, 0))
        sender.queued, sender.dead = pending, dead
        self.senders[key] = sender
        task = asyncio.get_running_loop().create_task(self._run(sender))
        self._tasks[key] = task

    def _stop_sender(self, key: str) -> None:
        sender = self.senders.pop(key, None)
        task = self._tasks.pop(key, None)
        if sender is not None:
            self._counts[key] = (sender.queued, sender.dead)
        if task is not None:
            task.cancel()
            self._stopping.add(task)

    async def _run(self, sender: ChannelSender) -> None:
        """A sender's task: a state-file failure is logged, and the sender starts again."""
        while True:
            try:
                await sender.run()
            except StateError as error:
                self.metrics.state_errors.inc()
                LOGGER.error(f"outbox of {sender.channel.name}: {error}")
                await asyncio.sleep(5.0)

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_EVERY)
            store = self._store
            if store is None:
                return
            now = self._clock()
            try:
                await store.prune_outbox(now - OUTBOX_RETENTION)
                dropped = await store.dead_letter_orphans(
                    set(self.channels), now - DEFAULT_DEAD_LETTER_AFTER, now
                )
                self._counts = await store.outbox_counts()
            except StateError as error:
                self.metrics.state_errors.inc()
                LOGGER.error(f"outbox housekeeping: {error}")
                continue
            for channel, count in dropped.items():
                LOGGER.error(
                    f"{count} notification(s) for {channel} dead-lettered:"
                    " its notifier is no longer configured"
                )
            for key, sender in self.senders.items():
                sender.dead = self._counts.get(key, (0, 0))[1]
            self._changed()

    # ------------------------------------------------------------------ status

    def _changed(self) -> None:
        """Refresh the queue gauges and publish the status (an immutable snapshot)."""
        totals: dict[str, dict[str, Any]] = {}
        for key, channel in self.channels.items():
            sender = self.senders.get(key)
            queued, dead = (sender.queued, sender.dead) if sender else self._counts.get(key, (0, 0))
            entry = totals.setdefault(
                channel.name,
                {
                    "name": channel.name,
                    "type": channel.type,
                    "channels": 0,
                    "queued": 0,
                    "dead_letters": 0,
                    "last_sent": None,
                    "last_error": None,
                },
            )
            entry["channels"] += 1
            entry["queued"] += queued
            entry["dead_letters"] += dead
            if sender is not None:
                if sender.last_sent_at is not None:
                    sent = rfc3339(sender.last_sent_at)
                    entry["last_sent"] = max(entry["last_sent"] or sent, sent)
                if sender.last_error is not None:
                    entry["last_error"] = sender.last_error
        for name, entry in totals.items():
            self.metrics.notification_queue.labels(name).set(entry["queued"])
            self.metrics.notification_dead_letters.labels(name).set(entry["dead_letters"])
        self._publish(tuple(totals.values()))


def _changes(plan: Plan) -> list[NotifiedChange]:
    return [
        NotifiedChange(channel, key_text(key), None if record is None else record.to_json())
        for channel, key, record in plan.records
    ]


def _figures(tick: Tick) -> dict[str, tuple[str, SloFigures]]:
    """SLO name → (journey, figures) at this tick."""
    return {
        status.spec.name: (
            status.spec.journey,
            SloFigures(
                name=status.spec.name,
                objective=status.spec.objective,
                budget_remaining=status.budget_remaining,
                burn_rates={
                    format_window(window): status.burn_rates[window]
                    for window in MESSAGE_WINDOWS
                    if window in status.burn_rates
                },
            ),
        )
        for status in tick.slos
    }


def _related(
    labels: Mapping[str, str], figures: Mapping[str, tuple[str, SloFigures]]
) -> tuple[SloFigures, ...]:
    slo = labels.get("slo")
    if slo is not None:
        return (figures[slo][1],) if slo in figures else ()
    journey = labels.get("journey")
    return tuple(found for owner, found in figures.values() if journey and owner == journey)
