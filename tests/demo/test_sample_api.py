"""The bundled sample API (`prober.demo`): routes, faults, admin, HTTP plumbing and CLI.

Every test talks to a real server on 127.0.0.1 with a port picked by the OS,
through the standard library's `http.client`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from prober.demo import DEFAULT_EMAIL, DEFAULT_PASSWORD, DEFAULT_VERSION, Fault, SampleAPI
from prober.demo.api import parse_fault_spec

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}
STARTUP_DEADLINE = 20.0  # seconds; generous, CI machines are noisy


class Reply(NamedTuple):
    status: int
    body: Any
    headers: http.client.HTTPMessage


def call(
    api: SampleAPI,
    method: str,
    path: str,
    payload: object = None,
    *,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """One request on a fresh connection; the body is decoded from JSON when there is one."""
    body = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)) as conn:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
    return Reply(response.status, json.loads(data) if data else None, response.headers)


def login(api: SampleAPI) -> str:
    """A fresh access token."""
    reply = call(api, "POST", "/api/auth/login", CREDENTIALS)
    assert reply.status == 200
    token: str = reply.body["data"]["session"]["accessToken"]
    return token


def chat(api: SampleAPI, message: object, token: str) -> Reply:
    return call(
        api,
        "POST",
        "/api/chat/message",
        {"message": message},
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def api() -> Iterator[SampleAPI]:
    with SampleAPI(seed=1234).start() as server:
        yield server


# ------------------------------------------------------------------ routes


def test_health_reports_ok_and_default_version(api: SampleAPI) -> None:
    """GET /health answers 200 with status ok and the default version."""
    reply = call(api, "GET", "/health")
    assert (reply.status, reply.body) == (200, {"status": "ok", "version": DEFAULT_VERSION})
    assert reply.headers["Content-Type"] == "application/json"


def test_health_reports_configured_version() -> None:
    """The version given to the constructor is the one /health reports."""
    with SampleAPI(version="9.9.9") as server:
        assert call(server, "GET", "/health").body["version"] == "9.9.9"


def test_login_with_right_credentials_returns_a_session(api: SampleAPI) -> None:
    """Right credentials give success, the user and a bearer token valid for an hour."""
    reply = call(api, "POST", "/api/auth/login", CREDENTIALS)
    assert reply.status == 200
    assert reply.body["success"] is True
    assert reply.body["data"]["user"] == {"email": DEFAULT_EMAIL}
    session = reply.body["data"]["session"]
    assert isinstance(session["accessToken"], str)
    assert len(session["accessToken"]) >= 20
    assert session["expiresIn"] == 3600


def test_login_issues_a_new_token_each_time(api: SampleAPI) -> None:
    """Two logins give two different tokens."""
    assert login(api) != login(api)


@pytest.mark.parametrize(
    "payload",
    [
        {"email": DEFAULT_EMAIL, "password": "wrong"},
        {"email": "someone@example.com", "password": DEFAULT_PASSWORD},
    ],
    ids=["wrong-password", "wrong-email"],
)
def test_login_with_wrong_credentials_is_401(api: SampleAPI, payload: dict[str, str]) -> None:
    """Wrong credentials answer 401 with the documented error body."""
    reply = call(api, "POST", "/api/auth/login", payload)
    assert (reply.status, reply.body) == (401, {"success": False, "error": "invalid credentials"})


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"email": "probe@example.com"}',
        b'{"email": 1, "password": 2}',
    ],
    ids=["empty", "not-json", "not-an-object", "missing-password", "not-strings"],
)
def test_login_with_malformed_body_is_400(api: SampleAPI, raw: bytes) -> None:
    """A body that is not {email, password} strings answers 400."""
    reply = call(api, "POST", "/api/auth/login", raw=raw)
    assert reply.status == 400
    assert reply.body["success"] is False


def test_chat_with_valid_token_replies_with_usage(api: SampleAPI) -> None:
    """A signed-in chat message gets a non-empty reply and consistent token usage."""
    reply = chat(api, "hello mirror", login(api))
    assert reply.status == 200
    assert reply.body["reply"]
    usage = reply.body["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_usage_is_deterministic_and_grows_with_length(api: SampleAPI) -> None:
    """The same message costs the same tokens; a longer one costs more prompt tokens."""
    token = login(api)
    first, again = chat(api, "hello", token).body, chat(api, "hello", token).body
    longer = chat(api, "hello " * 50, token).body
    assert first == again
    assert longer["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
    ids=["no-header", "unknown-token", "wrong-scheme", "empty-token"],
)
def test_chat_without_valid_token_is_401(api: SampleAPI, headers: dict[str, str]) -> None:
    """Chat without a known bearer token answers 401 with a FastAPI-style detail."""
    reply = call(api, "POST", "/api/chat/message", {"message": "hi"}, headers=headers)
    assert reply.status == 401
    assert "detail" in reply.body


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"{}", "missing"),
        (b'{"text": "hi"}', "missing"),
        (b'{"message": 3}', "string_type"),
        (b"{oops", "json_invalid"),
        (b"", "missing"),
    ],
    ids=["empty-object", "other-field", "not-a-string", "not-json", "no-body"],
)
def test_chat_without_a_message_is_422(api: SampleAPI, raw: bytes, kind: str) -> None:
    """A body without a string `message` answers 422 with FastAPI's validation detail."""
    token = login(api)
    reply = call(
        api, "POST", "/api/chat/message", raw=raw, headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status == 422
    assert reply.body["detail"][0]["type"] == kind


def test_unknown_route_is_404(api: SampleAPI) -> None:
    """An unknown path answers 404 with FastAPI's body."""
    reply = call(api, "GET", "/nope")
    assert (reply.status, reply.body) == (404, {"detail": "Not Found"})


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/health", "GET"),
        ("GET", "/api/auth/login", "POST"),
        ("DELETE", "/api/chat/message", "POST"),
        ("PATCH", "/health", "GET"),
        ("GET", "/_admin/faults", "DELETE, PUT"),
    ],
    ids=["post-health", "get-login", "delete-chat", "patch-health", "get-admin-faults"],
)
def test_wrong_method_is_405(api: SampleAPI, method: str, path: str, allow: str) -> None:
    """A known path with another method answers 405 and lists the allowed ones."""
    reply = call(api, method, path)
    assert (reply.status, reply.body) == (405, {"detail": "Method Not Allowed"})
    assert reply.headers["Allow"] == allow


# ------------------------------------------------------------------ faults


ROUTE_CALLS = [
    ("/health", "GET", None),
    ("/api/auth/login", "POST", CREDENTIALS),
    ("/api/chat/message", "POST", {"message": "hi"}),
]
ROUTE_IDS = ["health", "login", "chat"]


@pytest.mark.parametrize(("route", "method", "payload"), ROUTE_CALLS, ids=ROUTE_IDS)
def test_error_rate_one_always_fails_with_the_status(
    api: SampleAPI, route: str, method: str, payload: object
) -> None:
    """error_rate 1.0 answers the fault's status with the injected body every time."""
    api.set_fault(route, Fault(error_rate=1.0, status=502))
    replies = [call(api, method, route, payload) for _ in range(10)]
    assert {(r.status, r.body["detail"]) for r in replies} == {(502, "injected fault")}


def test_error_rate_zero_never_fails(api: SampleAPI) -> None:
    """error_rate 0.0 never injects an error."""
    api.set_fault("/health", Fault(error_rate=0.0, status=500))
    assert {call(api, "GET", "/health").status for _ in range(20)} == {200}


def test_partial_error_rate_is_reproducible_with_a_seed() -> None:
    """Two servers with the same seed fail the same requests, and some but not all."""
    sequences = []
    for _ in range(2):
        with SampleAPI(seed=7, faults={"/health": Fault(error_rate=0.5)}) as server:
            sequences.append([call(server, "GET", "/health").status for _ in range(30)])
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 503}


def test_wildcard_fault_applies_to_every_public_route(api: SampleAPI) -> None:
    """A fault on "*" hits every public route but not the admin API."""
    api.set_fault("*", Fault(error_rate=1.0, status=500))
    assert [call(api, m, r, p).status for r, m, p in ROUTE_CALLS] == [500, 500, 500]
    assert call(api, "GET", "/_admin/stats").status == 200


def test_route_fault_overrides_wildcard(api: SampleAPI) -> None:
    """A route's own fault wins over the "*" one."""
    api.set_fault("*", Fault(error_rate=1.0, status=500))
    api.set_fault("/health", Fault(error_rate=0.0))
    assert call(api, "GET", "/health").status == 200


def test_clear_faults_restores_normal_answers(api: SampleAPI) -> None:
    """clear_faults() removes every fault."""
    api.set_fault("/health", Fault(error_rate=1.0))
    api.clear_faults()
    assert (call(api, "GET", "/health").status, api.faults()) == (200, {})


def test_constructor_faults_apply_from_the_start() -> None:
    """Faults given to the constructor are in force for the first request."""
    with SampleAPI(faults={"/health": Fault(error_rate=1.0, status=504)}) as server:
        assert call(server, "GET", "/health").status == 504


@pytest.mark.parametrize("delay", [0.05, 0.2], ids=["50ms", "200ms"])
def test_delay_is_respected(api: SampleAPI, delay: float) -> None:
    """A delayed route answers no sooner than the delay (and not absurdly later)."""
    api.set_fault("/health", Fault(delay=delay))
    started = time.monotonic()
    reply = call(api, "GET", "/health")
    elapsed = time.monotonic() - started
    assert reply.status == 200
    assert delay <= elapsed < delay + 1.0


def test_delay_also_applies_to_injected_errors(api: SampleAPI) -> None:
    """An injected error is answered after the delay too."""
    api.set_fault("/health", Fault(error_rate=1.0, delay=0.1))
    started = time.monotonic()
    assert call(api, "GET", "/health").status == 503
    assert time.monotonic() - started >= 0.1


def test_set_fault_rejects_unknown_route(api: SampleAPI) -> None:
    """set_fault() on a route the API does not have raises ValueError."""
    with pytest.raises(ValueError, match="unknown route"):
        api.set_fault("/healthz", Fault(error_rate=1.0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_rate": -0.1},
        {"error_rate": 1.5},
        {"status": 200},
        {"status": 600},
        {"delay": -1.0},
        {"delay": float("inf")},
        {"error_rate": float("nan")},
    ],
    ids=[
        "rate-negative",
        "rate-above-1",
        "status-2xx",
        "status-600",
        "delay-negative",
        "delay-infinite",
        "rate-nan",
    ],
)
def test_fault_rejects_invalid_values(kwargs: dict[str, float]) -> None:
    """Out-of-range fault values raise ValueError at construction."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        Fault(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/health:error_rate=1,status=503,delay=0.2", ("/health", Fault(1.0, 503, 0.2))),
        ("/api/chat/message:delay=0.05", ("/api/chat/message", Fault(delay=0.05))),
        ("*:error_rate=0.25", ("*", Fault(error_rate=0.25))),
        ("/api/auth/login:", ("/api/auth/login", Fault())),
    ],
    ids=["all-keys", "delay-only", "wildcard", "no-keys"],
)
def test_parse_fault_spec_reads_cli_specs(spec: str, expected: tuple[str, Fault]) -> None:
    """`ROUTE:key=value,...` parses into the route and its Fault."""
    assert parse_fault_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "/health",
        "/nope:error_rate=1",
        "/health:error_rate=2",
        "/health:bogus=1",
        "/health:status=abc",
        "/health:delay",
    ],
    ids=[
        "no-colon",
        "unknown-route",
        "rate-out-of-range",
        "unknown-key",
        "non-numeric",
        "no-value",
    ],
)
def test_parse_fault_spec_rejects_bad_specs(spec: str) -> None:
    """Unreadable fault specs raise ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by mistake
        parse_fault_spec(spec)


# ------------------------------------------------------------------- admin


def test_admin_put_fault_sets_it(api: SampleAPI) -> None:
    """PUT /_admin/faults sets a route's fault, visible in requests and stats."""
    fault = {"route": "/health", "error_rate": 1.0, "status": 503, "delay": 0.0}
    assert call(api, "PUT", "/_admin/faults", fault).status == 200
    assert call(api, "GET", "/health").status == 503
    stats = call(api, "GET", "/_admin/stats").body
    assert stats["faults"] == {"/health": {"error_rate": 1.0, "status": 503, "delay": 0.0}}


def test_admin_delete_faults_clears_them(api: SampleAPI) -> None:
    """DELETE /_admin/faults removes every fault."""
    api.set_fault("*", Fault(error_rate=1.0))
    assert call(api, "DELETE", "/_admin/faults").status == 200
    assert call(api, "GET", "/health").status == 200


@pytest.mark.parametrize(
    "payload",
    [
        {"route": "/nope", "error_rate": 1.0},
        {"route": "/health", "error_rate": 2},
        {"route": "/health", "status": "503"},
        {"route": "/health", "colour": "red"},
        {"error_rate": 1.0},
        [1, 2],
    ],
    ids=[
        "unknown-route",
        "rate-out-of-range",
        "status-string",
        "unknown-field",
        "no-route",
        "not-an-object",
    ],
)
def test_admin_put_invalid_fault_is_422(api: SampleAPI, payload: object) -> None:
    """An invalid fault is refused with 422 and nothing changes."""
    reply = call(api, "PUT", "/_admin/faults", payload)
    assert reply.status == 422
    assert api.faults() == {}


def test_admin_stats_counts_public_requests_only(api: SampleAPI) -> None:
    """Stats count requests per public route, not admin or unknown paths."""
    call(api, "GET", "/health")
    call(api, "GET", "/health")
    call(api, "POST", "/api/auth/login", CREDENTIALS)
    call(api, "GET", "/nope")
    call(api, "GET", "/_admin/stats")
    expected = {"/health": 2, "/api/auth/login": 1, "/api/chat/message": 0}
    assert call(api, "GET", "/_admin/stats").body["requests"] == expected
    assert api.stats() == expected


def test_admin_reset_zeroes_counters(api: SampleAPI) -> None:
    """POST /_admin/reset sets every counter back to 0."""
    call(api, "GET", "/health")
    assert call(api, "POST", "/_admin/reset").status == 200
    assert set(api.stats().values()) == {0}


# -------------------------------------------------------------- HTTP plumbing


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health"), ("GET", "/nope"), ("POST", "/api/chat/message"), ("PUT", "/health")],
    ids=["ok", "not-found", "unauthorized", "method-not-allowed"],
)
def test_request_id_is_echoed(api: SampleAPI, method: str, path: str) -> None:
    """Every response carries the request's X-Request-ID back."""
    reply = call(api, method, path, headers={"X-Request-ID": "req-42"})
    assert reply.headers["X-Request-ID"] == "req-42"


def test_keep_alive_serves_two_requests_on_one_connection(api: SampleAPI) -> None:
    """HTTP/1.1 keep-alive: the second request reuses the first one's socket."""
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)) as conn:
        conn.request("GET", "/health")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", "/health")
        second = conn.getresponse()
        second.read()
        assert (first.status, second.status) == (200, 200)
        assert sock is not None
        assert conn.sock is sock
        assert not second.will_close


def test_chunked_request_body_is_accepted(api: SampleAPI) -> None:
    """A chunked login body is read like a sized one."""
    chunks = [b'{"email": "probe@example.com", ', b'"password": "demo-password"}']
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)) as conn:
        conn.request(
            "POST",
            "/api/auth/login",
            body=iter(chunks),
            encode_chunked=True,
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
    assert response.status == 200


def test_oversized_body_is_413_and_closes(api: SampleAPI) -> None:
    """A body declared over the limit is refused with 413 before it is read."""
    request = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
    assert response.status == 413
    assert response.will_close


# --------------------------------------------------------------- life cycle


def test_url_and_port_describe_the_bound_socket(api: SampleAPI) -> None:
    """`url` is http://127.0.0.1:PORT with the real port picked for port 0."""
    assert api.port > 0
    assert api.url == f"http://127.0.0.1:{api.port}"


def test_port_before_start_raises() -> None:
    """An unstarted server has no port yet."""
    with pytest.raises(RuntimeError):
        _ = SampleAPI().port


def test_start_twice_raises(api: SampleAPI) -> None:
    """A server starts once."""
    with pytest.raises(RuntimeError):
        api.start()


def test_stop_refuses_new_connections() -> None:
    """After stop() the port no longer accepts connections."""
    server = SampleAPI().start()
    port = server.port
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def get_health(conn: http.client.HTTPConnection) -> int:
    """GET /health on an existing connection; the status."""
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    return response.status


def test_stop_closes_idle_keep_alive_connections() -> None:
    """stop() also ends connections kept alive by clients."""
    server = SampleAPI().start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    with contextlib.closing(conn):
        assert get_health(conn) == 200
        server.stop()
        with pytest.raises((http.client.HTTPException, OSError)):
            get_health(conn)


# --------------------------------------------------------------------- CLI


def run_cli_env() -> dict[str, str]:
    """The environment for `python -m prober.demo`, with the project importable."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    """The process's next stdout line, or "" if it ends or the deadline passes first."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if selector.select(timeout=remaining):
                return proc.stdout.readline()
    return ""


@contextlib.contextmanager
def cli_server(*flags: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `python -m prober.demo --port 0 FLAGS`; yield the process and its URL."""
    command = [sys.executable, "-m", "prober.demo", "--port", "0", *flags]
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=run_cli_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            line = read_line(proc, time.monotonic() + STARTUP_DEADLINE)
            prefix = "sample API listening on "
            assert line.startswith(prefix), f"no ready line, got {line!r}"
            yield proc, line.removeprefix(prefix).strip()
        finally:
            if proc.poll() is None:
                proc.kill()


def get_status(url: str) -> int:
    """GET /health at a base URL on a fresh connection; the status."""
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    with contextlib.closing(conn):
        return get_health(conn)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_and_exits_0_on_signal(signum: signal.Signals) -> None:
    """`python -m prober.demo` prints its ready line, serves, and exits 0 on the signal."""
    with cli_server() as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        assert get_status(url) == 200
        proc.send_signal(signum)
        assert proc.wait(timeout=STARTUP_DEADLINE) == 0


def test_cli_fault_flag_injects_the_fault() -> None:
    """--fault sets a fault from the start."""
    with cli_server("--fault", "/health:error_rate=1,status=500") as (proc, url):
        assert get_status(url) == 500
        proc.terminate()
        assert proc.wait(timeout=STARTUP_DEADLINE) == 0


@pytest.mark.parametrize(
    "spec",
    ["health", "/nope:error_rate=1", "/health:error_rate=7", "/health:speed=1"],
    ids=["no-colon", "unknown-route", "rate-out-of-range", "unknown-key"],
)
def test_cli_bad_fault_exits_2(spec: str) -> None:
    """An unreadable --fault is reported on stderr and exits 2 without serving."""
    result = subprocess.run(
        [sys.executable, "-m", "prober.demo", "--port", "0", "--fault", spec],
        cwd=ROOT,
        env=run_cli_env(),
        capture_output=True,
        text=True,
        timeout=STARTUP_DEADLINE,
        check=False,
    )
    assert result.returncode == 2
    assert "--fault" in result.stderr
    assert result.stdout == ""
