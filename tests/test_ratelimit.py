"""prober.ratelimit: at most N acquisitions per host in any one-second window, whatever the
arrivals (bursts, pauses, stalls), FIFO, and without ever spinning the event loop."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prober import eventloop
from prober.ratelimit import TOLERANCE, Cell, HostRateLimits
from tests.conftest import PROPERTY_SETTINGS

MS = 1_000_000  # nanoseconds
SECOND = 1000 * MS


def most_in_one_second(times: list[int]) -> int:
    """The largest number of `times` (ns) in any half-open one-second window."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, start + SECOND) - i for i, start in enumerate(ordered)),
        default=0,
    )


def grant_times(rate: float, arrivals: list[int]) -> list[int]:
    """When each arrival is let through, FIFO, each at the first moment it conforms: what
    HostRateLimits does, less the timer's slack."""
    cell = Cell(rate)
    granted: list[int] = []
    previous = -(2**63)
    for arrival in sorted(arrivals):
        moment = max(arrival, previous, cell.conforms_at())
        assert cell.take(moment)
        granted.append(moment)
        previous = moment
    return granted


CELL_ROWS = [
    # id, rate, request times (ms), which conform (taken) at those times
    ("first-always", 4, [0], [True]),
    ("second-waits", 4, [0, 100], [True, False]),
    ("spaced", 4, [0, 250.5, 501], [True, True, True]),
    ("a-hair-early-waits", 4, [0, 248.4], [True, False]),
    ("pause-banks-nothing", 4, [0, 10_000, 10_001], [True, True, False]),
    ("high-rate-burst-within-tolerance", 100_000, [0] * 200, [True] * 200),
    ("high-rate-burst-past-tolerance", 100_000, [0] * 202, [True] * 200 + [False] * 2),
]


@pytest.mark.parametrize(
    ("rate", "times", "taken"),
    [row[1:] for row in CELL_ROWS],
    ids=[row[0] for row in CELL_ROWS],
)
def test_cell(rate: float, times: list[float], taken: list[bool]) -> None:
    cell = Cell(rate)
    assert [cell.take(round(now * MS)) for now in times] == taken


@PROPERTY_SETTINGS
@given(
    rate=st.sampled_from([1, 3, 4, 7, 20, 499, 500, 501, 1000, 5000, 100_000]),
    arrivals=st.lists(
        st.integers(min_value=0, max_value=5 * SECOND)
        | st.sampled_from([0, SECOND, 5 * SECOND // 2]),
        min_size=1,
        max_size=400,
    ),
)
def test_property_never_more_than_the_rate_in_any_second(rate: float, arrivals: list[int]) -> None:
    """Any arrivals (bursts, pauses, whole seconds at once): no one-second window holds
    more than `rate` grants, and nobody is let through before arriving."""
    granted = grant_times(rate, arrivals)
    assert most_in_one_second(granted) <= rate
    assert all(g >= a for g, a in zip(granted, sorted(arrivals), strict=True))


@pytest.mark.parametrize("rate", [4, 100, 1000, 100_000])
def test_sustained_rate_under_overload(rate: int) -> None:
    """Offered far more than it allows, it still lets through the rate less the tolerance's
    stretch (0.2%), so a limit of 100,000/s is not quietly a limit of 1,000/s."""
    arrivals = [i * SECOND // (10 * rate) for i in range(rate * 3)]  # 10× the rate, 0.3 s
    granted = grant_times(rate, arrivals)
    seconds = (granted[-1] - granted[0]) / SECOND
    achieved = (len(granted) - 1) / seconds
    assert rate / (1 + TOLERANCE / SECOND) * 0.999 <= achieved <= rate


def test_at_most_500_per_second_never_two_together() -> None:
    """Below 500/s the tolerance is shorter than the spacing: never two at one moment."""
    cell = Cell(500)
    assert cell.take(0)
    assert not cell.take(0)


T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return eventloop.run(coroutine)


@pytest.fixture(params=["auto", "asyncio"], ids=["uvloop", "asyncio"])
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both loops prober runs on: uvloop's millisecond timers are the hard case."""
    monkeypatch.setenv("PROBER_EVENT_LOOP", request.param)
    return str(request.param)


@pytest.mark.usefixtures("event_loop_kind")
def test_waiters_go_in_order_at_the_rate_on_the_real_loop() -> None:
    """30 requests at once against 100/s: first come first served, at the rate."""
    limits = HostRateLimits(100)
    order: list[int] = []
    moments: list[float] = []

    async def request(i: int) -> None:
        await limits.acquire("http://127.0.0.1:1/x")
        order.append(i)
        moments.append(time.monotonic())

    async def main() -> None:
        await asyncio.gather(*(request(i) for i in range(30)))

    run(main())
    assert order == list(range(30))
    # Grants are at least a spacing (10.02 ms) less the tolerance (2 ms) apart; the first
    # went without waiting, so its moment is its grant. Liveness: not much slower either.
    assert 29 * 0.01002 - 0.002 <= moments[-1] - moments[0] < 29 * 0.01002 + 2.0


def test_hosts_are_limited_separately() -> None:
    limits = HostRateLimits(1)

    async def main() -> float:
        started = time.monotonic()
        await limits.acquire("http://127.0.0.1:1/a")
        await limits.acquire("http://127.0.0.1:2/a")
        await limits.acquire("http://LOCALHOST:1/b")
        return time.monotonic() - started

    assert run(main()) < 0.5


def test_a_cancelled_waiter_does_not_hold_up_the_queue() -> None:
    """A run that times out while waiting for its turn is skipped; the next one goes."""
    limits = HostRateLimits(20)
    url = "http://127.0.0.1:1/"

    async def main() -> float:
        await limits.acquire(url)
        doomed = asyncio.ensure_future(limits.acquire(url))
        await asyncio.sleep(0)
        doomed.cancel()
        started = time.monotonic()
        await asyncio.wait_for(limits.acquire(url), timeout=5)
        return time.monotonic() - started

    waited = run(main())
    assert waited < 0.2  # one spacing (50 ms) plus slack, not two or a hang


@pytest.mark.usefixtures("event_loop_kind")
def test_high_rate_does_not_spin_the_loop() -> None:
    """3,000 requests at once against 100,000/s: through in a few milliseconds' worth of
    timer wake-ups, not one per loop iteration until the millisecond turns."""
    limits = HostRateLimits(100_000)
    wakes = 0
    original = limits._wake

    def counting_wake(host):  # type: ignore[no-untyped-def]
        nonlocal wakes
        wakes += 1
        original(host)

    limits._wake = counting_wake  # type: ignore[method-assign]

    async def main() -> None:
        await asyncio.gather(*(limits.acquire("http://127.0.0.1:1/") for _ in range(3000)))

    started = time.monotonic()
    run(main())
    elapsed = time.monotonic() - started
    # 3,000 at 100,000/s is 30 ms of slots; each wake-up lets through what conforms
    # (200 per 2 ms tolerance), so a few dozen wakes at most on a slow machine.
    assert wakes <= 10 + elapsed * 1000 * 2
    assert wakes < 200


def test_retune_keeps_what_was_just_sent() -> None:
    """A reload retunes the cells in place: the request sent just before it still counts,
    spaced at the new rate, so a reload is no burst."""
    cell = Cell(4)
    assert cell.take(0)
    cell.retune(2)
    assert not cell.take(300 * MS)  # past 4/s's spacing, not 2/s's
    assert cell.take(500 * MS)
    assert not cell.take(700 * MS)
    cell.retune(100)
    assert cell.take(500 * MS + 10_020_000)  # the new spacing after the last one taken
