"""Per-host request rate limits: `await limits.acquire(url)` before each request.

The guarantee: at most `max_requests_per_second` acquisitions per host in any one-second
window (half-open), also in the burst after a pause and after the event loop stalled.

How: one GCRA cell per host (the generic cell rate algorithm of ATM networks, as in
redis-cell and most API gateways). A cell keeps the theoretical arrival time (`tat`) of its
next request; a request conforms when `tat - tolerance <= now`, and then moves `tat` to
`max(tat, now) + spacing`. Idle time is not banked (`max(tat, now)`), so a pause buys no
burst, and a stall of the loop buys at most `tolerance` worth of requests at once.

Why a tolerance at all: uvloop's clock and timers have a resolution of one millisecond
(loop.time() is libuv's cached millisecond clock, and a timer can fire up to a millisecond
early), so a limiter that insists on spacing shorter than that can only meet it by spinning
the loop. That is what aiolimiter did here: at 100,000 requests/s allowed, the loop
re-armed zero-delay timers until the millisecond turned, which capped each host at about
1,000 requests/s and doubled the CPU per probe (bench/daemon_throughput.py). With a
2 ms tolerance, requests closer together than a timer can tell apart go at once, and the
spacing is stretched by `1 + tolerance` so the one-second bound still holds exactly:
a window of one second spans `(1 + tolerance) / spacing = max_requests_per_second`
conformance slots. At 500 requests/s or fewer the tolerance is shorter than the spacing,
so no two requests ever go together.

Waiting requests queue first-come first-served and are woken by one timer per host, set a
millisecond past the moment the head of the queue conforms (so a timer that fires early
still finds it conforming; no timer is ever armed with zero delay). Time comes from
`time.monotonic_ns()`, injectable for tests, and the cell counts in whole nanoseconds:
with floats, rounding let two requests at rate 1/s land 0.9999999999999998 s apart.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["TOLERANCE", "Cell", "HostRateLimits", "spacing"]

#: Requests this close together may go at once (twice uvloop's timer resolution), in ns.
TOLERANCE = 2_000_000
_SECOND = 1_000_000_000
# A fresh cell's `tat`: so long ago that any first request conforms.
_NEVER = -(2**62)
# How far past the conforming moment the wake-up timer is set: a uvloop timer may fire up
# to a millisecond early, and one that fires late only delays a request that waited anyway.
_TIMER_SLACK = 0.001


def spacing(max_per_second: float) -> int:
    """Nanoseconds between conformance slots; rounded up, so N spacings less the tolerance
    are never shorter than a second."""
    return math.ceil((_SECOND + TOLERANCE) / max_per_second)


class Cell:
    """One host's GCRA state; pure (time is an argument, in nanoseconds)."""

    __slots__ = ("spacing", "tat")

    def __init__(self, max_per_second: float) -> None:
        self.spacing = spacing(max_per_second)
        self.tat = _NEVER

    def take(self, now: int) -> bool:
        """Take a slot if a request at `now` conforms; False (nothing taken) if it must wait."""
        if self.tat - TOLERANCE > now:
            return False
        self.tat = max(self.tat, now) + self.spacing
        return True

    def retune(self, max_per_second: float) -> None:
        """A new rate; the last request taken stays, now a new spacing before `tat`."""
        new = spacing(max_per_second)
        self.tat += new - self.spacing
        self.spacing = new

    def conforms_at(self) -> int:
        """The earliest moment the next request conforms."""
        return self.tat - TOLERANCE


class _Host:
    __slots__ = ("cell", "timer", "waiters")

    def __init__(self, max_per_second: float) -> None:
        self.cell = Cell(max_per_second)
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.timer: asyncio.TimerHandle | None = None


class HostRateLimits:
    """At most `max_requests_per_second` requests per host (the URL's `host[:port]`)."""

    def __init__(
        self, max_requests_per_second: float, clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self._rate = max_requests_per_second
        self._clock = clock
        self._hosts: dict[str, _Host] = {}

    def retune(self, max_requests_per_second: float) -> None:
        """A new rate (a reload), keeping each host's cell: the requests just sent still count."""
        self._rate = max_requests_per_second
        for host in self._hosts.values():
            host.cell.retune(max_requests_per_second)

    async def acquire(self, url: str) -> None:
        key = urlsplit(url).netloc.lower()
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(self._rate)
        if not host.waiters and host.cell.take(self._clock()):
            return
        waiter = asyncio.get_running_loop().create_future()
        host.waiters.append(waiter)
        self._arm(host)
        # A cancelled waiter (its run timed out, or shutdown) is skipped when its turn comes.
        await waiter

    def _arm(self, host: _Host) -> None:
        if host.timer is None:
            delay = max(0, host.cell.conforms_at() - self._clock()) / _SECOND + _TIMER_SLACK
            host.timer = asyncio.get_running_loop().call_later(delay, self._wake, host)

    def _wake(self, host: _Host) -> None:
        host.timer = None
        waiters = host.waiters
        now = self._clock()
        while waiters:
            if waiters[0].done():  # cancelled while waiting
                waiters.popleft()
            elif host.cell.take(now):
                waiters.popleft().set_result(None)
            else:
                break
        if waiters:
            self._arm(host)
