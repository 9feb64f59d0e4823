"""Which addresses a connection tries, in what order, and how: IP family preference and
Happy Eyeballs (RFC 8305), shared by every HTTP path.

`order_addresses` applies `ip_protocol` (blackbox_exporter's `preferred_ip_protocol` and
`ip_protocol_fallback`): `auto` keeps the resolver's order (RFC 6724) and interleaves the
families from there (RFC 8305 §4: one of the first family, one of the other, …); `ip4` or
`ip6` puts that family first, and with `fallback` off keeps only it.

`connect_first` races the attempts: the first address at once, each next one
`ATTEMPT_DELAY` after the previous started (or at once when the previous failed), the
first to connect wins and the others are cancelled (RFC 8305 §5). So a blackholed first
address costs one delay, not the whole step timeout, and a refused one costs nothing.
The caller's timeout bounds the whole race; when every attempt fails, the error raised is
the first address's (the one a person would expect to read about).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

__all__ = ["ATTEMPT_DELAY", "IP_PROTOCOLS", "IpProtocol", "connect_first", "order_addresses"]

#: RFC 8305 §8's recommended Connection Attempt Delay.
ATTEMPT_DELAY = 0.25

IpProtocol = Literal["auto", "ip4", "ip6"]
IP_PROTOCOLS: tuple[IpProtocol, ...] = ("auto", "ip4", "ip6")

T = TypeVar("T")


class NoAddressOfFamily(Exception):
    """The name resolved, but to no address of the family the config insists on."""


def _is_v6(address: str) -> bool:
    return ipaddress.ip_address(address.split("%", 1)[0]).version == 6


def order_addresses(
    addresses: Sequence[str], ip_protocol: IpProtocol = "auto", *, fallback: bool = True
) -> list[str]:
    """The addresses to try, in order; raises `NoAddressOfFamily` when none is left."""
    v6 = [address for address in addresses if _is_v6(address)]
    v4 = [address for address in addresses if not _is_v6(address)]
    if ip_protocol == "auto":
        first, second = (v6, v4) if addresses and _is_v6(addresses[0]) else (v4, v6)
    elif ip_protocol == "ip6":
        first, second = v6, v4 if fallback else []
    else:
        first, second = v4, v6 if fallback else []
    if ip_protocol != "auto":
        ordered = first + second
    else:
        ordered = []
        for index in range(max(len(first), len(second))):
            ordered.extend(family[index] for family in (first, second) if index < len(family))
    if not ordered:
        family = "IPv6" if ip_protocol == "ip6" else "IPv4"
        raise NoAddressOfFamily(f"no {family} address (ip_protocol: {ip_protocol}, no fallback)")
    return ordered


async def connect_first(
    addresses: Sequence[str],
    connect: Callable[[str], Awaitable[T]],
    *,
    delay: float = ATTEMPT_DELAY,
    close: Callable[[T], object] | None = None,
) -> T:
    """The first of `connect(address)` to succeed, attempts staggered by `delay`; a loser
    that connected too is passed to `close`. Raises the first attempt's error when all fail."""
    if not addresses:
        raise ValueError("no addresses to connect to")
    if len(addresses) == 1:
        return await connect(addresses[0])
    attempts: list[asyncio.Future[T]] = []
    pending: set[asyncio.Future[T]] = set()
    winner: asyncio.Future[T] | None = None
    try:
        for index, address in enumerate(addresses):
            attempt: asyncio.Future[T] = asyncio.ensure_future(connect(address))
            attempts.append(attempt)
            pending.add(attempt)
            last = index == len(addresses) - 1
            while pending:
                _, pending = await asyncio.wait(
                    pending, timeout=None if last else delay, return_when=asyncio.FIRST_COMPLETED
                )
                winner = next((one for one in attempts if _connected(one)), None)
                if winner is not None:
                    return winner.result()
                if not last:
                    break  # the delay ran out, or an attempt failed: start the next one now
        error = attempts[0].exception()
        assert error is not None
        raise error
    finally:
        for attempt in attempts:
            if attempt is winner:
                continue
            if not attempt.done():
                attempt.cancel()
                with contextlib.suppress(BaseException):
                    await attempt
            if close is not None and _connected(attempt):
                close(attempt.result())


def _connected(attempt: asyncio.Future[T]) -> bool:
    return attempt.done() and not attempt.cancelled() and attempt.exception() is None
