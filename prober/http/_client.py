"""`HttpClient` and `HttpSession`: what every caller sends through, whatever path carries it.

One `HttpClient` per target (or notifier) holds its `NetworkSettings`, the resolver, and
the TLS contexts (built on first use and rebuilt when a certificate file rotates). Each
journey run opens an `HttpSession`: its own connections, so every run pays a fresh
connection the way a user's first request does; its steps reuse them when keep-alive is on.

The session does, once for every path:
- **which path**: the lean HTTP/1.1 path (`_lean`) unless the request needs what only the
  full path (`_full`, httpcore) speaks — a proxy (the settings' `proxy_url`, else the
  environment's, `_proxies`), HTTP/2, or a client certificate — or the client was made
  for alert delivery (`full_path=True`), which always takes the full path;
- **redirects** (`follow_redirects`): at most `MAX_REDIRECTS`, 303 (and 301/302 after a
  POST) turning into GET; credentials, and any header holding a secret, never follow to
  another origin, and a 307/308 whose body holds a secret is not followed there;
- **content codings**: the body is decoded (`_compression`) with the body cap applying to
  the decoded bytes too.

`MemoryTransport` (in `_memory`) stands in for both paths in unit tests.

A failing target never raises out of here: `HttpSession.send` returns an `HttpFailure`
with one reason of `prober.results.REASONS`, classified at one boundary (`_failures`).
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from prober.http._compression import BadEncoding, DecodedTooLarge, decode_body
from prober.http._eyeballs import IpProtocol
from prober.http._failures import body_holds_secret, holds_secret, redact_url, size_words
from prober.http._full import FullPath, FullSession
from prober.http._lean import LeanPath
from prober.http._messages import HttpFailure, HttpRequest, HttpResponse
from prober.http._proxies import ProxyRoute, proxy_for
from prober.http._resolver import Resolver
from prober.http._target import Call, encode, origin, parse_target
from prober.http._tls import TlsContexts, TlsSettings
from prober.redaction import redact, register_secret
from prober.results import Failure, Phases

__all__ = ["MAX_REDIRECTS", "HttpClient", "HttpSession", "NetworkSettings", "Path"]

MAX_REDIRECTS = 10
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ALPN_H2 = ("h2", "http/1.1")


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """How a target (or a notifier) is reached.

    `proxy_url`: None reads the environment (`HTTPS_PROXY`, `NO_PROXY`, …), "" means no
    proxy at all; `http2`: offer h2 by ALPN on https (cleartext stays HTTP/1.1, as in
    browsers); `server_name`: the name sent in SNI and checked against the certificate."""

    tls: TlsSettings = field(default_factory=TlsSettings)
    server_name: str | None = None
    proxy_url: str | None = None
    http2: bool = False
    ip_protocol: IpProtocol = "auto"
    ip_protocol_fallback: bool = True
    nameservers: tuple[str, ...] = ()


class Path(Protocol):
    """One way of carrying a `Call`: the lean path, the full path, or a test's memory."""

    async def exchange(self, call: Call, budget: float) -> HttpResponse | HttpFailure: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    """What makes a session's paths; `HttpClient` is the real one."""

    def path(self, session: HttpSession, call: Call) -> Path: ...


class HttpClient:
    """One target's (or notifier's) network settings; makes one `HttpSession` per run."""

    def __init__(
        self,
        settings: NetworkSettings | None = None,
        *,
        verify: bool = True,
        ca_file: str | None = None,
        nameservers: tuple[str, ...] | list[str] = (),
        full_path: bool = False,
        environ: Mapping[str, str] | None = None,
        transport: Transport | None = None,
    ) -> None:
        if settings is None:
            settings = NetworkSettings(
                tls=TlsSettings(ca_file=ca_file, insecure_skip_verify=not verify),
                nameservers=tuple(nameservers),
            )
        self.settings = settings
        self.full_path = full_path
        self._environ = os.environ if environ is None else environ
        #: Shared by every session: one query per name in flight, c-ares's cache (TTLs).
        self.resolver = Resolver(settings.nameservers)
        self._contexts = TlsContexts()
        self._routes: dict[tuple[str, str, int], ProxyRoute | None] = {}
        self._transport = transport
        if settings.tls.key_password:
            register_secret(settings.tls.key_password)

    def ssl_context(self, *, http2: bool = False) -> ssl.SSLContext:
        """The TLS context for this client's settings (raises `TlsSetupError`)."""
        return self._contexts.get(self.settings.tls, _ALPN_H2 if http2 else ())

    def session(self, *, keep_alive: bool = True) -> HttpSession:
        return HttpSession(self, keep_alive=keep_alive)

    def route(self, scheme: str, host: str, port: int) -> ProxyRoute | None:
        """The proxy for an origin (cached: the environment is read once per origin)."""
        key = (scheme, host, port)
        if key not in self._routes:
            proxy = proxy_for(scheme, host, port, self.settings.proxy_url, self._environ)
            if proxy is not None and proxy.password:
                register_secret(proxy.password)
            self._routes[key] = proxy
        return self._routes[key]

    def path(self, session: HttpSession, call: Call) -> Path:
        """The path that carries `call` within `session` (made on first use)."""
        if self._transport is not None:
            return self._transport.path(session, call)
        target = call.target
        proxy = self.route(target.scheme, target.host, target.port)
        settings = self.settings
        full = (
            self.full_path
            or proxy is not None
            or (call.http2 and target.scheme == "https")
            or settings.tls.has_client_certificate
        )
        if not full:
            return session.lean(
                lambda: LeanPath(
                    resolver=self.resolver,
                    ssl_context=self.ssl_context,
                    keep_alive=session.keep_alive,
                    ip_protocol=settings.ip_protocol,
                    ip_fallback=settings.ip_protocol_fallback,
                    server_name=settings.server_name,
                )
            )
        http2 = call.http2 and target.scheme == "https"
        return session.full(
            (proxy, http2),
            lambda: FullPath(
                FullSession(
                    ssl_context=lambda: self.ssl_context(http2=http2),
                    resolver=self.resolver,
                    proxy=proxy,
                    http2=http2,
                    ip_protocol=settings.ip_protocol,
                    ip_fallback=settings.ip_protocol_fallback,
                    keep_alive=session.keep_alive,
                ),
                tunnel_for_https=proxy is not None,
                server_name=settings.server_name,
            ),
        )


class HttpSession:
    """One journey run's connections. Use as `async with client.session() as session`."""

    def __init__(self, client: HttpClient, *, keep_alive: bool) -> None:
        self._client = client
        self.keep_alive = keep_alive
        self._lean: Path | None = None
        self._full: dict[object, Path] = {}

    def lean(self, make: Any) -> Path:
        if self._lean is None:
            self._lean = make()
        assert self._lean is not None
        return self._lean

    def full(self, key: object, make: Any) -> Path:
        path = self._full.get(key)
        if path is None:
            path = self._full[key] = make()
        return path

    async def __aenter__(self) -> HttpSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        paths = ([self._lean] if self._lean is not None else []) + list(self._full.values())
        self._lean, self._full = None, {}
        for path in paths:
            await path.aclose()

    async def send(self, request: HttpRequest) -> HttpResponse | HttpFailure:
        """Send a request (following redirects if asked); never raises for target faults."""
        phases = Phases()
        duration = 0.0
        method, url, json_body, content = (
            request.method,
            request.url,
            request.json_body,
            request.content,
        )
        params = request.params
        headers = request.headers
        deadline = time.monotonic() + request.timeout
        for _ in range(MAX_REDIRECTS + 1):
            outcome = await self._send_once(
                request, method, url, params, headers, json_body, content, deadline
            )
            phases += outcome.phases
            duration += outcome.duration
            if isinstance(outcome, HttpFailure):
                return HttpFailure(outcome.failure, phases, duration)
            location = outcome.header("location")
            if not (
                request.follow_redirects and outcome.status_code in _REDIRECT_STATUSES and location
            ):
                outcome.phases, outcome.duration = phases, duration
                return _decoded(outcome, request.max_body_size)
            try:
                url = str(httpx.URL(url).join(location))
            except (httpx.InvalidURL, ValueError, TypeError) as error:
                # The Location comes from the target: a bad one is its fault, not ours.
                failure = Failure(
                    "other",
                    f"redirect to an invalid Location {redact_url(location)!r}:"
                    f" {redact(str(error))}",
                )
                return HttpFailure(failure, phases, duration)
            params = None
            if outcome.status_code == 303 or (
                outcome.status_code in (301, 302) and method == "POST"
            ):
                method, json_body, content = "GET", None, None
            if origin(url) != origin(request.url):
                # Like browsers and httpx, credentials never follow a redirect to another
                # origin; nor does any header that holds a secret (an API key, a token).
                headers = tuple(
                    (name, value)
                    for name, value in headers
                    if name.lower() not in _CREDENTIALS and not holds_secret(value)
                )
                if body_holds_secret(json_body, content):
                    # A 307/308 resends the body as it is: without it the request would be
                    # another one, so the step fails rather than send a secret elsewhere.
                    failure = Failure(
                        "other",
                        f"not following a {outcome.status_code} redirect to another origin"
                        f" ({redact_url(url)}): the request body holds a secret",
                    )
                    return HttpFailure(failure, phases, duration)
        failure = Failure(
            "other", f"more than {MAX_REDIRECTS} redirects (last: {redact_url(url)})"
        )
        return HttpFailure(failure, phases, duration)

    async def _send_once(
        self,
        request: HttpRequest,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: tuple[tuple[str, str], ...],
        json_body: Any,
        content: bytes | None,
        deadline: float,
    ) -> HttpResponse | HttpFailure:
        try:
            target = parse_target(url, tuple(params.items()) if params else ())
            raw_headers, body = encode(
                target, headers, json_body, content, compression=request.compression
            )
            raw_method = method.upper().encode("ascii")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as error:
            return HttpFailure(Failure("other", redact(f"invalid request: {error}")), Phases(), 0.0)
        budget = deadline - time.monotonic()
        if budget <= 0:
            return HttpFailure(
                Failure("timeout", f"timed out after {request.timeout:g}s"), Phases(), 0.0
            )
        http2 = self._client.settings.http2 if request.http2 is None else request.http2
        call = Call(
            target=target,
            method=raw_method,
            headers=raw_headers,
            body=body,
            max_body_size=request.max_body_size,
            timeout=request.timeout,
            http2=http2,
        )
        return await self._client.path(self, call).exchange(call, budget)


def _decoded(response: HttpResponse, cap: int) -> HttpResponse | HttpFailure:
    """`response` with its content codings undone, or the failure that stopped it."""
    coding = response.header("content-encoding")
    if not coding:
        return response
    try:
        response.body = decode_body(response.body, coding, cap)
    except DecodedTooLarge:
        failure = Failure(
            "other",
            f"response body larger than max_body_size ({size_words(cap)}) once decoded"
            f" (Content-Encoding: {coding})",
        )
        return HttpFailure(failure, response.phases, response.duration)
    except BadEncoding as error:
        return HttpFailure(
            Failure("other", f"cannot decode the body: {error}"),
            response.phases,
            response.duration,
        )
    return response
