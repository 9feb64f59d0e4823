"""Name resolution for probes: c-ares (pycares), so one slow name cannot stall another.

Why not `loop.getaddrinfo`: it runs the system's blocking `getaddrinfo` on the loop's
default executor, a handful of threads. A lookup the prober has given up on (its step timed
out) still holds its thread until the system resolver gives up too, so a few journeys on a
name whose nameserver never answers starve every other journey's lookups: a healthy name
then fails with "DNS resolution timed out" although its nameserver answers at once. c-ares
runs every query on non-blocking sockets (one event thread per channel, no thread per
lookup), so an abandoned query costs a socket and a timer, never a place in a queue.

What users expect of the system resolver still holds, because c-ares reads the same files:
`/etc/hosts` first (the `hosts:` order of `/etc/nsswitch.conf`, `files` and `dns` only),
then the nameservers, `search` domains, `ndots`, `timeout` and `attempts` of
`/etc/resolv.conf` — what a Kubernetes pod's `ndots:5` and cluster search domains need.
`resolver.nameservers` in the config replaces only the nameservers (`host` or `host:port`,
IPv6 as `[addr]:port`); hosts file, search domains and ndots stay the system's. Not honoured:
NSS modules other than files and dns (mdns, myhostname, LDAP, systemd-resolved's
`resolve` module — on such hosts point `resolver.nameservers` at 127.0.0.53).

Per host, at most one query is in flight: concurrent lookups of one name (many journeys on
one API, or a run that starts while an abandoned lookup of its host is still out) wait on
the same query (single-flight), and a waiter that gives up leaves the query to the others.
Answers are cached by c-ares for their TTL (its query cache); hosts-file answers are read
afresh each time. Failures are not cached: a name that stops failing is seen at once.

`Resolver.resolve` raises `ResolutionError` with c-ares's words ("Domain name not found",
"Timeout while contacting DNS servers"); `prober.http` turns it into reason `dns`, and
times the await as the `resolve` phase (a cache hit is a near-zero lookup, as it is for
the application whose DNS cache the probe shares).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import socket
import threading
import weakref
from collections.abc import Sequence

import pycares

__all__ = ["ResolutionError", "Resolver", "check_nameserver"]


class ResolutionError(Exception):
    """The name did not resolve (not found, no addresses, or no nameserver answered)."""


class Resolver:
    """Resolves names on one c-ares channel, one query per name (and event loop) at a time."""

    def __init__(self, nameservers: Sequence[str] = ()) -> None:
        self.nameservers = tuple(nameservers)
        self._channel: pycares.Channel | None = None
        self._lock = threading.Lock()
        # Futures belong to one loop; a process normally has one, but tests and `run-once`
        # may run several one after another.
        self._inflight: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Future[list[str]]]
        ] = weakref.WeakKeyDictionary()

    def _ready_channel(self) -> pycares.Channel:
        with self._lock:  # the first lookups of two loops must not make two channels
            if self._channel is None:
                try:
                    # No socket callback: c-ares runs its own event thread for every query.
                    channel = pycares.Channel()
                    if self.nameservers:
                        channel.servers = list(self.nameservers)
                except pycares.AresError as error:
                    raise ResolutionError(f"cannot start the resolver: {error}") from None
                self._channel = channel
            return self._channel

    async def resolve(self, host: str) -> list[str]:
        """The host's addresses (strings) in c-ares's order (RFC 6724), each once."""
        loop = asyncio.get_running_loop()
        inflight = self._inflight.setdefault(loop, {})
        query = inflight.get(host)
        if query is None:
            query = inflight[host] = loop.create_future()
            query.add_done_callback(lambda done: _settled(inflight, host, done))
            try:
                self._ready_channel().getaddrinfo(
                    host,
                    None,
                    type=socket.SOCK_STREAM,
                    callback=functools.partial(_deliver, loop, query, host),
                )
            except (pycares.AresError, ResolutionError, UnicodeError) as error:
                if not query.done():
                    query.set_exception(ResolutionError(f"cannot resolve {host!r}: {error}"))
        # A waiter that times out leaves the query to the other waiters.
        return await asyncio.shield(query)

    def close(self) -> None:
        """Cancel what is in flight and stop the channel's thread (tests; shutdown)."""
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()


def _deliver(
    loop: asyncio.AbstractEventLoop,
    query: asyncio.Future[list[str]],
    host: str,
    result: pycares.AddrInfoResult | None,
    errno: int | None,
) -> None:
    """c-ares's callback, on its event thread: hand the answer to the query's loop. It must
    not raise (an exception in a C callback is only printed)."""
    if errno is not None:
        words = _text(pycares.errno.strerror(errno))
        outcome: list[str] | ResolutionError = ResolutionError(f"cannot resolve {host!r}: {words}")
    else:
        nodes = result.nodes if result is not None else []
        addresses = list(dict.fromkeys(_text(node.addr[0]) for node in nodes))
        outcome = addresses or ResolutionError(f"cannot resolve {host!r}: no addresses")
    # A closed loop: nobody waits for this answer any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, query, outcome)


def _settle(query: asyncio.Future[list[str]], outcome: list[str] | ResolutionError) -> None:
    if query.done():
        return
    if isinstance(outcome, ResolutionError):
        query.set_exception(outcome)
    else:
        query.set_result(outcome)


def _settled(
    inflight: dict[str, asyncio.Future[list[str]]], host: str, task: asyncio.Future[list[str]]
) -> None:
    """A query is done: the next lookup starts a fresh one; its error is read here, so a
    query whose waiters all gave up is not reported as an exception never retrieved."""
    if inflight.get(host) is task:
        del inflight[host]
    if not task.cancelled():
        task.exception()


def _text(raw: bytes | str) -> str:
    return raw.decode("ascii") if isinstance(raw, bytes) else raw


_BRACKETED = re.compile(r"\[([^\]]+)\](?::(\d+))?")
_WITH_PORT = re.compile(r"([^:]+):(\d+)")


def check_nameserver(value: str) -> str:
    """`value` if it is a nameserver c-ares takes (`ip`, `ip:port`, `[ipv6]:port`), else a
    ValueError saying what is wrong (config validation)."""
    address, port = value, None
    if (match := _BRACKETED.fullmatch(value)) or (match := _WITH_PORT.fullmatch(value)):
        address, port = match.group(1), match.group(2)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            f"nameserver must be an IP address with an optional port"
            f" (10.0.0.2, 10.0.0.2:5353, [fd00::2]:53), got {value!r}"
        ) from None
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError(f"nameserver port must be 1-65535, got {value!r}")
    return value
