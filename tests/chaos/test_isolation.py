"""A hostile target never costs a healthy one its probes: a canary keeps its success ratio
and the loop its responsiveness while slow DNS, a punycode-labelled body or a stream of
1-byte chunks is probed beside it (issue #14).

Each case runs, on the daemon's loop (`prober.eventloop.run`: uvloop), a canary that sends
a request to a healthy loopback server by name every 50 ms, a hostile prober that probes
the hostile target as fast as it fails, and a ticker that measures how late its 20 ms
sleeps wake up (the event-loop lag). Assertions are generous: the canary must succeed in
90 % of its runs and the loop must never be a second late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from prober import eventloop
from prober.http import HttpClient, HttpFailure, HttpRequest, HttpResponse
from tests.http import helpers
from tests.http.dns import DnsServer, Name
from tests.http.helpers import Connection, RawServer, Received, response

pytestmark = pytest.mark.integration

RUN_SECONDS = 3.0
CANARY_EVERY = 0.05
TICK = 0.02
MAX_LAG = 1.0  # seconds; an unharmed loop is late by milliseconds
MIN_SUCCESS = 0.9
MIN_RUNS = 15


@dataclass
class Tally:
    canary_ok: int = 0
    canary_failed: list[str] = field(default_factory=list)
    hostile_runs: int = 0
    worst_lag: float = 0.0


def one_byte_chunks(connection: Connection, request: Received) -> bool:
    """Stream `1\\r\\nx\\r\\n` as fast as the client reads, until it goes away."""
    connection.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    block = b"1\r\nx\r\n" * 4096
    for _ in range(2000):  # bounded: 48 MiB at most
        if connection.server.stopping.is_set():
            break
        connection.send(block)
    return False


PUNYCODE = response(
    # No `-`: all of it is the encoded part, which Python's punycode decodes in quadratic time.
    200,
    b"a" * (256 * 1024),
    (("Content-Type", "text/plain; charset=punycode"),),
)


async def _hostile_text(client: HttpClient, url: str) -> None:
    """A journey whose step checks the body: the condition decodes the text."""
    async with client.session() as session:
        outcome = await session.send(HttpRequest("GET", url, timeout=2.0))
    if isinstance(outcome, HttpResponse):
        outcome.text()


async def _hostile_send(client: HttpClient, url: str) -> None:
    async with client.session() as session:
        await session.send(HttpRequest("GET", url, timeout=0.5))


async def _exercise(
    client: HttpClient, canary_url: str, hostile: Callable[[], Awaitable[None]]
) -> Tally:
    tally = Tally()
    stop = time.monotonic() + RUN_SECONDS

    async def canary() -> None:
        while time.monotonic() < stop:
            async with client.session() as session:
                outcome = await session.send(HttpRequest("GET", canary_url, timeout=2.0))
            if isinstance(outcome, HttpFailure):
                tally.canary_failed.append(f"{outcome.failure.reason}: {outcome.failure.message}")
            else:
                tally.canary_ok += 1
            await asyncio.sleep(CANARY_EVERY)

    async def attacker() -> None:
        while time.monotonic() < stop:
            await hostile()
            tally.hostile_runs += 1
            await asyncio.sleep(0.01)

    async def ticker() -> None:
        while time.monotonic() < stop:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            tally.worst_lag = max(tally.worst_lag, time.monotonic() - before - TICK)

    async with asyncio.timeout(RUN_SECONDS + 30):
        await asyncio.gather(canary(), ticker(), *(attacker() for _ in range(4)))
    print(
        f"canary {tally.canary_ok} ok, {len(tally.canary_failed)} failed; worst lag {tally.worst_lag:.3f}s"
    )
    return tally


CASES = ["slow-dns", "punycode-body", "one-byte-chunks"]


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_canary_is_unharmed_by_a_hostile_target(case: str) -> None:
    """The canary keeps ≥ 90 % success and the loop stays responsive beside each hostile case."""
    names = {"canary.test": Name(("127.0.0.1",), ttl=0), "never.test": Name(delay=None)}
    with (
        DnsServer(names) as dns,
        RawServer(helpers.fixed(response(200, b"ok"))) as healthy,
        RawServer(helpers.fixed(PUNYCODE)) as punycode,
        RawServer(one_byte_chunks) as chunks,
    ):
        client = HttpClient(nameservers=[dns.nameserver])
        hostile: Callable[[], Awaitable[None]]
        if case == "slow-dns":
            hostile = lambda: _hostile_send(client, f"http://never.test:{healthy.port}/")  # noqa: E731
        elif case == "punycode-body":
            hostile = lambda: _hostile_text(client, punycode.url())  # noqa: E731
        else:
            hostile = lambda: _hostile_send(client, chunks.url())  # noqa: E731
        canary_url = f"http://canary.test:{healthy.port}/"
        try:
            tally = eventloop.run(_exercise(client, canary_url, hostile))
        finally:
            client.resolver.close()
    runs = tally.canary_ok + len(tally.canary_failed)
    assert tally.hostile_runs > 0
    # On schedule: a healthy loop runs it about RUN_SECONDS / CANARY_EVERY = 60 times.
    assert runs >= MIN_RUNS, tally
    assert tally.canary_ok / runs >= MIN_SUCCESS, tally.canary_failed[:3]
    assert tally.worst_lag < MAX_LAG
