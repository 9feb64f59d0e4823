"""The lean path: plain HTTP/1.1 (and HTTPS) straight to the target, on `_wire` (h11's
framing with a fast path for the plainest responses) over `_streams`' asyncio streams.

It is the path every probe takes unless it needs a proxy, HTTP/2 or a client certificate
(`_client` decides): httpcore's connection objects, locks, trace callbacks and nested
timeouts are measurable CPU per request, and a probe needs none of them
(bench/step_overhead.py). Names resolve on `_resolver`, addresses are ordered and raced by
`_eyeballs`, and each phase is stamped as it happens:

    resolve     our lookup (none for an IP literal)
    connect     TCP connect (the Happy Eyeballs race, when there are several addresses)
    tls         TLS handshake
    processing  request written → response head parsed
    transfer    response head parsed → body complete

A reused connection reports zero resolve/connect/tls. Nothing here has a timeout of its
own: the caller's budget bounds the whole exchange.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from prober.http._eyeballs import IpProtocol, connect_first, order_addresses
from prober.http._failures import classify, drop_tracebacks, size_words
from prober.http._messages import HttpFailure, HttpResponse
from prober.http._resolver import Resolver
from prober.http._streams import Stream, open_stream
from prober.http._target import Call, Target, is_ip_literal
from prober.http._tls import earliest_expiry
from prober.http._wire import BodyTooLarge, Exchange, Http11Connection
from prober.results import Failure, Phases

__all__ = ["LeanPath"]


class _Timeline:
    """Where one request is, and the connection phases it has timed so far."""

    __slots__ = ("connect", "phase", "resolve", "start", "tls")

    def __init__(self) -> None:
        self.phase = "resolve"  # resolve, connect, tls, processing, transfer
        self.start: float | None = None
        self.resolve = 0.0
        self.connect = 0.0
        self.tls = 0.0

    def phases(self, exchange: Exchange) -> Phases:
        headers_end, body_end = exchange.headers_end, exchange.body_end
        return Phases(
            resolve=self.resolve,
            connect=self.connect,
            tls=self.tls,
            processing=headers_end - exchange.sent_start if headers_end else 0.0,
            transfer=body_end - headers_end if body_end else 0.0,
        )


class LeanPath:
    """One session's HTTP/1.1 connections: one per origin, used by one step at a time."""

    def __init__(
        self,
        *,
        resolver: Resolver,
        ssl_context: Callable[[], ssl.SSLContext],
        keep_alive: bool,
        ip_protocol: IpProtocol = "auto",
        ip_fallback: bool = True,
        server_name: str | None = None,
    ) -> None:
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._keep_alive = keep_alive
        self._ip_protocol: IpProtocol = ip_protocol
        self._ip_fallback = ip_fallback
        self._server_name = server_name
        self._connections: dict[tuple[str, str, int], Http11Connection] = {}

    async def aclose(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()

    async def exchange(self, call: Call, budget: float) -> HttpResponse | HttpFailure:
        target = call.target
        timeline = _Timeline()
        exchange = Exchange()
        connection = self._connections.pop(target.origin, None)
        if connection is not None and not connection.reusable:
            connection.close()
            connection = None
        done = False
        try:
            async with asyncio.timeout(budget):
                if connection is None:
                    connection = await self._connect(target, timeline)
                timeline.phase = "processing"
                await connection.exchange(
                    call.method,
                    target.raw_path,
                    call.headers,
                    call.body,
                    call.max_body_size,
                    exchange,
                )
            done = True
        except BodyTooLarge:
            failure = Failure(
                "other",
                f"response body larger than max_body_size ({size_words(call.max_body_size)})",
            )
            return self._failed(failure, timeline, exchange)
        except Exception as error:
            phase = timeline.phase
            if phase == "processing" and exchange.headers_end:
                phase = "transfer"
            failure = classify(error, phase, target.authority, call.timeout)
            drop_tracebacks(error)
            return self._failed(failure, timeline, exchange)
        finally:
            if connection is not None:
                if done and self._keep_alive and connection.reusable:
                    self._connections[target.origin] = connection
                else:
                    connection.close()
        assert connection is not None
        ssl_object = connection.stream.ssl_object if target.scheme == "https" else None
        start = timeline.start if timeline.start is not None else exchange.sent_start
        return HttpResponse(
            status_code=exchange.status,
            headers=[
                (key.decode("latin-1"), value.decode("latin-1")) for key, value in exchange.headers
            ],
            body=exchange.body,
            phases=timeline.phases(exchange),
            duration=exchange.body_end - start,
            url=target.url,
            cert_expiry=earliest_expiry(ssl_object),
        )

    async def _connect(self, target: Target, timeline: _Timeline) -> Http11Connection:
        """A new connection to the target's origin: resolve, connect, TLS — each timed."""
        started = timeline.start = time.perf_counter()
        if is_ip_literal(target.host):
            addresses, connecting = [target.host], started
        else:
            addresses = await self._resolver.resolve(target.host)
            connecting = time.perf_counter()
            timeline.resolve = connecting - started
        ordered = order_addresses(addresses, self._ip_protocol, fallback=self._ip_fallback)
        timeline.phase = "connect"
        stream = await connect_first(
            ordered, lambda address: open_stream(address, target.port), close=Stream.close
        )
        handshaking = time.perf_counter()
        timeline.connect = handshaking - connecting
        if target.scheme == "https":
            timeline.phase = "tls"
            context = self._ssl_context()
            await stream.start_tls(context, self._server_name or target.host)
            timeline.tls = time.perf_counter() - handshaking
        return Http11Connection(stream)

    def _failed(self, failure: Failure, timeline: _Timeline, exchange: Exchange) -> HttpFailure:
        now = time.perf_counter()
        start = timeline.start if timeline.start is not None else exchange.sent_start
        return HttpFailure(failure, timeline.phases(exchange), now - start if start else 0.0)
