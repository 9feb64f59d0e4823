"""The HTTP layer: the only module that imports httpx (and, with `prober.transport`, httpcore).

One `HttpClient` per process holds the shared `ssl.SSLContext` (building one parses the
whole CA bundle: ~20 ms of CPU, so never per request; built on the first https request).
Each journey run opens an `HttpSession`: its own connections (one httpcore connection per
origin), so every run pays a fresh connection the way a user's first request does; its
steps reuse that connection when keep-alive is on.

Request URLs are parsed with `httpx.URL` (cached per URL: a journey's URLs repeat every
run), bodies encoded as httpx encodes them, and requests sent straight through httpcore
connections, skipping httpx's client layer and httpcore's pool: the prober needs neither
cookies, auth flows, content decoding nor pooling, and each of those layers is measurable
CPU per request. No `Accept-Encoding` is sent, so bodies arrive as they are
and the body cap counts real bytes.

Timings come from httpcore's `trace` extension, not from around the call, so the
client's own overhead is not blamed on the target:

    resolve     our getaddrinfo, inside connect_tcp (httpcore does not separate it)
    connect     connect_tcp, minus resolve
    tls         start_tls
    processing  request headers sent → response headers received
    transfer    response headers received → body complete

A reused connection reports zero resolve/connect/tls. A step's duration runs from the
start of its first phase to the end of the body. A response that cannot have a body (to a
HEAD request; 1xx, 204, 304) is never refused by the body cap, whatever its
Content-Length announces.

A failing target never raises out of here: `HttpSession.send` returns an `HttpFailure`
with one reason of `prober.results.REASONS`. httpcore's exceptions are translated at
exactly one boundary (`_classify`), refined by the phase in which they happened; a test
checks that every httpcore exception type is mapped. A timeout while resolving is a
`dns` failure; any other timeout is `timeout`. An unparsable redirect `Location` is an
`other` failure. URLs in failure messages have secrets masked however they are encoded.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import certifi
import httpcore
import httpx

from prober.redaction import redact
from prober.results import Failure, Phases
from prober.transport import AsyncioBackend

__all__ = [
    "EXCEPTION_REASONS",
    "HttpClient",
    "HttpFailure",
    "HttpRequest",
    "HttpResponse",
    "HttpSession",
]

MAX_REDIRECTS = 10
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: httpcore exception → failure reason, before refinement by phase.
EXCEPTION_REASONS: Mapping[type[Exception], str] = {
    httpcore.ConnectTimeout: "timeout",
    httpcore.ReadTimeout: "timeout",
    httpcore.WriteTimeout: "timeout",
    httpcore.PoolTimeout: "timeout",
    httpcore.TimeoutException: "timeout",
    httpcore.ConnectError: "connect",
    httpcore.ReadError: "other",
    httpcore.WriteError: "other",
    httpcore.NetworkError: "other",
    httpcore.RemoteProtocolError: "other",
    httpcore.LocalProtocolError: "other",
    httpcore.ProtocolError: "other",
    httpcore.UnsupportedProtocol: "other",
    httpcore.ProxyError: "connect",
    httpcore.ConnectionNotAvailable: "other",
}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str  # absolute
    headers: tuple[tuple[str, str], ...] = ()
    params: Mapping[str, str] | None = None
    json_body: Any = None
    content: bytes | None = None
    timeout: float = 10.0
    follow_redirects: bool = False
    max_body_size: int = 1024 * 1024


class HttpResponse:
    """A received response, with its body read (up to the cap) and its phase timings."""

    __slots__ = (
        "_json",
        "_text",
        "body",
        "cert_expiry",
        "duration",
        "headers",
        "phases",
        "status_code",
        "url",
    )

    def __init__(
        self,
        status_code: int,
        headers: list[tuple[str, str]],
        body: bytes,
        phases: Phases,
        duration: float,
        url: str,
        cert_expiry: float | None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.phases = phases
        self.duration = duration
        self.url = url
        self.cert_expiry = cert_expiry
        self._text: str | None = None
        self._json: Any = _UNSET

    @property
    def latency(self) -> float:
        return self.duration

    def header(self, name: str) -> str | None:
        name = name.lower()
        values = [value for key, value in self.headers if key.lower() == name]
        return ", ".join(values) if values else None

    def text(self) -> str:
        if self._text is None:
            charset = _charset(self.header("content-type") or "") or "utf-8"
            try:
                self._text = self.body.decode(charset, errors="replace")
            except LookupError:
                self._text = self.body.decode("utf-8", errors="replace")
        return self._text

    def json(self) -> Any:
        if self._json is _UNSET:
            try:
                self._json = json.loads(self.body)
            except (ValueError, UnicodeDecodeError, RecursionError) as error:
                # RecursionError: nested deeper than the parser goes, e.g. `[[[[...`.
                self._json = _InvalidJson(str(error))
        if isinstance(self._json, _InvalidJson):
            raise ValueError(f"body is not valid JSON: {self._json.why}")
        return self._json


_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


def _charset(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type, lower-cased (as email.message gives it)."""
    match = _CHARSET.search(content_type)
    return match.group(1).lower() if match else None


class _InvalidJson:
    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """The request did not produce a response: why, and how far it got."""

    failure: Failure
    phases: Phases
    duration: float


class HttpClient:
    """Process-wide: the shared TLS context; makes one `HttpSession` per journey run.

    The TLS context is built on first use (parsing the CA bundle costs ~20 ms, which a
    `run-once` against plain-HTTP targets need not pay)."""

    def __init__(self, *, verify: bool = True, ca_file: str | None = None) -> None:
        self.verify = verify
        self.ca_file = ca_file

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        if self.verify:
            return ssl.create_default_context(cafile=self.ca_file or certifi.where())
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def session(self, *, keep_alive: bool = True) -> HttpSession:
        return HttpSession(self, keep_alive=keep_alive)


class _DnsFailure(Exception):
    """getaddrinfo failed; raised through httpcore from our network backend."""


class _ResolvingBackend(httpcore.AsyncNetworkBackend):
    """Resolves names itself so that the resolve phase is timed and DNS failures are
    told apart from refused connections; then connects to the addresses in order."""

    def __init__(self) -> None:
        self._inner = AsyncioBackend()
        self.resolve_seconds = 0.0
        self.resolving = False

    def begin_request(self) -> None:
        """Forget the previous request's resolve: a request on a reused connection
        resolves nothing, so it must report resolve == 0, and a request only fails
        "while resolving" if it resolved."""
        self.resolve_seconds = 0.0
        self.resolving = False

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
        assert last_error is not None
        raise last_error

    async def _resolve(self, host: str, port: int) -> list[str]:
        self.resolve_seconds = 0.0
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            pass
        else:
            return [host.strip("[]")]
        started = time.perf_counter()
        self.resolving = True
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as error:
            raise _DnsFailure(f"cannot resolve {host!r}: {error.strerror or error}") from None
        finally:
            self.resolve_seconds = time.perf_counter() - started
        # Cleared only once resolved: a timeout cancels getaddrinfo and unwinds through
        # here before `_classify` runs, which must still see that we were resolving.
        self.resolving = False
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise _DnsFailure(f"cannot resolve {host!r}: no addresses")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream: httpcore.AsyncNetworkStream = await self._inner.connect_unix_socket(
            path, timeout, socket_options
        )
        return stream

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Timeline:
    """Collects httpcore trace events for one request into phase timings."""

    __slots__ = ("marks", "phase")

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.phase = "pool"  # where the request is now: pool, connect, tls, processing, transfer

    async def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        now = time.perf_counter()
        self.marks[event] = now
        if event.endswith(".started"):
            self.phase = _PHASE_OF_EVENT.get(event, self.phase)

    def span(self, started: str, completed: str) -> float:
        begin, end = self.marks.get(started), self.marks.get(completed)
        return end - begin if begin is not None and end is not None else 0.0

    def start(self) -> float | None:
        for event in ("connection.connect_tcp.started", "http11.send_request_headers.started"):
            if event in self.marks:
                return self.marks[event]
        return None

    def phases(self, resolve: float, body_end: float | None) -> Phases:
        headers_done = self.marks.get("http11.receive_response_headers.complete")
        return Phases(
            resolve=resolve,
            connect=max(
                0.0,
                self.span("connection.connect_tcp.started", "connection.connect_tcp.complete")
                - resolve,
            ),
            tls=self.span("connection.start_tls.started", "connection.start_tls.complete"),
            processing=self.span(
                "http11.send_request_headers.started", "http11.receive_response_headers.complete"
            ),
            transfer=(body_end - headers_done)
            if body_end is not None and headers_done is not None
            else 0.0,
        )


_PHASE_OF_EVENT = {
    "connection.connect_tcp.started": "connect",
    "connection.start_tls.started": "tls",
    "http11.send_request_headers.started": "processing",
    "http11.receive_response_body.started": "transfer",
}


class _UncontendedLock:
    """Stands in for httpcore's per-connection request lock (an anyio lock: ~8% of the CPU
    per probe under load): a session's connection is only ever used by the one task that
    runs the journey, one request at a time, so there is nothing to wait for."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _Connection(httpcore.AsyncHTTPConnection):
    """httpcore's connection, minus the request lock (tests pin the attribute's name)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._request_lock = _UncontendedLock()  # type: ignore[assignment]


class HttpSession:
    """One journey run's connections. Use as `async with client.session() as session`."""

    def __init__(self, client: HttpClient, *, keep_alive: bool) -> None:
        self._backend = _ResolvingBackend()
        self._client = client
        self._keep_alive = keep_alive
        # One connection per origin, used by one step at a time: httpcore's connection pool
        # (its locks, events and cancellation shields) costs CPU a probe does not need.
        self._connections: dict[tuple[bytes, bytes, int], _Connection] = {}

    async def __aenter__(self) -> HttpSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            await connection.aclose()

    async def _connection(self, origin: httpcore.Origin) -> _Connection:
        """The origin's kept-alive connection if it is still usable, else a new one."""
        key = (origin.scheme, origin.host, origin.port)
        connection = self._connections.pop(key, None)
        if connection is not None:
            if connection.is_idle() and not connection.has_expired():
                self._connections[key] = connection
                return connection
            await connection.aclose()
        connection = _Connection(
            origin=origin,
            ssl_context=self._client.ssl_context if origin.scheme == b"https" else None,
            http1=True,
            http2=False,
            retries=0,
            network_backend=self._backend,
        )
        self._connections[key] = connection
        return connection

    async def _release(
        self, origin: httpcore.Origin, connection: httpcore.AsyncHTTPConnection, *, reusable: bool
    ) -> None:
        if reusable and self._keep_alive and connection.is_idle():
            return
        key = (origin.scheme, origin.host, origin.port)
        if self._connections.get(key) is connection:
            del self._connections[key]
        await connection.aclose()

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
                request,
                method,
                url,
                params,
                headers,
                json_body,
                content,
                deadline - time.monotonic(),
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
                return outcome
            try:
                url = str(httpx.URL(url).join(location))
            except (httpx.InvalidURL, ValueError, TypeError) as error:
                # The Location comes from the target: a bad one is its fault, not ours.
                failure = Failure(
                    "other",
                    f"redirect to an invalid Location {_redact_url(location)!r}:"
                    f" {redact(str(error))}",
                )
                return HttpFailure(failure, phases, duration)
            params = None
            if _origin(url) != _origin(request.url):
                # Like browsers and httpx: credentials never follow a redirect to another origin.
                headers = tuple(
                    (name, value) for name, value in headers if name.lower() not in _CREDENTIALS
                )
            if outcome.status_code == 303 or (
                outcome.status_code in (301, 302) and method == "POST"
            ):
                method, json_body, content = "GET", None, None
        failure = Failure(
            "other", f"more than {MAX_REDIRECTS} redirects (last: {_redact_url(url)})"
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
        budget: float,
    ) -> HttpResponse | HttpFailure:
        timeline = _Timeline()
        body_end: float | None = None
        self._backend.begin_request()
        try:
            target = _target(url, tuple(params.items()) if params else ())
            request_headers, body = _encode(target, headers, json_body, content)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as error:
            return HttpFailure(Failure("other", redact(f"invalid request: {error}")), Phases(), 0.0)
        if budget <= 0:
            return HttpFailure(
                Failure("timeout", f"timed out after {request.timeout:g}s"), Phases(), 0.0
            )
        core_request = httpcore.Request(
            method=method.encode("ascii"),
            url=target.core_url,
            headers=request_headers,
            content=body,
            extensions={
                "timeout": {"connect": budget, "read": budget, "write": budget, "pool": budget},
                "trace": timeline,
            },
        )
        cap = request.max_body_size
        origin = target.core_url.origin
        connection = await self._connection(origin)
        try:
            async with asyncio.timeout(budget):
                response = await connection.handle_async_request(core_request)
                try:
                    length = _content_length(response.headers)
                    if length is not None and length > cap and _has_body(method, response.status):
                        return self._too_large(cap, timeline)
                    chunks: list[bytes] = []
                    received = 0
                    async for chunk in response.aiter_stream():
                        received += len(chunk)
                        if received > cap:
                            return self._too_large(cap, timeline)
                        chunks.append(chunk)
                    body_end = time.perf_counter()
                finally:
                    await response.aclose()
        except Exception as error:
            await self._release(origin, connection, reusable=False)
            failure = self._classify(error, timeline, request.timeout)
            return HttpFailure(
                failure,
                timeline.phases(self._backend.resolve_seconds, None),
                _elapsed(timeline, time.perf_counter()),
            )
        await self._release(origin, connection, reusable=body_end is not None)
        response_headers = [
            (key.decode("latin-1"), value.decode("latin-1")) for key, value in response.headers
        ]
        return HttpResponse(
            status_code=response.status,
            headers=response_headers,
            body=b"".join(chunks),
            phases=timeline.phases(self._backend.resolve_seconds, body_end),
            duration=_elapsed(timeline, body_end),
            url=target.url,
            cert_expiry=_cert_expiry(response.extensions.get("network_stream")),
        )

    def _too_large(self, cap: int, timeline: _Timeline) -> HttpFailure:
        failure = Failure("other", f"response body larger than max_body_size ({_size(cap)})")
        return HttpFailure(
            failure,
            timeline.phases(self._backend.resolve_seconds, None),
            _elapsed(timeline, time.perf_counter()),
        )

    def _classify(self, error: Exception, timeline: _Timeline, timeout: float) -> Failure:
        """The one place where an exception from the HTTP stack becomes a failure reason."""
        phase = "resolve" if self._backend.resolving else timeline.phase
        if isinstance(error, _DnsFailure) or (
            phase == "resolve" and isinstance(error, TimeoutError)
        ):
            return Failure(
                "dns", redact(str(error) or f"DNS resolution timed out after {timeout:g}s")
            )
        if isinstance(error, TimeoutError | httpcore.TimeoutException):
            return Failure(
                "timeout", f"timed out after {timeout:g}s (during {_PHASE_WORDS[phase]})"
            )
        reason = next(
            (reason for kind, reason in EXCEPTION_REASONS.items() if isinstance(error, kind)),
            "other",
        )
        if phase == "tls" or _caused_by(error, ssl.SSLError):
            reason = "tls"
        detail = _describe(error)
        return Failure(reason, redact(f"{_PHASE_WORDS[phase]}: {detail}"))


@dataclass(frozen=True, slots=True)
class _Target:
    """A parsed request URL, ready for httpcore."""

    url: str
    core_url: httpcore.URL
    host_header: bytes
    scheme: str


@functools.lru_cache(maxsize=4096)
def _target(url: str, params: tuple[tuple[str, str], ...]) -> _Target:
    """Parse (and cache) a URL: a journey's URLs repeat every run, and parsing them with
    httpx.URL is a visible share of the CPU per request."""
    parsed = httpx.URL(url)
    if params:
        parsed = parsed.copy_merge_params(dict(params))
    if parsed.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {parsed.scheme!r} in {url!r}")
    if not parsed.host:
        raise httpx.InvalidURL(f"no host in URL {url!r}")
    default_port = 443 if parsed.scheme == "https" else 80
    host = parsed.raw_host
    if b":" in host:  # an IPv6 literal goes in brackets in the Host header
        host = b"[" + host + b"]"
    port = parsed.port
    host_header = host if port in (None, default_port) else host + b":" + str(port).encode()
    core_url = httpcore.URL(
        scheme=parsed.raw_scheme, host=parsed.raw_host, port=port, target=parsed.raw_path
    )
    return _Target(str(parsed), core_url, host_header, parsed.scheme)


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _encode(
    target: _Target, headers: tuple[tuple[str, str], ...], json_body: Any, content: bytes | None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Request headers (Host first, as httpx sends them) and body bytes."""
    raw: list[tuple[bytes, bytes]] = [(b"Host", target.host_header)]
    names = set()
    for name, value in headers:
        raw.append((name.encode("ascii"), value.encode("utf-8")))
        names.add(name.lower())
    if json_body is not None:
        body = json.dumps(
            json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        if "content-type" not in names:
            raw.append((b"Content-Type", b"application/json"))
    else:
        body = content or b""
    if body or json_body is not None:
        raw.append((b"Content-Length", str(len(body)).encode("ascii")))
    return raw, body


_PHASE_WORDS = {
    "pool": "connecting",
    "resolve": "resolving",
    "connect": "connecting",
    "tls": "TLS handshake",
    "processing": "waiting for the response",
    "transfer": "reading the body",
}


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _describe(error: BaseException) -> str:
    """The innermost useful message: httpcore wraps OS and SSL errors."""
    messages: list[str] = []
    current: BaseException | None = error
    while current is not None and len(messages) < 4:
        text = str(current).strip()
        if text and text not in messages:
            messages.append(text)
        current = current.__cause__ or current.__context__
    if not messages:
        return type(error).__name__
    return messages[-1] if len(messages[-1]) > 8 else messages[0]


def _redact_url(url: str) -> str:
    """`url` for a failure message, with secrets masked however the URL encodes them.

    httpx normalises escapes its own way (`p@ss w` becomes `p@ss%20w`, which is none of
    the encodings `redact` knows) and a target's Location may use any other, so secrets
    are masked in the URL as written, then again with its escapes decoded.
    """
    return redact(unquote(redact(url)))


def _has_body(method: str, status: int) -> bool:
    """Whether a response carries a body (RFC 9110 §6.4.1): not to HEAD, not 1xx/204/304.

    Their Content-Length describes a body that is never sent, so the cap must not apply.
    """
    return method.upper() != "HEAD" and not (100 <= status < 200 or status in (204, 304))


def _elapsed(timeline: _Timeline, end: float | None) -> float:
    start = timeline.start()
    if start is None or end is None:
        return 0.0
    return end - start


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _cert_expiry(stream: Any) -> float | None:
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    certificate = ssl_object.getpeercert()
    not_after = certificate.get("notAfter") if certificate else None
    return float(ssl.cert_time_to_seconds(not_after)) if not_after else None


def _size(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    if size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} bytes"
