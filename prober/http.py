"""The HTTP layer: the only module that imports httpx.

One `HttpClient` per process holds the shared `ssl.SSLContext` (building one parses the
whole CA bundle: ~20 ms of CPU, so never per request; built on the first https request).
Each journey run opens an `HttpSession`: its own connections (one per origin), so every
run pays a fresh connection the way a user's first request does; its steps reuse that
connection when keep-alive is on.

Request URLs are parsed with `httpx.URL` (cached per URL: a journey's URLs repeat every
run) and bodies encoded as httpx encodes them; the exchange itself runs on
`prober.http11` (h11 over `prober.transport`'s asyncio streams), not through httpx's
client or httpcore: the prober needs neither cookies, auth flows, content decoding,
pooling nor their locks, and each of those layers is measurable CPU per request
(bench/step_overhead.py). No `Accept-Encoding` is sent, so bodies arrive as they are and
the body cap counts real bytes. Only HTTP/1.1 is spoken, as blackbox_exporter does by
default.

Timings are stamped at the moments they describe, not around the call, so the client's
own overhead is not blamed on the target:

    resolve     our getaddrinfo (none for an IP literal)
    connect     TCP connect
    tls         TLS handshake
    processing  request written → response headers parsed
    transfer    response headers parsed → body complete

A reused connection reports zero resolve/connect/tls. A step's duration runs from the
start of its first phase to the end of the body. A response that cannot have a body (to a
HEAD request; 1xx, 204, 304) is never refused by the body cap, whatever its
Content-Length announces.

A failing target never raises out of here: `HttpSession.send` returns an `HttpFailure`
with one reason of `prober.results.REASONS`. Errors become reasons at exactly one
boundary (`_classify`), by the phase in which they happened (`REASON_OF_PHASE`): a
failure while resolving is `dns`, while connecting `connect`, in the handshake (or any
certificate error) `tls`, after that `other`; running out of time is `timeout` in any
phase but resolving. An unparsable redirect `Location` is an `other` failure. URLs in
failure messages have secrets masked however they are encoded.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import certifi
import httpx

from prober.http11 import BodyTooLarge, Exchange, Http11Connection
from prober.redaction import redact
from prober.results import Failure, Phases
from prober.transport import open_stream

__all__ = [
    "REASON_OF_PHASE",
    "HttpClient",
    "HttpFailure",
    "HttpRequest",
    "HttpResponse",
    "HttpSession",
]

MAX_REDIRECTS = 10
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Where a request failed → the failure reason (a timeout is `timeout` except in `resolve`).
REASON_OF_PHASE: Mapping[str, str] = {
    "resolve": "dns",
    "connect": "connect",
    "tls": "tls",
    "processing": "other",
    "transfer": "other",
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
            except (LookupError, UnicodeError):
                # An unknown charset, or a codec that will not replace (idna): the target's
                # label is wrong, so read the bytes as UTF-8 like any other.
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
    """getaddrinfo failed (or found nothing)."""


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


class HttpSession:
    """One journey run's connections. Use as `async with client.session() as session`."""

    def __init__(self, client: HttpClient, *, keep_alive: bool) -> None:
        self._client = client
        self._keep_alive = keep_alive
        # One connection per origin, used by one step at a time.
        self._connections: dict[tuple[str, str, int], Http11Connection] = {}

    async def __aenter__(self) -> HttpSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()

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
        try:
            target = _target(url, tuple(params.items()) if params else ())
            request_headers, body = _encode(target, headers, json_body, content)
            raw_method = method.upper().encode("ascii")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as error:
            return HttpFailure(Failure("other", redact(f"invalid request: {error}")), Phases(), 0.0)
        if budget <= 0:
            return HttpFailure(
                Failure("timeout", f"timed out after {request.timeout:g}s"), Phases(), 0.0
            )
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
                    raw_method,
                    target.raw_path,
                    request_headers,
                    body,
                    request.max_body_size,
                    exchange,
                )
            done = True
        except BodyTooLarge:
            failure = Failure(
                "other", f"response body larger than max_body_size ({_size(request.max_body_size)})"
            )
            return self._failed(failure, timeline, exchange)
        except Exception as error:
            failure = self._classify(error, timeline, exchange, request.timeout)
            _drop_tracebacks(error)
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
            cert_expiry=_cert_expiry(ssl_object),
        )

    async def _connect(self, target: _Target, timeline: _Timeline) -> Http11Connection:
        """A new connection to the target's origin: resolve, connect, TLS — each timed."""
        started = timeline.start = time.perf_counter()
        if _is_ip_literal(target.host):
            addresses, connecting = [target.host], started
        else:
            addresses = await self._resolve(target.host, target.port)
            connecting = time.perf_counter()
            timeline.resolve = connecting - started
        timeline.phase = "connect"
        last_error: OSError | None = None
        for address in addresses:
            try:
                stream = await open_stream(address, target.port)
                break
            except OSError as error:
                last_error = error
        else:
            assert last_error is not None
            raise last_error
        handshaking = time.perf_counter()
        timeline.connect = handshaking - connecting
        if target.scheme == "https":
            timeline.phase = "tls"
            await stream.start_tls(self._client.ssl_context, target.host)
            timeline.tls = time.perf_counter() - handshaking
        return Http11Connection(stream)

    async def _resolve(self, host: str, port: int) -> list[str]:
        """The host's addresses in the resolver's order."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as error:
            raise _DnsFailure(f"cannot resolve {host!r}: {error.strerror or error}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise _DnsFailure(f"cannot resolve {host!r}: no addresses")
        return addresses

    def _failed(self, failure: Failure, timeline: _Timeline, exchange: Exchange) -> HttpFailure:
        now = time.perf_counter()
        start = timeline.start if timeline.start is not None else exchange.sent_start
        return HttpFailure(failure, timeline.phases(exchange), now - start if start else 0.0)

    def _classify(
        self, error: Exception, timeline: _Timeline, exchange: Exchange, timeout: float
    ) -> Failure:
        """The one place where an error from the HTTP stack becomes a failure reason."""
        phase = timeline.phase
        if phase == "processing" and exchange.headers_end:
            phase = "transfer"
        if isinstance(error, _DnsFailure) or (
            phase == "resolve" and isinstance(error, TimeoutError)
        ):
            return Failure(
                "dns", redact(str(error) or f"DNS resolution timed out after {timeout:g}s")
            )
        if isinstance(error, TimeoutError):
            return Failure(
                "timeout", f"timed out after {timeout:g}s (during {_PHASE_WORDS[phase]})"
            )
        reason = REASON_OF_PHASE[phase]
        if _caused_by(error, ssl.SSLError) or _caused_by(error, ssl.CertificateError):
            reason = "tls"
        return Failure(reason, redact(f"{_PHASE_WORDS[phase]}: {_describe(error)}"))


@dataclass(frozen=True, slots=True)
class _Target:
    """A parsed request URL, ready to send."""

    url: str
    scheme: str
    host: str  # as connected to: an IP literal without brackets, or an IDNA-encoded name
    port: int
    raw_path: bytes
    host_header: bytes

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


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
    bracketed = b"[" + host + b"]" if b":" in host else host  # IPv6 literal in Host
    port = parsed.port
    host_header = (
        bracketed if port in (None, default_port) else bracketed + b":" + str(port).encode()
    )
    return _Target(
        url=str(parsed),
        scheme=parsed.scheme,
        host=host.decode("ascii"),
        port=port or default_port,
        raw_path=parsed.raw_path,
        host_header=host_header,
    )


@functools.lru_cache(maxsize=1024)
def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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


def _cert_expiry(ssl_object: ssl.SSLObject | None) -> float | None:
    if ssl_object is None:
        return None
    certificate = ssl_object.getpeercert()
    not_after = certificate.get("notAfter") if certificate else None
    return float(ssl.cert_time_to_seconds(str(not_after))) if not_after else None


_PHASE_WORDS = {
    "resolve": "resolving",
    "connect": "connecting",
    "tls": "TLS handshake",
    "processing": "waiting for the response",
    "transfer": "reading the body",
}


def _chain(error: BaseException, *, past_from_none: bool = True) -> Iterator[BaseException]:
    """`error`, then what caused it (`__cause__`, else `__context__`), and so on; each once,
    however the chain loops. `past_from_none=False` stops where `raise ... from None` said
    the context is not the story (e.g. a parser's words already rephrased)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        elif past_from_none or not current.__suppress_context__:
            current = current.__context__
        else:
            current = None


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(link, kind) for link in _chain(error))


def _drop_tracebacks(error: BaseException) -> None:
    """Forget where a target's fault was raised, once it is a `Failure`.

    An exception out of asyncio (a failed TLS handshake, above all) sits in a reference
    cycle — its traceback's frames hold the future that holds it — together with the
    transport and its 256 KiB TLS buffer, which only the cyclic GC then frees. A target
    that fails its handshake ten times a second made the daemon's RSS climb by tens of
    MiB between collections (tests/chaos/test_soak.py); with the tracebacks gone,
    reference counting frees it all at once."""
    for link in _chain(error):
        link.__traceback__ = None


def _describe(error: BaseException) -> str:
    """The innermost useful message: errors may wrap OS and SSL errors."""
    messages: list[str] = []
    for link in _chain(error, past_from_none=False):
        text = str(link).strip()
        if text and text not in messages:
            messages.append(text)
            if len(messages) == 4:
                break
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


def _size(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    if size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} bytes"
