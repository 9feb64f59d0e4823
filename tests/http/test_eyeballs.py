"""Address order by IP family, and the staggered connection race (RFC 8305)."""

from __future__ import annotations

import asyncio

import pytest

from prober.http._eyeballs import NoAddressOfFamily, connect_first, order_addresses

V4A, V4B, V6A, V6B = "192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"

# A delay no test may wait out: where the race must not wait, a wait shows as a time-out.
FOREVER = 3600.0
DEADLINE = 10.0


@pytest.mark.parametrize(
    ("addresses", "protocol", "fallback", "expected"),
    [
        ([V6A, V6B, V4A, V4B], "auto", True, [V6A, V4A, V6B, V4B]),
        ([V4A, V4B, V6A], "auto", True, [V4A, V6A, V4B]),
        ([V4A, V6A], "ip6", True, [V6A, V4A]),
        ([V4A, V6A], "ip4", True, [V4A, V6A]),
        ([V4A, V4B, V6A], "ip6", False, [V6A]),
        ([V6A, V4A], "ip4", False, [V4A]),
        ([V4A], "ip6", True, [V4A]),
        (["fe80::1%eth0", V4A], "auto", True, ["fe80::1%eth0", V4A]),
    ],
    ids=["auto-v6-first", "auto-v4-first", "ip6-preferred", "ip4-preferred", "ip6-only", "ip4-only", "fallback", "scoped-v6"],
)
def test_order(addresses: list[str], protocol: str, fallback: bool, expected: list[str]) -> None:
    """Families interleave from the resolver's first; a preferred family goes first."""
    assert order_addresses(addresses, protocol, fallback=fallback) == expected  # type: ignore[arg-type]


def test_no_address_of_the_family_is_named() -> None:
    """Without fallback, a name with no address of the family says so."""
    with pytest.raises(NoAddressOfFamily, match=r"no IPv6 address \(ip_protocol: ip6"):
        order_addresses([V4A], "ip6", fallback=False)


class Attempts:
    """Fake connections: each address either connects, fails at once, or never answers."""

    def __init__(self, behaviour: dict[str, str]) -> None:
        self.behaviour = behaviour
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.closed: list[str] = []

    async def connect(self, address: str) -> str:
        self.started.append(address)
        kind = self.behaviour[address]
        if kind == "refused":
            raise ConnectionRefusedError(f"refused: {address}")
        try:
            await asyncio.sleep(FOREVER if kind == "blackhole" else 0)
        except asyncio.CancelledError:
            self.cancelled.append(address)
            raise
        return address


def race(attempts: Attempts, addresses: list[str], delay: float) -> str:
    async def main() -> str:
        async with asyncio.timeout(DEADLINE):
            return await connect_first(
                addresses, attempts.connect, delay=delay, close=attempts.closed.append
            )

    return asyncio.run(main())


def test_refused_first_address_starts_the_next_at_once() -> None:
    """A refused address does not cost the attempt delay."""
    attempts = Attempts({V6A: "refused", V4A: "ok"})
    assert race(attempts, [V6A, V4A], delay=FOREVER) == V4A
    assert attempts.started == [V6A, V4A]


def test_blackholed_first_address_costs_one_delay() -> None:
    """An address that never answers is overtaken after the delay, then cancelled."""
    attempts = Attempts({V6A: "blackhole", V4A: "ok"})
    assert race(attempts, [V6A, V4A], delay=0.01) == V4A
    assert attempts.cancelled == [V6A]


def test_first_answer_wins_without_starting_the_rest() -> None:
    """When the first connects within the delay, no other attempt starts."""
    attempts = Attempts({V6A: "ok", V4A: "ok"})
    assert race(attempts, [V6A, V4A], delay=FOREVER) == V6A
    assert attempts.started == [V6A]


def test_every_address_failing_raises_the_first_error() -> None:
    """All refused: the error is the first address's."""
    attempts = Attempts({V6A: "refused", V4A: "refused", V4B: "refused"})
    with pytest.raises(ConnectionRefusedError, match=V6A):
        race(attempts, [V6A, V4A, V4B], delay=FOREVER)
    assert attempts.started == [V6A, V4A, V4B]


def test_all_blackholed_is_bounded_by_the_caller() -> None:
    """Nothing answers: the caller's timeout ends the race and every attempt is cancelled."""
    attempts = Attempts({V6A: "blackhole", V4A: "blackhole"})

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await connect_first([V6A, V4A], attempts.connect, delay=0.01)

    asyncio.run(main())
    assert sorted(attempts.cancelled) == sorted([V6A, V4A])


def test_a_loser_is_closed_or_cancelled() -> None:
    """Two attempts finishing together: the one not returned is closed or cancelled."""
    attempts = Attempts({V6A: "ok", V4A: "ok"})
    second_started = asyncio.Event()

    async def connect(address: str) -> str:
        if address == V6A:
            await second_started.wait()  # finishes right after the second attempt starts
        else:
            second_started.set()
        return await attempts.connect(address)

    async def main() -> str:
        async with asyncio.timeout(DEADLINE):
            return await connect_first(
                [V6A, V4A], connect, delay=0.001, close=attempts.closed.append
            )

    winner = asyncio.run(main())
    loser = ({V6A, V4A} - {winner}).pop()
    assert attempts.closed + attempts.cancelled == [loser]


def test_one_address_is_a_plain_connect() -> None:
    """A single address is tried once, its error raised as it is."""
    attempts = Attempts({V4A: "refused"})
    with pytest.raises(ConnectionRefusedError):
        race(attempts, [V4A], delay=FOREVER)
