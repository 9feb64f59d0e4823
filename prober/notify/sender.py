"""The outbox sender: one task per channel drains that channel's queue in order.

    loop:  read the oldest pending notifications (up to the channel's batch size)
           none: wait until woken (a commit queued some) — Alertmanager: or until the
                 next re-send of the active set is due
           some: send them; retry transient failures with exponential backoff and jitter
                 (tenacity: `backoff_initial` × 2^n + up to `backoff_initial` of jitter,
                 capped at `backoff_max`; a Retry-After is honoured); then mark them `sent`,
                 or `dead` (dead-lettered) when the receiver refuses the message itself or
                 the oldest one is older than `dead_letter_after` (default 24 h)

Order: a channel never sends a notification before the ones queued ahead of it; while it
backs off, nothing behind waits less. Each channel is independent: one receiver down
delays no other.

Delivery is at-least-once with a window of one send: a notification is marked `sent`
after its receiver answered; a process killed in between sends it again on restart (each
carries a unique id for receivers that care). Everything else is exactly once.

What is counted (label `notifier`: the notifier's name, from the config):
`prober_notifications_total{result=sent|retried|failed}` per notification (`retried`: a
failed attempt that will be retried; `failed`: dead-lettered), `prober_notification_queue_depth`,
`prober_notification_dead_letters` (dead-lettered notifications kept in the state file) and
`prober_notification_resends_total{result=sent|failed}` (Alertmanager re-sends, per POST).
A dead-lettered notification is logged at error level with its alert and why.
Error texts pass `redact` before they are logged, stored or shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from prober.logs import LOGGER
from prober.metrics import ProberMetrics
from prober.notify.channels import Channel, DeliveryError
from prober.notify.message import Notification
from prober.redaction import redact
from prober.store import OutboxRow, StateStore

__all__ = ["ChannelSender"]

#: How many failures in a row are logged at warning level before the rest go to debug
#: (the recovery is logged at info with the count).
LOUD_FAILURES: Final = 3


def _transient(error: BaseException) -> bool:
    return isinstance(error, DeliveryError) and not error.permanent


class ChannelSender:
    """Drains one channel's queue; `enqueued` wakes it. Run `run()` as a task."""

    def __init__(
        self,
        channel: Channel,
        store: StateStore,
        metrics: ProberMetrics,
        *,
        active: Callable[[], Sequence[Notification]] | None = None,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.channel = channel
        self.store = store
        self.metrics = metrics
        self.queued = 0
        self.dead = 0
        self.last_error: str | None = None
        self.last_sent_at: float | None = None
        self.failures = 0  # failed attempts in a row
        self._active = active
        self._on_change = on_change or (lambda: None)
        self._clock = clock
        self._sleep = sleep or asyncio.sleep
        self._wake = asyncio.Event()
        #: Set while nothing can be sent now (queue empty, or backing off): what `drain` waits for.
        self.settled = asyncio.Event()
        self._next_resend = clock()  # at start: tell Alertmanager the current state at once
        self._backoff = wait_exponential(
            multiplier=channel.backoff_initial, max=channel.backoff_max
        ) + wait_random(0, channel.backoff_initial)

    def enqueued(self, count: int) -> None:
        if count:
            self.queued += count
            self.settled.clear()
            self._changed()
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            rows = await self.store.pending_notifications(self.channel.key, self.channel.batch_size)
            if rows:
                self.settled.clear()
                await self._deliver(rows)
                continue
            self.settled.set()
            await self._idle()

    # ------------------------------------------------------------------ idle: re-sends

    async def _idle(self) -> None:
        interval = self.channel.resend_interval
        if interval is None or self._active is None:
            await self._wake.wait()
            return
        delay = self._next_resend - self._clock()
        if delay > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
                return
            except TimeoutError:
                pass
        self._next_resend = self._clock() + interval
        await self._resend(self._active())

    async def _resend(self, notifications: Sequence[Notification]) -> None:
        """Re-send the active set (best effort: the next re-send repairs a failed one)."""
        size = self.channel.batch_size
        for start in range(0, len(notifications), size):
            try:
                await self.channel.notifier.send(notifications[start : start + size], self._clock())
            except DeliveryError as error:
                self.metrics.notification_resends.labels(self.channel.name, "failed").inc()
                self.last_error = redact(str(error))
                LOGGER.debug(f"re-send to {self.channel.name} failed: {self.last_error}")
                self._changed()
                return
            self.metrics.notification_resends.labels(self.channel.name, "sent").inc()
        if notifications and self.last_error is not None:
            self.last_error = None  # it answers again
            self._changed()

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, rows: Sequence[OutboxRow]) -> Sequence[OutboxRow] | None:
        """Deliver a batch; the channel's next rows when they came with the marking, else
        None (read them again)."""
        good: list[OutboxRow] = []
        notifications: list[Notification] = []
        for row in rows:
            try:
                notifications.append(Notification.from_json(row.payload))
                good.append(row)
            except ValueError as error:
                await self._dead_letter([row], f"unreadable payload ({error})", None)
        if not good:
            return None
        ids = [row.id for row in good]

        async def before_sleep(state: RetryCallState) -> None:
            await self._note_retry(ids, state)

        retrying = AsyncRetrying(
            retry=retry_if_exception(_transient),
            wait=self._wait,
            stop=lambda state: self._expired(good),
            sleep=self._back_off,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            await retrying(self._send, notifications)
        except DeliveryError as error:
            reason = redact(str(error))
            if error.permanent:
                await self._dead_letter(good, f"refused: {reason}", notifications)
            else:
                expired = [
                    (row, notification)
                    for row, notification in zip(good, notifications, strict=True)
                    if self._too_old(row)
                ]
                await self._dead_letter(
                    [row for row, _ in expired],
                    f"undeliverable for {self.channel.dead_letter_after:g} s: {reason}",
                    [notification for _, notification in expired],
                )
            return None
        now = self._clock()
        following = await self.store.sent_then_pending(
            ids, now, self.channel.key, self.channel.batch_size
        )
        self.metrics.notifications.labels(self.channel.name, "sent").inc(len(ids))
        self.queued = max(0, self.queued - len(ids))
        self.last_sent_at = now
        if self.failures:
            LOGGER.info(
                f"notifications to {self.channel.name} delivered again"
                f" after {self.failures} failed attempt(s)",
                extra={"notifier": self.channel.name},
            )
        self.failures = 0
        self.last_error = None
        self._changed()
        return following

    async def _send(self, notifications: Sequence[Notification]) -> None:
        self.settled.clear()
        await self.channel.notifier.send(notifications, self._clock())

    def _too_old(self, row: OutboxRow) -> bool:
        return self._clock() - row.created_at >= self.channel.dead_letter_after

    def _expired(self, rows: Sequence[OutboxRow]) -> bool:
        return any(self._too_old(row) for row in rows)

    def _wait(self, state: RetryCallState) -> float:
        wait = self._backoff(state)
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, DeliveryError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait

    async def _back_off(self, seconds: float) -> None:
        self.settled.set()  # nothing more can go out now: a drain need not wait for it
        await self._sleep(seconds)  # type: ignore[misc]

    async def _note_retry(self, ids: Sequence[int], state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        text = redact(str(error))
        self.failures += 1
        self.last_error = text
        self.metrics.notifications.labels(self.channel.name, "retried").inc(len(ids))
        level = logging.WARNING if self.failures <= LOUD_FAILURES else logging.DEBUG
        wait = state.upcoming_sleep
        LOGGER.log(
            level,
            f"notification to {self.channel.name} failed, retrying in {wait:.1f} s: {text}",
        )
        self._changed()
        await self.store.note_attempt(ids, text)

    async def _dead_letter(
        self,
        rows: Sequence[OutboxRow],
        reason: str,
        notifications: Sequence[Notification] | None,
    ) -> None:
        if not rows:
            return
        await self.store.finish_notifications(
            [row.id for row in rows], "dead", self._clock(), reason
        )
        self.metrics.notifications.labels(self.channel.name, "failed").inc(len(rows))
        self.queued = max(0, self.queued - len(rows))
        self.dead += len(rows)
        self.last_error = reason
        for index, row in enumerate(rows):
            notification = notifications[index] if notifications else None
            LOGGER.error(
                f"notification to {self.channel.name} dead-lettered: {reason}",
                extra={
                    "notifier": self.channel.name,
                    "alert": dict(notification.labels) if notification else None,
                    "reason": notification.kind if notification else None,
                    "values": {"outbox_id": row.id, "created_at": row.created_at},
                },
            )
        self._changed()

    def _changed(self) -> None:
        self._on_change()
