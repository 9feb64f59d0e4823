"""The full-featured HTTP path: httpcore (with `h2`) for what the lean HTTP/1.1 path does
not speak — forward proxies (CONNECT for https), HTTP/2 by ALPN, client certificates —
and for alert delivery, which always goes this way.

httpcore does the protocols: the proxy handshake, HTTP/1.1 and HTTP/2 framing, ALPN. What
it does not do the prober's way is supplied through its two seams:

- **the network backend** (`_Backend`): names resolve on `_resolver` (c-ares, so a
  slow name cannot starve another), addresses are ordered by `ip_protocol` and raced with
  Happy Eyeballs (`_eyeballs`), and the resolve and connect phases are stamped there.
  Through a proxy, the name looked up and connected to is the proxy's; the target's name
  is the proxy's to resolve.
- **the trace extension**: the TLS handshake (direct or inside the tunnel), the request
  written, the response head received — each stamped as it happens, so the phases mean what
  they mean on the lean path: `processing` from the request's first byte to the response
  head, `transfer` from there to the end of the body. Through a proxy, `connect` also holds
  the CONNECT exchange (the tunnel is part of getting a connection).

Each `FullSession` (one journey run, or one notification) has its own connection pool, so
every run pays a fresh connection as on the lean path. The body is read in chunks up to
the cap and no further (`BodyTooLarge`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore

from prober.http._eyeballs import IpProtocol, connect_first, order_addresses
from prober.http._failures import classify, drop_tracebacks, size_words
from prober.http._messages import HttpFailure, HttpResponse
from prober.http._proxies import ProxyRoute
from prober.http._resolver import Resolver
from prober.http._target import Call, is_ip_literal
from prober.http._tls import earliest_expiry
from prober.results import Failure, Phases

__all__ = ["FullPath", "FullSession"]


class BodyTooLarge(Exception):
    """The response body went past the cap."""


class TracedPhases:
    """The moments one request passed, stamped by the backend and httpcore's trace.

    `tunnel`: the request goes through a proxy's CONNECT, whose request and response are
    part of getting the connection, not the probe's exchange."""

    __slots__ = (
        "body_end",
        "connect",
        "connected_at",
        "headers_end",
        "phase",
        "resolve",
        "sent_start",
        "start",
        "tls",
        "tls_started",
        "tunnel",
    )

    def __init__(self, *, tunnel: bool = False) -> None:
        self.tunnel = tunnel
        self.phase = "resolve"  # resolve, connect, tls, processing, transfer
        self.start: float | None = None
        self.resolve = 0.0
        self.connect = 0.0
        self.connected_at = 0.0
        self.tls = 0.0
        self.tls_started = 0.0
        self.sent_start = 0.0
        self.headers_end = 0.0
        self.body_end = 0.0

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback."""
        now = time.perf_counter()
        if event.endswith("start_tls.started"):
            if event.startswith("proxy") and self.connected_at:
                self.connect += now - self.connected_at  # the CONNECT exchange
            self.phase, self.tls_started = "tls", now
        elif event.endswith("start_tls.complete"):
            self.tls += now - self.tls_started
        elif self.tunnel and self.phase == "connect":
            return  # CONNECT's own request and response
        elif event.endswith(".send_request_headers.started"):
            self.sent_start, self.phase = now, "processing"
        elif event.endswith(".receive_response_headers.complete"):
            self.headers_end, self.phase = now, "transfer"


class _Backend(httpcore.AsyncNetworkBackend):
    """Connections for httpcore: our resolver, the family order, Happy Eyeballs, timed."""

    def __init__(
        self, resolver: Resolver, ip_protocol: IpProtocol, fallback: bool, phases: TracedPhases
    ) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._resolver = resolver
        self._ip_protocol = ip_protocol
        self._fallback = fallback
        self.phases = phases

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        phases = self.phases
        started = time.perf_counter()
        if phases.start is None:
            phases.start = started
        phases.phase = "resolve"
        bare = host.strip("[]")
        addresses = [bare] if is_ip_literal(bare) else await self._resolver.resolve(host)
        ordered = order_addresses(addresses, self._ip_protocol, fallback=self._fallback)
        connecting = time.perf_counter()
        phases.resolve += connecting - started
        phases.phase = "connect"

        async def attempt(address: str) -> httpcore.AsyncNetworkStream:
            return await self._inner.connect_tcp(
                address, port, timeout=timeout, socket_options=socket_options
            )

        stream = await connect_first(ordered, attempt, close=_close_later)
        phases.connected_at = time.perf_counter()
        phases.connect += phases.connected_at - connecting
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_closing: set[Any] = set()


def _close_later(stream: httpcore.AsyncNetworkStream) -> None:
    """A Happy Eyeballs loser that connected: close it without making the winner wait."""
    task = asyncio.ensure_future(stream.aclose())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


@dataclass(frozen=True, slots=True)
class FullExchange:
    """What one request through httpcore produced."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    protocol: str  # "HTTP/1.1" or "HTTP/2"
    ssl_object: ssl.SSLObject | None


class FullSession:
    """One journey run's (or one notification's) connections on the full path."""

    def __init__(
        self,
        *,
        ssl_context: Callable[[], ssl.SSLContext],
        resolver: Resolver,
        proxy: ProxyRoute | None,
        http2: bool,
        ip_protocol: IpProtocol = "auto",
        ip_fallback: bool = True,
        keep_alive: bool = True,
    ) -> None:
        self._ssl_context = ssl_context
        self._resolver = resolver
        self._proxy = proxy
        self._http2 = http2
        self._ip_protocol: IpProtocol = ip_protocol
        self._ip_fallback = ip_fallback
        self._keep_alive = keep_alive
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._backend: _Backend | None = None

    def _pool_for(self, phases: TracedPhases, https: bool) -> httpcore.AsyncConnectionPool:
        if self._pool is None or self._backend is None:
            self._backend = _Backend(self._resolver, self._ip_protocol, self._ip_fallback, phases)
            proxy = None
            if self._proxy is not None:
                auth = (
                    (self._proxy.username, self._proxy.password or "")
                    if self._proxy.username is not None
                    else None
                )
                proxy = httpcore.Proxy(self._proxy.url, auth=auth)
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl_context() if https or self._proxy else None,
                proxy=proxy,
                http1=True,
                http2=self._http2,
                max_keepalive_connections=None if self._keep_alive else 0,
                network_backend=self._backend,
            )
        self._backend.phases = phases
        return self._pool

    async def exchange(
        self,
        method: bytes,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        max_body_size: int,
        phases: TracedPhases,
        *,
        sni_hostname: str | None = None,
    ) -> FullExchange:
        """Send one request and read its response (up to `max_body_size`). Errors are
        httpcore's (or the resolver's); the caller classifies them by `phases.phase`."""
        pool = self._pool_for(phases, url.startswith("https:"))
        extensions: dict[str, Any] = {"trace": phases.trace}
        if sni_hostname:
            extensions["sni_hostname"] = sni_hostname
        async with pool.stream(
            method, url, headers=headers, content=body, extensions=extensions
        ) as response:
            if not phases.headers_end:
                phases.headers_end = time.perf_counter()
            phases.phase = "transfer"
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_stream():
                size += len(chunk)
                if size > max_body_size:
                    raise BodyTooLarge
                chunks.append(chunk)
            phases.body_end = time.perf_counter()
            stream = response.extensions.get("network_stream")
            ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
            version = response.extensions.get("http_version", b"HTTP/1.1")
            return FullExchange(
                status=response.status,
                headers=list(response.headers),
                body=b"".join(chunks),
                protocol="HTTP/2" if version == b"HTTP/2" else version.decode("ascii"),
                ssl_object=ssl_object,
            )

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.aclose()


class FullPath:
    """The full path as the session sees it: a `Call` in, a response or failure out."""

    def __init__(self, session: FullSession, *, tunnel_for_https: bool, server_name: str | None):
        self._session = session
        self._tunnel_for_https = tunnel_for_https
        self._server_name = server_name

    async def aclose(self) -> None:
        await self._session.aclose()

    async def exchange(self, call: Call, budget: float) -> HttpResponse | HttpFailure:
        target = call.target
        phases = TracedPhases(tunnel=self._tunnel_for_https and target.scheme == "https")
        try:
            async with asyncio.timeout(budget):
                result = await self._session.exchange(
                    call.method,
                    target.url,
                    call.headers,
                    call.body,
                    call.max_body_size,
                    phases,
                    sni_hostname=self._server_name,
                )
        except BodyTooLarge:
            failure = Failure(
                "other",
                f"response body larger than max_body_size ({size_words(call.max_body_size)})",
            )
            return self._failed(failure, phases)
        except Exception as error:
            failure = classify(error, phases.phase, target.authority, call.timeout)
            drop_tracebacks(error)
            return self._failed(failure, phases)
        start = phases.start if phases.start is not None else phases.sent_start
        return HttpResponse(
            status_code=result.status,
            headers=[
                (key.decode("latin-1"), value.decode("latin-1")) for key, value in result.headers
            ],
            body=result.body,
            phases=_phases(phases),
            duration=phases.body_end - start,
            url=target.url,
            cert_expiry=earliest_expiry(result.ssl_object) if target.scheme == "https" else None,
            protocol=result.protocol,
        )

    def _failed(self, failure: Failure, phases: TracedPhases) -> HttpFailure:
        start = phases.start if phases.start is not None else phases.sent_start
        now = time.perf_counter()
        return HttpFailure(failure, _phases(phases), now - start if start else 0.0)


def _phases(traced: TracedPhases) -> Phases:
    headers_end, body_end = traced.headers_end, traced.body_end
    return Phases(
        resolve=traced.resolve,
        connect=traced.connect,
        tls=traced.tls,
        processing=headers_end - traced.sent_start if headers_end and traced.sent_start else 0.0,
        transfer=body_end - headers_end if body_end and headers_end else 0.0,
    )
