"""prober.http: failures are classified, never raised; phases are timed; bodies are capped.

Error classification is unit-tested on `_failures.classify` (the one place errors become reasons);
everything else talks to real servers on 127.0.0.1 (see `helpers.py`), which can produce
every fault the HTTP layer must survive on demand, so nothing here mocks the client.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import trustme

from prober import redaction
from prober.http import (
    REASON_OF_PHASE,
    HttpClient,
    HttpFailure,
    HttpRequest,
    HttpResponse,
    ResolutionError,
)
from prober.http import _failures as failures
from prober.http._wire import ProtocolFault
from prober.results import REASONS, Failure, Phases

from . import helpers
from .dns import DnsServer, Name
from .helpers import RawServer, response

integration = pytest.mark.integration

SLACK = 3.0  # seconds; generous upper bound on scheduling noise


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> HttpClient:
    """One client for the module: building the certifi context costs ~20 ms."""
    return HttpClient()


@pytest.fixture
def secret() -> Iterator[Callable[[str], str]]:
    """Register secrets for one test; the registry is cleared afterwards."""

    def register(value: str) -> str:
        redaction.register_secret(value)
        return value

    yield register
    redaction.secrets.clear()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def run(
    client: HttpClient, *requests: HttpRequest, keep_alive: bool = True
) -> list[HttpResponse | HttpFailure]:
    """Send `requests` one after another on one session; return their outcomes."""

    async def main() -> list[HttpResponse | HttpFailure]:
        async with client.session(keep_alive=keep_alive) as session:
            return [await session.send(request) for request in requests]

    return asyncio.run(main())


def one(client: HttpClient, request: HttpRequest, **kwargs: Any) -> HttpResponse | HttpFailure:
    [outcome] = run(client, request, **kwargs)
    return outcome


def timed(client: HttpClient, request: HttpRequest) -> tuple[HttpResponse | HttpFailure, float]:
    started = time.monotonic()
    outcome = one(client, request)
    return outcome, time.monotonic() - started


def get(url: str, **kwargs: Any) -> HttpRequest:
    return HttpRequest("GET", url, **kwargs)


def failure_of(outcome: HttpResponse | HttpFailure) -> HttpFailure:
    assert isinstance(outcome, HttpFailure), f"expected a failure, got {outcome!r}"
    return outcome


def response_of(outcome: HttpResponse | HttpFailure) -> HttpResponse:
    assert isinstance(outcome, HttpResponse), f"expected a response, got {outcome!r}"
    return outcome


def phase_sum(phases: Phases) -> float:
    return sum(phases.as_dict().values())


@pytest.fixture(scope="module")
def names() -> Iterator[DnsServer]:
    """A loopback nameserver for the module's `.test` names (see `dns.py`)."""
    table = {
        "probe-target.test": Name(addresses=()),
        "slow-dns.test": Name(delay=None),
        "multi-first.test": Name(addresses=("127.0.0.1", "127.0.0.2")),
        "multi-refused-first.test": Name(addresses=("127.0.0.2", "127.0.0.1")),
        "multi-dup.test": Name(addresses=("127.0.0.2", "127.0.0.2")),
        "multi-none.test": Name(addresses=("127.0.0.2", "127.0.0.3")),
    }
    with DnsServer(table) as server:
        yield server


@pytest.fixture(scope="module")
def dns_client(names: DnsServer) -> HttpClient:
    """A client whose resolver asks the loopback nameserver."""
    return HttpClient(nameservers=[names.nameserver])


# --- 1. errors become failures: one classification, by phase -----------------------------


def _ssl_wrapped() -> Exception:
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed")
        except ssl.SSLError as inner:
            raise ConnectionError("handshake") from inner
    except ConnectionError as outer:
        return outer


CLASSIFY_ROWS = [
    # id, error, phase, headers received, reason
    ("dns-failure", ResolutionError("cannot resolve 'x'"), "resolve", False, "dns"),
    ("timeout-while-resolving", TimeoutError(), "resolve", False, "dns"),
    ("refused", ConnectionRefusedError(111, "Connection refused"), "connect", False, "connect"),
    ("unreachable", OSError(101, "Network is unreachable"), "connect", False, "connect"),
    ("timeout-connecting", TimeoutError(), "connect", False, "timeout"),
    ("ssl-error", ssl.SSLError(1, "handshake failure"), "tls", False, "tls"),
    ("reset-during-tls", ConnectionResetError(104, "reset"), "tls", False, "tls"),
    ("timeout-during-tls", TimeoutError(), "tls", False, "timeout"),
    ("wrapped-ssl-error-anywhere", _ssl_wrapped(), "processing", False, "tls"),
    ("reset-waiting", ConnectionResetError(104, "reset"), "processing", False, "other"),
    ("protocol-fault", ProtocolFault("invalid response: x"), "processing", False, "other"),
    ("timeout-waiting", TimeoutError(), "processing", False, "timeout"),
    ("reset-in-body", ConnectionResetError(104, "reset"), "processing", True, "other"),
    ("timeout-in-body", TimeoutError(), "processing", True, "timeout"),
    ("unexpected", RuntimeError("unexpected"), "processing", False, "other"),
]


def classify(error: Exception, phase: str, headers_seen: bool, timeout: float = 1.0) -> Failure:
    if phase == "processing" and headers_seen:
        phase = "transfer"  # as both paths report a fault after the response head
    return failures.classify(error, phase, "api.test:443", timeout)


@pytest.mark.parametrize(
    ("error", "phase", "headers_seen", "reason"),
    [row[1:] for row in CLASSIFY_ROWS],
    ids=[row[0] for row in CLASSIFY_ROWS],
)
def test_classify_by_phase_and_cause(
    error: Exception, phase: str, headers_seen: bool, reason: str
) -> None:
    """classify: the phase decides the reason; timeouts and SSL causes override it."""
    assert classify(error, phase, headers_seen).reason == reason


@pytest.mark.parametrize(
    ("error", "phase", "headers_seen", "expected"),
    [
        (TimeoutError(), "processing", False, "timed out after 2.5s (during waiting for"),
        (TimeoutError(), "processing", True, "(during reading the body from api.test:443)"),
        (ConnectionResetError(104, "peer went away"), "processing", False, "peer went away"),
        (ConnectionRefusedError(111, "nobody home"), "connect", False, "connecting to api.test:443: "),
    ],
    ids=["timeout-names-the-timeout", "timeout-names-the-phase", "error-text-kept", "phase-and-host-named"],
)
def test_failure_message(error: Exception, phase: str, headers_seen: bool, expected: str) -> None:
    """The failure message names the configured timeout, the error text, the phase and host."""
    assert expected in classify(error, phase, headers_seen, timeout=2.5).message


def test_every_phase_has_a_known_reason() -> None:
    """Every phase a request can fail in maps to one of results.REASONS."""
    assert set(REASON_OF_PHASE) == set(Phases().as_dict())
    assert set(REASON_OF_PHASE.values()) <= set(REASONS)


# --- 2. real loopback servers: responses and redirects -------------------------------------


@integration
def test_response_is_returned(client: HttpClient) -> None:
    """A response comes back as an HttpResponse with status, headers and body."""
    with RawServer(helpers.fixed(response(201, b"made", (("X-Id", "7"),)))) as server:
        outcome = response_of(one(client, get(server.url("/probe"))))
    assert (outcome.status_code, outcome.body, outcome.header("x-id")) == (201, b"made", "7")


@integration
def test_request_is_sent_as_written(client: HttpClient) -> None:
    """Method, path with query, headers, Host and a JSON body reach the server."""
    with RawServer(helpers.fixed(response(200))) as server:
        request = HttpRequest(
            "post",
            server.url("/chat?x=1"),
            params={"y": "2"},
            headers=(("X-Request-ID", "r-1"),),
            json_body={"text": "hé"},
        )
        response_of(one(client, request))
    [sent] = server.received
    assert (sent.method, sent.target) == ("POST", "/chat?x=1&y=2")
    assert sent.headers["host"] == f"127.0.0.1:{server.port}"
    assert sent.headers["x-request-id"] == "r-1"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == '{"text":"hé"}'.encode()


REDIRECT_METHOD_ROWS = [
    ("POST", 301, "GET", b""),
    ("POST", 302, "GET", b""),
    ("POST", 303, "GET", b""),
    ("PUT", 303, "GET", b""),
    ("POST", 307, "POST", b"payload"),
    ("POST", 308, "POST", b"payload"),
    ("PUT", 302, "PUT", b"payload"),
    ("GET", 301, "GET", b""),
]


@integration
@pytest.mark.parametrize(
    ("method", "status", "then", "body"),
    REDIRECT_METHOD_ROWS,
    ids=[f"{m}-{s}-{t}" for m, s, t, _ in REDIRECT_METHOD_ROWS],
)
def test_redirect_method_rewriting(
    client: HttpClient, method: str, status: int, then: str, body: bytes
) -> None:
    """303 (and 301/302 after POST) become a bodyless GET; 307/308 keep method and body."""
    table = {"/probe": response(status, headers=(("Location", "/next"),)), "/next": response(200)}
    with RawServer(helpers.routes(table)) as server:
        content = b"payload" if method != "GET" else None
        request = HttpRequest(method, server.url("/probe"), content=content, follow_redirects=True)
        outcome = one(client, request)
    sent = server.received[-1]
    assert (response_of(outcome).status_code, sent.target, sent.method, sent.body) == (
        200,
        "/next",
        then,
        body,
    )


@integration
def test_redirect_drops_request_params(client: HttpClient) -> None:
    """Query params of the first request are not re-sent to the redirect target."""
    table = {"/probe": response(302, headers=(("Location", "/next"),)), "/next": response(200)}
    with RawServer(helpers.routes(table)) as server:
        one(client, get(server.url("/probe"), params={"a": "1"}, follow_redirects=True))
    assert [request.target for request in server.received] == ["/probe?a=1", "/next"]


@integration
@pytest.mark.parametrize("other_origin", [False, True], ids=["same-origin-keeps", "other-drops"])
def test_credentials_do_not_follow_a_redirect_to_another_origin(
    client: HttpClient, other_origin: bool
) -> None:
    """Authorization and Cookie follow a redirect only within the same origin."""
    table = {"/next": response(200)}
    with RawServer(helpers.routes(table)) as server:
        # `localhost` and `127.0.0.1` reach the same server but are different origins.
        host = "localhost" if other_origin else "127.0.0.1"
        table["/probe"] = response(
            302, headers=(("Location", f"http://{host}:{server.port}/next"),)
        )
        request = HttpRequest(
            "GET",
            server.url("/probe"),
            follow_redirects=True,
            headers=(("Authorization", "Bearer t"), ("Cookie", "s=1"), ("X-Other", "x")),
        )
        response_of(one(client, request))
    sent = server.received[-1].headers
    kept = not other_origin
    assert ("authorization" in sent, "cookie" in sent, sent.get("x-other")) == (kept, kept, "x")


SECRET_HEADER_ROWS = [
    # id, redirect status, other origin, request headers, body, header kept, body resent, reason
    ("api-key-same-origin", 302, False, True, None, True, False, None),
    ("api-key-other-origin-dropped", 302, True, True, None, False, False, None),
    ("secret-body-307-same-origin", 307, False, False, {"password": "s3cr3t-pw"}, True, True, None),
    (
        "secret-body-307-other-origin-fails",
        307,
        True,
        False,
        {"password": "s3cr3t-pw"},
        True,
        False,
        "other",
    ),
    (
        "secret-body-308-other-origin-fails",
        308,
        True,
        False,
        {"password": "s3cr3t-pw"},
        True,
        False,
        "other",
    ),
    ("plain-body-307-other-origin-resent", 307, True, False, {"user": "bob"}, True, True, None),
    (
        "secret-body-303-other-origin-is-a-get",
        303,
        True,
        False,
        {"password": "s3cr3t-pw"},
        True,
        False,
        None,
    ),
]


@integration
@pytest.mark.parametrize(
    ("status", "other_origin", "api_key", "body", "header_kept", "resent", "reason"),
    [r[1:] for r in SECRET_HEADER_ROWS],
    ids=[r[0] for r in SECRET_HEADER_ROWS],
)
def test_secrets_do_not_follow_a_redirect_to_another_origin(
    client: HttpClient,
    secret: Callable[[str], str],
    status: int,
    other_origin: bool,
    api_key: bool,
    body: dict[str, str] | None,
    header_kept: bool,
    resent: bool,
    reason: str | None,
) -> None:
    """A header or a 307/308 body holding a secret never reaches another origin."""
    key, password = secret("k3y-0f-the-api"), secret("s3cr3t-pw")
    table = {"/next": response(200)}
    with RawServer(helpers.routes(table)) as server:
        host = "localhost" if other_origin else "127.0.0.1"
        location = f"http://{host}:{server.port}/next"
        table["/probe"] = response(status, headers=(("Location", location),))
        headers = (("X-Api-Key", key),) if api_key else (("X-Plain", "x"),)
        request = HttpRequest(
            "POST", server.url("/probe"), headers=headers, json_body=body, follow_redirects=True
        )
        outcome = one(client, request)
    targets = [received.target for received in server.received]
    if reason is not None:
        failure = failure_of(outcome).failure
        assert (failure.reason, "holds a secret" in failure.message) == (reason, True)
        assert (targets, password in failure.message) == (["/probe"], False)
        return
    response_of(outcome)
    sent = server.received[-1]
    assert targets == ["/probe", "/next"]
    assert ("x-api-key" in sent.headers) == (header_kept and api_key)
    assert (password.encode() in sent.body) == (resent and password in str(body))
    assert (sent.body != b"") == resent


# --- requests that never reach the network ------------------------------------------------

INVALID_ROWS = [
    ("unsupported-scheme", get("ftp://127.0.0.1/file"), "other"),
    ("relative-url", get("/just/a/path"), "other"),
    ("bad-ip-literal", get("http://[::1/"), "other"),
    ("zero-timeout", get("http://127.0.0.1:9/", timeout=0), "timeout"),
]


@pytest.mark.parametrize(
    ("request_", "reason"), [row[1:] for row in INVALID_ROWS], ids=[row[0] for row in INVALID_ROWS]
)
def test_unsendable_request_is_failure(
    client: HttpClient, request_: HttpRequest, reason: str
) -> None:
    """A request that cannot be sent is a failure, not an exception."""
    assert failure_of(one(client, request_)).failure.reason == reason


# --- 3. real loopback servers: faults -----------------------------------------------------


@integration
def test_connection_refused_is_connect(client: HttpClient) -> None:
    """A port with nothing listening gives `connect`."""
    with helpers.unused_port() as port:
        outcome = one(client, get(f"http://127.0.0.1:{port}/"))
    assert failure_of(outcome).failure.reason == "connect"


FAULT_ROWS = [
    ("reset-after-request", helpers.reset_after_request, None),
    ("close-after-request", helpers.close_after_request, None),
    ("reset-before-reading", helpers.close_after_request, helpers.reset_before_reading),
]


@integration
@pytest.mark.parametrize(
    ("behaviour", "on_accept"), [row[1:] for row in FAULT_ROWS], ids=[r[0] for r in FAULT_ROWS]
)
def test_dropped_connection_is_other(
    client: HttpClient, behaviour: helpers.Behaviour, on_accept: Any
) -> None:
    """A server that resets or closes before answering gives `other`."""
    with RawServer(behaviour, on_accept=on_accept) as server:
        outcome = one(client, get(server.url()))
    assert failure_of(outcome).failure.reason == "other"


STALL_ROWS = [
    ("before-headers", helpers.stall_before_headers, "waiting for the response"),
    ("after-headers", helpers.stall_after_headers, "reading the body"),
]


@integration
@pytest.mark.parametrize(
    ("behaviour", "words"), [row[1:] for row in STALL_ROWS], ids=[r[0] for r in STALL_ROWS]
)
def test_stalled_server_times_out(
    client: HttpClient, behaviour: helpers.Behaviour, words: str
) -> None:
    """A stalled server gives `timeout`, naming the phase, within timeout + slack."""
    timeout = 0.3
    with RawServer(behaviour) as server:
        outcome, elapsed = timed(client, get(server.url(), timeout=timeout))
    failure = failure_of(outcome)
    assert (failure.failure.reason, words in failure.failure.message) == ("timeout", True)
    assert timeout * 0.9 <= elapsed < timeout + SLACK


@integration
@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
def test_huge_body_is_cut_off(client: HttpClient, framing: str) -> None:
    """A body over max_body_size fails quickly with `other`, without reading it all."""
    with RawServer(helpers.huge_body(framing)) as server:
        outcome, elapsed = timed(client, get(server.url(), max_body_size=64 * 1024))
        assert helpers.wait_until(lambda: all(c.finished.is_set() for c in server.connections))
        sent = server.connections[0].bytes_sent
    failure = failure_of(outcome).failure
    assert (failure.reason, "max_body_size" in failure.message) == ("other", True)
    assert elapsed < SLACK
    assert sent < helpers.HUGE // 4  # the client hung up long before the end


def _chunked(size: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        size,
        b"y" * size,
    )


CAP = 1000
CAP_ROWS = [
    ("content-length-at-cap", response(200, b"y" * CAP), True),
    ("content-length-over-cap", response(200, b"y" * (CAP + 1)), False),
    ("chunked-at-cap", _chunked(CAP), True),
    ("chunked-over-cap", _chunked(CAP + 1), False),
]


@integration
@pytest.mark.parametrize(("raw", "ok"), [r[1:] for r in CAP_ROWS], ids=[r[0] for r in CAP_ROWS])
def test_body_cap_boundary(client: HttpClient, raw: bytes, ok: bool) -> None:
    """Exactly max_body_size bytes are accepted, one more is not, however the body is framed."""
    with RawServer(helpers.fixed(raw)) as server:
        outcome = one(client, get(server.url(), max_body_size=CAP))
    assert isinstance(outcome, HttpResponse) is ok


@integration
def test_head_of_large_resource_is_not_too_large(client: HttpClient) -> None:
    """A HEAD response announcing a large Content-Length carries no body: it is not capped."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n"  # HEAD: headers only
    with RawServer(helpers.fixed(raw)) as server:
        outcome = one(client, HttpRequest("HEAD", server.url(), max_body_size=1024))
    assert (response_of(outcome).status_code, outcome.body) == (200, b"")


@integration
@pytest.mark.parametrize("status", [204, 304], ids=["no-content", "not-modified"])
def test_bodyless_status_is_not_too_large(client: HttpClient, status: int) -> None:
    """A 204 or 304 announcing a large Content-Length carries no body: it is not capped."""
    raw = f"HTTP/1.1 {status} X\r\nContent-Length: 5000000\r\n\r\n".encode()
    with RawServer(helpers.fixed(raw)) as server:
        outcome = one(client, get(server.url(), max_body_size=1024))
    assert (response_of(outcome).status_code, outcome.body) == (status, b"")


@integration
def test_redirect_loop_is_cut_off(client: HttpClient) -> None:
    """A redirect loop gives `other` "more than 10 redirects" after 11 requests."""
    with RawServer(helpers.redirect_loop) as server:
        outcome = one(client, get(server.url("/loop"), follow_redirects=True))
        requests = len(server.received)
    failure = failure_of(outcome).failure
    assert (failure.reason, "more than 10 redirects" in failure.message) == ("other", True)
    assert requests == 11


REDIRECT_TABLE = {
    "/start": response(302, headers=(("Location", "/final"),)),
    "/final": response(200, b"arrived"),
}


@integration
@pytest.mark.parametrize(
    ("follow", "status", "paths"),
    [(False, 302, ["/start"]), (True, 200, ["/start", "/final"])],
    ids=["not-followed", "followed"],
)
def test_redirect_following(
    client: HttpClient, follow: bool, status: int, paths: list[str]
) -> None:
    """follow_redirects=False returns the 302 itself; True fetches the Location."""
    with RawServer(helpers.routes(REDIRECT_TABLE)) as server:
        outcome = response_of(one(client, get(server.url("/start"), follow_redirects=follow)))
        seen = [request.target for request in server.received]
    assert (outcome.status_code, seen) == (status, paths)
    assert outcome.url == server.url(paths[-1])


@integration
@pytest.mark.parametrize(
    "location", ["http://127.0.0.1:abc/", "http://\x01/"], ids=["bad-port", "control-char"]
)
def test_unparsable_redirect_location_is_failure(client: HttpClient, location: str) -> None:
    """A redirect to an unparsable Location is an `other` failure, not an exception."""
    table = {"/start": response(302, headers=(("Location", location),))}
    with RawServer(helpers.routes(table)) as server:
        outcome = one(client, get(server.url("/start"), follow_redirects=True))
    assert failure_of(outcome).failure.reason == "other"


@integration
def test_followed_redirect_accumulates_phases(client: HttpClient) -> None:
    """A followed redirect reports the duration and phases of both hops."""
    with RawServer(helpers.routes(REDIRECT_TABLE)) as server:
        outcome = response_of(one(client, get(server.url("/start"), follow_redirects=True)))
    assert outcome.duration >= phase_sum(outcome.phases) > 0


# --- 4. phase timings ---------------------------------------------------------------------


@integration
def test_fresh_connection_phases(client: HttpClient) -> None:
    """A fresh plain connection to an IP literal: connect and processing > 0, no resolve/tls."""
    with RawServer(helpers.fixed(response(200, b"ok"))) as server:
        phases = response_of(one(client, get(server.url()))).phases
    assert (phases.connect > 0, phases.processing > 0) == (True, True)
    assert (phases.resolve, phases.tls) == (0.0, 0.0)


@integration
@pytest.mark.parametrize(
    ("keep_alive", "connections"), [(True, 1), (False, 2)], ids=["keep-alive", "no-keep-alive"]
)
def test_second_request_reuses_connection_only_with_keep_alive(
    client: HttpClient, keep_alive: bool, connections: int
) -> None:
    """With keep-alive the second request reuses the connection (connect == 0)."""
    with RawServer(helpers.fixed(response(200, b"ok"))) as server:
        first, second = run(client, get(server.url()), get(server.url()), keep_alive=keep_alive)
        accepted = len(server.connections)
    assert (response_of(first).phases.connect > 0, accepted) == (True, connections)
    assert (response_of(second).phases.connect > 0) is (connections == 2)


@integration
def test_a_request_that_says_close_is_not_followed_on_its_connection(client: HttpClient) -> None:
    """A step sending `Connection: close` ends its connection, even when the server's
    answer does not say close: the next step connects anew instead of writing into a
    connection the server is closing."""
    with RawServer(helpers.fixed(response(200, b"ok"))) as server:
        first, second = run(
            client, get(server.url(), headers=(("Connection", "close"),)), get(server.url())
        )
        accepted = len(server.connections)
    assert (response_of(first).status_code, response_of(second).status_code) == (200, 200)
    assert accepted == 2


@integration
def test_duration_is_sum_of_phases(client: HttpClient) -> None:
    """A step's duration is its phases plus at most a little client overhead."""
    with RawServer(helpers.fixed(response(200, b"z" * 100_000))) as server:
        outcome = response_of(one(client, get(server.url())))
    total = phase_sum(outcome.phases)
    assert total <= outcome.duration + 1e-9
    assert outcome.duration - total < 0.05


@integration
def test_server_delay_shows_in_processing(client: HttpClient) -> None:
    """A server that waits 50 ms before answering shows processing >= 50 ms."""
    with RawServer(helpers.fixed(response(200, b"ok"), delay=0.05)) as server:
        outcome = response_of(one(client, get(server.url())))
    assert 0.05 <= outcome.phases.processing < 0.05 + SLACK


# --- 5. DNS -------------------------------------------------------------------------------


@integration
def test_localhost_is_resolved_and_timed(client: HttpClient) -> None:
    """Resolving `localhost` is timed (resolve > 0) and the request succeeds."""
    with RawServer(helpers.fixed(response(200, b"ok"))) as server:
        outcome = response_of(one(client, get(f"http://localhost:{server.port}/")))
    assert (outcome.status_code, outcome.phases.resolve > 0) == (200, True)


@integration
def test_reused_connection_reports_no_resolve(client: HttpClient) -> None:
    """A request on a reused connection to a name reports resolve == 0."""
    with RawServer(helpers.fixed(response(200, b"ok"))) as server:
        url = f"http://localhost:{server.port}/"
        _, second = run(client, get(url), get(url))
        accepted = len(server.connections)
    assert (accepted, response_of(second).phases.resolve) == (1, 0.0)


DNS_ROWS = [
    ("not-found", "missing.test", "Domain name not found"),
    ("no-addresses", "probe-target.test", "probe-target.test"),
]


@integration
@pytest.mark.parametrize(("host", "words"), [r[1:] for r in DNS_ROWS], ids=[r[0] for r in DNS_ROWS])
def test_resolution_failure_is_dns(dns_client: HttpClient, host: str, words: str) -> None:
    """A name that is not found, or has no addresses, gives `dns` naming the host."""
    failure = failure_of(one(dns_client, get(f"http://{host}/"))).failure
    assert (failure.reason, host in failure.message, words in failure.message) == (
        "dns",
        True,
        True,
    )


@integration
def test_resolution_timeout_is_dns(dns_client: HttpClient, names: DnsServer) -> None:
    """A nameserver that never answers gives `dns` at the timeout, as the module promises."""
    started = time.monotonic()
    outcome = one(dns_client, get("http://slow-dns.test/", timeout=0.2))
    assert time.monotonic() - started < 0.2 + SLACK
    assert failure_of(outcome).failure.reason == "dns"
    assert names.asked("slow-dns.test") >= 1


FALLBACK_ROWS = [
    # id, name (its addresses: see `names`; the server listens on 127.0.0.1 only), outcome
    ("first-works", "multi-first.test", 200),
    ("falls-back-after-refusal", "multi-refused-first.test", 200),
    ("duplicates-tried-once", "multi-dup.test", "connect"),
    ("all-refuse-is-connect", "multi-none.test", "connect"),
]


@integration
@pytest.mark.parametrize(
    ("host", "expected"), [r[1:] for r in FALLBACK_ROWS], ids=[r[0] for r in FALLBACK_ROWS]
)
def test_resolved_addresses_are_tried_in_order(
    dns_client: HttpClient, names: DnsServer, host: str, expected: int | str
) -> None:
    """A name's addresses are connected to in the resolver's order until one answers."""
    with RawServer(helpers.fixed(response(200))) as server:
        outcome = one(dns_client, get(f"http://{host}:{server.port}/"))
    if isinstance(outcome, HttpFailure):
        assert outcome.failure.reason == expected
    else:
        assert outcome.status_code == expected
    assert names.asked(host) == 1


@integration
def test_ip_literal_is_not_looked_up(dns_client: HttpClient, names: DnsServer) -> None:
    """An IP literal is not looked up and reports no resolve time."""
    before = len(names.queries)
    with RawServer(helpers.fixed(response(200))) as server:
        outcome = response_of(one(dns_client, get(server.url())))
    assert (outcome.status_code, len(names.queries) - before, outcome.phases.resolve) == (
        200,
        0,
        0.0,
    )


# --- 6. TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def localhost_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1")


@integration
@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "no-keep-alive"])
def test_tls_with_trusted_ca(
    ca_file: str, localhost_cert: trustme.LeafCert, keep_alive: bool
) -> None:
    """With the CA trusted the request succeeds, times the handshake and reads the expiry."""
    client = HttpClient(verify=True, ca_file=ca_file)
    with helpers.tls_server(localhost_cert) as port:
        outcome = response_of(one(client, get(f"https://127.0.0.1:{port}/"), keep_alive=keep_alive))
    assert (outcome.status_code, outcome.body, outcome.phases.tls > 0) == (200, b"secure", True)
    assert isinstance(outcome.cert_expiry, float)
    assert outcome.cert_expiry > time.time()


@integration
def test_tls_by_name_resolves_and_verifies(ca_file: str, localhost_cert: trustme.LeafCert) -> None:
    """https://localhost verifies against the name and times resolve, connect and TLS."""
    client = HttpClient(verify=True, ca_file=ca_file)
    with helpers.tls_server(localhost_cert) as port:
        phases = response_of(one(client, get(f"https://localhost:{port}/"))).phases
    assert (phases.resolve > 0, phases.connect > 0, phases.tls > 0) == (True, True, True)


TLS_FAILURE_ROWS = [
    ("unknown-ca", ("localhost", "127.0.0.1"), False),
    ("wrong-host", ("example.org",), True),
]


@integration
@pytest.mark.parametrize(
    ("identities", "trust_ca"),
    [r[1:] for r in TLS_FAILURE_ROWS],
    ids=[r[0] for r in TLS_FAILURE_ROWS],
)
def test_tls_verification_failure_is_tls(
    client: HttpClient, ca: trustme.CA, ca_file: str, identities: tuple[str, ...], trust_ca: bool
) -> None:
    """A certificate from an unknown CA, or for another host, gives `tls`."""
    checking = HttpClient(verify=True, ca_file=ca_file) if trust_ca else client
    with helpers.tls_server(ca.issue_cert(*identities)) as port:
        outcome = one(checking, get(f"https://127.0.0.1:{port}/"))
    assert failure_of(outcome).failure.reason == "tls"


@integration
def test_tls_without_verification_accepts_unknown_ca(localhost_cert: trustme.LeafCert) -> None:
    """HttpClient(verify=False) talks to a server whose CA it does not know."""
    with helpers.tls_server(localhost_cert) as port:
        outcome = one(HttpClient(verify=False), get(f"https://127.0.0.1:{port}/"))
    assert (response_of(outcome).status_code, outcome.phases.tls > 0) == (200, True)


def _plain_http_reply(connection: helpers.Connection) -> bool:
    connection.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    return False


@integration
def test_https_to_plain_http_server_is_tls(client: HttpClient) -> None:
    """Speaking TLS to a plain-HTTP server gives `tls`."""
    with RawServer(helpers.close_after_request, on_accept=_plain_http_reply) as server:
        outcome = one(client, get(f"https://127.0.0.1:{server.port}/"))
    assert failure_of(outcome).failure.reason == "tls"


# --- 7. secrets never reach failure messages ----------------------------------------------

SECRET_VALUES = ["hunter2-t0ken", "p@ss w/rd:&=?"]


def _assert_secret_hidden(message: str, value: str) -> None:
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    forms.add(str(httpx.URL("http://h/", params={"s": value}).query, "ascii").partition("=")[2])
    assert [form for form in forms if form in message] == []


@integration
@pytest.mark.parametrize("value", SECRET_VALUES, ids=["plain", "needs-encoding"])
@pytest.mark.parametrize("where", ["refused", "reset"])
def test_secret_in_query_not_in_failure(
    client: HttpClient, secret: Callable[[str], str], value: str, where: str
) -> None:
    """A registered secret in the URL's query never appears in a failure message."""
    secret(value)
    with RawServer(helpers.reset_after_request) as server, helpers.unused_port() as port:
        base = server.url("/login") if where == "reset" else f"http://127.0.0.1:{port}/login"
        outcome = one(client, get(base, params={"token": value}))
    _assert_secret_hidden(failure_of(outcome).failure.message, value)


@integration
@pytest.mark.parametrize("value", SECRET_VALUES, ids=["plain", "needs-encoding"])
def test_secret_in_redirect_loop_url_not_in_failure(
    client: HttpClient, secret: Callable[[str], str], value: str
) -> None:
    """The redirect-loop failure names the last URL, with registered secrets masked."""
    secret(value)
    with RawServer(helpers.redirect_loop) as server:
        outcome = one(
            client, get(server.url("/loop"), params={"token": value}, follow_redirects=True)
        )
    message = failure_of(outcome).failure.message
    assert "redirects" in message
    _assert_secret_hidden(message, value)


@integration
def test_secret_in_url_literal_not_in_redirect_failure(
    client: HttpClient, secret: Callable[[str], str]
) -> None:
    """A registered secret written straight into the URL is masked in the redirect message."""
    value = secret("tok en/42")
    with RawServer(helpers.redirect_loop) as server:
        outcome = one(client, get(server.url(f"/loop?token={value}"), follow_redirects=True))
    message = failure_of(outcome).failure.message
    assert (message.count("***"), "en/42" in message) == (1, False)


@integration
def test_secret_in_url_literal_normalised_by_httpx_not_in_redirect_failure(
    client: HttpClient, secret: Callable[[str], str]
) -> None:
    """A secret that httpx escapes its own way in a URL (`p@ss%20w`) is masked too."""
    value = secret("p@ss w:rd")
    with RawServer(helpers.redirect_loop) as server:
        outcome = one(client, get(server.url(f"/loop?token={value}"), follow_redirects=True))
    message = failure_of(outcome).failure.message
    assert (message.count("***"), "ss w" in message, "ss%20w" in message) == (1, False, False)


# --- 8. HttpResponse ----------------------------------------------------------------------


def make_response(body: bytes, *headers: tuple[str, str]) -> HttpResponse:
    return HttpResponse(200, list(headers), body, Phases(), 0.0, "http://h/", None)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"\xff\xfe\xfa", b"[1, 2", b"[" * 100_000],
    ids=["garbage", "empty", "undecodable", "truncated", "too-deep"],
)
def test_json_rejects_invalid_body(body: bytes) -> None:
    """json() raises ValueError for a body that is not JSON, every time it is asked."""
    response_ = make_response(body)
    for _ in range(2):  # the parse failure is cached; the error must still be raised
        with pytest.raises(ValueError, match="not valid JSON"):
            response_.json()


def test_json_parses_valid_body() -> None:
    """json() returns the parsed body."""
    assert make_response(b'{"a": [1, 2]}').json() == {"a": [1, 2]}


@integration
def test_invalid_json_from_server(client: HttpClient) -> None:
    """A real server's invalid JSON body is a response whose json() raises ValueError."""
    raw = response(200, b"{oops", (("Content-Type", "application/json"),))
    with RawServer(helpers.fixed(raw)) as server:
        outcome = response_of(one(client, get(server.url())))
    with pytest.raises(ValueError, match="not valid JSON"):
        outcome.json()


TEXT_ROWS = [
    ("utf-8-default", "héllo".encode(), None, "héllo"),
    ("latin-1", "héllo".encode("latin-1"), "text/plain; charset=ISO-8859-1", "héllo"),
    ("quoted-charset", "héllo".encode("latin-1"), 'text/plain; charset="latin-1"', "héllo"),
    ("utf-16", "héllo".encode("utf-16"), "text/plain; charset=utf-16", "héllo"),
    ("unknown-charset-falls-back", "héllo".encode(), "text/plain; charset=klingon", "héllo"),
    ("undecodable-replaced", b"a\xffb", "text/plain; charset=utf-8", "a\ufffdb"),
    ("windows-1252", b"\x80 5", "text/plain; charset=windows-1252", "€ 5"),
    ("shift-jis", "日本".encode("shift_jis"), "text/plain; charset=Shift_JIS", "日本"),
    # Undefined bytes of a single-byte codec read as U+FFFD, as errors="replace" reads them.
    ("undefined-byte-replaced", b"a\x81b", "text/plain; charset=windows-1252", "a\ufffdb"),
    ("undefined-byte-cp1255", b"a\xffb", "text/plain; charset=windows-1255", "a\ufffdb"),
    # Codecs that are slow or unbounded on hostile input are not decoded with: UTF-8 is.
    ("punycode-is-utf-8", b"bcher-kva", "text/plain; charset=punycode", "bcher-kva"),
    ("idna-is-utf-8", b"xn--bcher-kva", "text/plain; charset=idna", "xn--bcher-kva"),
    ("utf-7-is-utf-8", b"+AGEAYgBj-", "text/plain; charset=utf-7", "+AGEAYgBj-"),
    ("escape-is-utf-8", b"\\u0041", "text/plain; charset=unicode_escape", "\\u0041"),
    ("rot13-is-utf-8", b"nop", "text/plain; charset=rot13", "nop"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "text"), [r[1:] for r in TEXT_ROWS], ids=[r[0] for r in TEXT_ROWS]
)
def test_text_decodes_with_declared_charset(
    body: bytes, content_type: str | None, text: str
) -> None:
    """text() decodes with the Content-Type charset, utf-8 otherwise, never raising."""
    headers = [("Content-Type", content_type)] if content_type else []
    assert make_response(body, *headers).text() == text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("content-type", "a/b"),
        ("CONTENT-TYPE", "a/b"),
        ("Set-Cookie", "x=1, y=2"),
        ("X-Nope", None),
    ],
    ids=["lower", "upper", "repeated-joined", "missing"],
)
def test_header_lookup_is_case_insensitive(name: str, value: str | None) -> None:
    """header() ignores case, joins repeated headers and returns None when absent."""
    response_ = make_response(
        b"", ("Content-Type", "a/b"), ("set-cookie", "x=1"), ("SET-COOKIE", "y=2")
    )
    assert response_.header(name) == value
