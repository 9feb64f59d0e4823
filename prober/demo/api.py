"""The bundled sample API: a loopback stand-in for the "Mirror Collective API".

It is the target of prober's demos, integration tests and benchmarks, so it is
built for being started and stopped often and for being hammered, not for
features. It mimics a FastAPI service closely enough for journeys written
against the real one to run unchanged:

    GET  /health               200 {"status": "ok", "version": "1.4.2"}
    POST /api/auth/login       {"email", "password"} -> a bearer token (400 malformed, 401 wrong)
    POST /api/chat/message     Bearer token + {"message"} -> {"reply", "usage"} (401, 422)

plus admin routes under `/_admin/` (stats, faults, reset) that are never counted
and never faulted. Unknown paths answer 404 and known paths with another method
405, both as FastAPI's `{"detail": ...}`. Every response echoes `X-Request-ID`.

Decisions:

* Standard library only (`http.server.ThreadingHTTPServer`), so it starts in a
  few milliseconds and runs wherever prober does. One daemon thread per
  connection; HTTP/1.1 keep-alive; every response carries Content-Length and is
  written with a single send (buffered writer, Nagle off) so clients never wait
  on delayed ACKs.
* The listen backlog is 1024 rather than socketserver's 5, so bursts of new
  connections are queued instead of refused; the usual reverse DNS lookup of
  the bind address is skipped because it can stall start-up for seconds.
* `stop()` also shuts down idle keep-alive connections, so a stopped server
  really stops answering.
* Faults are per public route (`"*"` for all of them; a route's own fault wins):
  `delay` is applied to every request, counted from when the request was read
  and slept off just before the response is written, so the response leaves
  `delay` seconds after the request arrived; `error_rate` is the probability of
  answering `status` with `{"detail": "injected fault"}`, drawn from a
  `random.Random(seed)` so runs can be reproduced.
* Tokens are random, valid for `expiresIn` (3600 s) and remembered in a bounded
  LRU (10,000, oldest dropped first).
* Token usage is a deterministic function of text length (about 4 characters a
  token, at least 1), so tests can predict it.
* All shared state lives behind one lock; nothing is logged unless `access_log`.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import random
import secrets
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "ALL_ROUTES",
    "DEFAULT_EMAIL",
    "DEFAULT_PASSWORD",
    "DEFAULT_VERSION",
    "PUBLIC_ROUTES",
    "Fault",
    "SampleAPI",
    "parse_fault_spec",
]

DEFAULT_EMAIL: Final = "probe@example.com"
DEFAULT_PASSWORD: Final = "demo-password"
DEFAULT_VERSION: Final = "1.4.2"

HEALTH: Final = "/health"
LOGIN: Final = "/api/auth/login"
CHAT: Final = "/api/chat/message"
PUBLIC_ROUTES: Final = (HEALTH, LOGIN, CHAT)
ALL_ROUTES: Final = "*"

TOKEN_LIFETIME: Final = 3600
MAX_TOKENS: Final = 10_000
MAX_BODY_BYTES: Final = 1 << 20
# Idle keep-alive connections are dropped after this, so abandoned clients
# cannot pin handler threads forever.
IDLE_TIMEOUT: Final = 120.0
# How often the accept loop checks for shutdown: bounds how long stop() takes.
POLL_INTERVAL: Final = 0.05
_MAX_LINE: Final = 65_536


# --------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Fault:
    """What to do wrong on a route: delay every answer, and fail some of them.

    `error_rate` is a probability in [0, 1], `status` an HTTP error (400-599),
    `delay` seconds (finite, >= 0). Invalid values raise `ValueError`.
    """

    error_rate: float = 0.0
    status: int = 503
    delay: float = 0.0

    def __post_init__(self) -> None:
        # Stored as floats so `Fault(1)` and `Fault(1.0)` look alike in the admin JSON.
        object.__setattr__(self, "error_rate", float(self.error_rate))
        object.__setattr__(self, "delay", float(self.delay))
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {self.error_rate!r}")
        if not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error (400-599), got {self.status!r}")
        if not (math.isfinite(self.delay) and self.delay >= 0.0):
            raise ValueError(f"delay must be a finite number of seconds >= 0, got {self.delay!r}")

    def to_json(self) -> dict[str, float | int]:
        """The fault as the admin API shows it."""
        return {"error_rate": self.error_rate, "status": self.status, "delay": self.delay}


_FAULT_FIELDS: Final = ("error_rate", "status", "delay")


def parse_fault_spec(spec: str) -> tuple[str, Fault]:
    """`ROUTE:error_rate=1,status=503,delay=0.2` (any subset of keys) -> (route, Fault)."""
    route, colon, params = spec.partition(":")
    if not colon:
        raise ValueError(
            f"fault {spec!r}: expected ROUTE:key=value,... (keys: error_rate, status, delay)"
        )
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in params.split(","))):
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or key not in _FAULT_FIELDS:
            raise ValueError(f"fault {spec!r}: {item!r} is not one of error_rate=, status=, delay=")
        try:
            values[key] = int(text) if key == "status" else float(text)
        except ValueError:
            raise ValueError(f"fault {spec!r}: {key} has a non-numeric value {text!r}") from None
    return _check_route(route), _fault_from(values)


def _fault_from(values: Mapping[str, object]) -> Fault:
    """A Fault from loosely typed values (JSON or CLI), with type checks JSON needs."""
    unknown = set(values) - set(_FAULT_FIELDS)
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        wanted: tuple[type, ...] = (int,) if key == "status" else (int, float)
        # bool is an int subclass, but `"status": true` is surely a mistake.
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise ValueError(f"{key} must be a number, got {value!r}")
        kwargs[key] = value
    return Fault(**kwargs)


def _check_route(route: str) -> str:
    if route != ALL_ROUTES and route not in PUBLIC_ROUTES:
        choices = ", ".join((ALL_ROUTES, *PUBLIC_ROUTES))
        raise ValueError(f"unknown route {route!r}: expected one of {choices}")
    return route


# ---------------------------------------------------------------------- state


class _Admission(NamedTuple):
    """What the faults decided for one request."""

    delay: float
    fail_status: int | None


class _State:
    """Everything the handler threads share, behind one lock."""

    def __init__(
        self,
        *,
        email: str,
        password: str,
        version: str,
        faults: Mapping[str, Fault] | None,
        seed: int | None,
    ) -> None:
        self.version = version
        self._email = email.encode()
        self._password = password.encode()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._counts = dict.fromkeys(PUBLIC_ROUTES, 0)
        self._faults: dict[str, Fault] = {}
        self._tokens: OrderedDict[str, float] = OrderedDict()
        for route, fault in (faults or {}).items():
            self.set_fault(route, fault)

    def check_credentials(self, email: str, password: str) -> bool:
        # Constant-time, and both compared, so timing does not tell which was wrong.
        email_ok = hmac.compare_digest(email.encode(), self._email)
        password_ok = hmac.compare_digest(password.encode(), self._password)
        return email_ok and password_ok

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + TOKEN_LIFETIME
            while len(self._tokens) > MAX_TOKENS:
                self._tokens.popitem(last=False)
        return token

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and time.monotonic() < expires

    def count(self, route: str) -> None:
        with self._lock:
            self._counts[route] += 1

    def admit(self, route: str) -> _Admission:
        """Apply the route's fault (or the `*` one): the delay, and whether to fail."""
        with self._lock:
            fault = self._faults.get(route) or self._faults.get(ALL_ROUTES)
            if fault is None:
                return _Admission(0.0, None)
            # Only draw for rates strictly between 0 and 1, so 0 and 1 are exact
            # and do not shift the seeded sequence of other routes.
            if fault.error_rate >= 1.0:
                failed = True
            elif fault.error_rate <= 0.0:
                failed = False
            else:
                failed = self._rng.random() < fault.error_rate
        return _Admission(fault.delay, fault.status if failed else None)

    def set_fault(self, route: str, fault: Fault) -> None:
        _check_route(route)
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        with self._lock:
            self._faults[route] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> dict[str, Fault]:
        with self._lock:
            return dict(self._faults)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(PUBLIC_ROUTES, 0)


# ----------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class _Request:
    body: bytes
    authorization: str | None


@dataclass(frozen=True)
class _Response:
    status: int
    payload: object
    headers: Mapping[str, str] = field(default_factory=dict)


_Endpoint = Callable[[_State, _Request], _Response]

_NOT_FOUND: Final = _Response(404, {"detail": "Not Found"})
_INTERNAL_ERROR: Final = _Response(500, {"detail": "Internal Server Error"})
_INJECTED_DETAIL: Final = "injected fault"
_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}


def _json_body(body: bytes) -> object:
    """The decoded JSON body; raises ValueError when it is not JSON."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _validation_error(kind: str, loc: list[str], msg: str, value: object) -> _Response:
    """A 422 shaped like FastAPI's RequestValidationError."""
    return _Response(422, {"detail": [{"type": kind, "loc": loc, "msg": msg, "input": value}]})


def _count_tokens(text: str) -> int:
    # The usual rule of thumb (about 4 characters a token), never 0.
    return max(1, math.ceil(len(text) / 4))


def _health(state: _State, request: _Request) -> _Response:
    return _Response(200, {"status": "ok", "version": state.version})


def _login(state: _State, request: _Request) -> _Response:
    try:
        payload = _json_body(request.body)
    except ValueError:
        payload = None
    email = payload.get("email") if isinstance(payload, dict) else None
    password = payload.get("password") if isinstance(payload, dict) else None
    if not (isinstance(email, str) and isinstance(password, str)):
        error = "malformed request: email and password required"
        return _Response(400, {"success": False, "error": error})
    if not state.check_credentials(email, password):
        return _Response(401, {"success": False, "error": "invalid credentials"})
    session = {"accessToken": state.issue_token(), "expiresIn": TOKEN_LIFETIME}
    return _Response(200, {"success": True, "data": {"user": {"email": email}, "session": session}})


def _bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _chat(state: _State, request: _Request) -> _Response:
    # Authentication first, like FastAPI's security dependencies.
    token = _bearer_token(request.authorization)
    if token is None:
        return _Response(401, {"detail": "Not authenticated"}, _CHALLENGE)
    if not state.token_valid(token):
        return _Response(401, {"detail": "Invalid or expired token"}, _CHALLENGE)
    try:
        payload = _json_body(request.body) if request.body else None
    except ValueError:
        return _validation_error("json_invalid", ["body"], "JSON decode error", {})
    if payload is None:
        return _validation_error("missing", ["body"], "Field required", None)
    if not isinstance(payload, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return _validation_error("model_attributes_type", ["body"], msg, payload)
    if "message" not in payload:
        return _validation_error("missing", ["body", "message"], "Field required", payload)
    message = payload["message"]
    if not isinstance(message, str):
        msg = "Input should be a valid string"
        return _validation_error("string_type", ["body", "message"], msg, message)
    reply = f"Mirror says: {message}"
    prompt, completion = _count_tokens(message), _count_tokens(reply)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return _Response(200, {"reply": reply, "usage": usage})


def _admin_stats(state: _State, request: _Request) -> _Response:
    faults = {route: fault.to_json() for route, fault in state.faults().items()}
    return _Response(200, {"requests": state.counts(), "faults": faults})


def _admin_set_fault(state: _State, request: _Request) -> _Response:
    try:
        payload = _json_body(request.body)
        if not isinstance(payload, dict) or not isinstance(payload.get("route"), str):
            raise ValueError('expected a JSON object with "route" and fault fields')
        values = dict(payload)
        route = _check_route(values.pop("route"))
        state.set_fault(route, _fault_from(values))
    except ValueError as exc:
        return _Response(422, {"detail": str(exc)})
    return _admin_stats(state, request)


def _admin_clear_faults(state: _State, request: _Request) -> _Response:
    state.clear_faults()
    return _admin_stats(state, request)


def _admin_reset(state: _State, request: _Request) -> _Response:
    state.reset_counts()
    return _admin_stats(state, request)


_PUBLIC_ENDPOINTS: Final[Mapping[str, Mapping[str, _Endpoint]]] = {
    HEALTH: {"GET": _health},
    LOGIN: {"POST": _login},
    CHAT: {"POST": _chat},
}
_ADMIN_ENDPOINTS: Final[Mapping[str, Mapping[str, _Endpoint]]] = {
    "/_admin/stats": {"GET": _admin_stats},
    "/_admin/faults": {"PUT": _admin_set_fault, "DELETE": _admin_clear_faults},
    "/_admin/reset": {"POST": _admin_reset},
}


def _method_not_allowed(endpoints: Mapping[str, _Endpoint]) -> _Response:
    return _Response(405, {"detail": "Method Not Allowed"}, {"Allow": ", ".join(sorted(endpoints))})


# ---------------------------------------------------------------------- HTTP


class _BodyError(Exception):
    """The request body cannot be read; answer `response` and drop the connection."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.response = _Response(status, {"detail": detail})


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "prober-sample-api"
    timeout = IDLE_TIMEOUT
    # Buffer the response so headers and body leave in one send (flushed by
    # handle_one_request), and turn off Nagle: together they keep small
    # responses from waiting on the client's delayed ACK.
    wbufsize = -1
    disable_nagle_algorithm = True

    @property
    def _server(self) -> _Server:
        assert isinstance(self.server, _Server)
        return self.server

    def setup(self) -> None:
        super().setup()
        self._server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server.untrack(self.connection)

    def handle_expect_100(self) -> bool:
        accepted = super().handle_expect_100()
        self.wfile.flush()  # the buffered writer would otherwise hold "100 Continue" back
        return accepted

    def version_string(self) -> str:
        return self.server_version  # without the Python version the base class appends

    def log_message(self, format: str, *args: Any) -> None:
        if self._server.access_log:
            super().log_message(format, *args)

    # BaseHTTPRequestHandler looks up do_<METHOD>; every method goes through the
    # router so that known paths answer 405 rather than the base class's 501.
    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._write(exc.response, self._encode(exc.response))
            return
        received = time.monotonic()
        request = _Request(body=body, authorization=self.headers.get("Authorization"))
        try:
            response, delay = self._route(request)
        except Exception:  # a bug here must not kill the connection silently
            traceback.print_exc(file=sys.stderr)
            response, delay = _INTERNAL_ERROR, 0.0
        encoded = self._encode(response)
        # Sleep off whatever the fault's delay has left, so the response leaves
        # `delay` after the request was read, however long handling took.
        remaining = received + delay - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        self._write(response, encoded)

    def _route(self, request: _Request) -> tuple[_Response, float]:
        path = urlsplit(self.path).path
        state = self._server.state
        if path in _ADMIN_ENDPOINTS:
            return self._call(_ADMIN_ENDPOINTS[path], request), 0.0
        endpoints = _PUBLIC_ENDPOINTS.get(path)
        if endpoints is None:
            return _NOT_FOUND, 0.0
        state.count(path)
        if self.command not in endpoints:
            return _method_not_allowed(endpoints), 0.0
        admission = state.admit(path)
        if admission.fail_status is not None:
            return _Response(admission.fail_status, {"detail": _INJECTED_DETAIL}), admission.delay
        return endpoints[self.command](state, request), admission.delay

    def _call(self, endpoints: Mapping[str, _Endpoint], request: _Request) -> _Response:
        endpoint = endpoints.get(self.command)
        if endpoint is None:
            return _method_not_allowed(endpoints)
        return endpoint(self._server.state, request)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        try:
            length = int(declared)
        except ValueError:
            raise _BodyError(400, "invalid Content-Length") from None
        if length < 0:
            raise _BodyError(400, "invalid Content-Length")
        if length > MAX_BODY_BYTES:
            raise _BodyError(413, "request body too large")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BodyError(400, "request body shorter than Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(_MAX_LINE).split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(400, "invalid chunked encoding") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(413, "request body too large")
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(_MAX_LINE).strip():
                raise _BodyError(400, "invalid chunked encoding")
            chunks.append(chunk)
        # Trailers, if any, end with an empty line (or the peer went away).
        while self.rfile.readline(_MAX_LINE).strip():
            pass
        return b"".join(chunks)

    @staticmethod
    def _encode(response: _Response) -> bytes:
        # FastAPI's JSONResponse rendering: compact, UTF-8, not ASCII-escaped.
        return json.dumps(response.payload, ensure_ascii=False, separators=(",", ":")).encode()

    def _write(self, response: _Response, body: bytes) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        request_id = self.headers.get("X-Request-ID")
        if request_id and "\r" not in request_id and "\n" not in request_id:
            self.send_header("X-Request-ID", request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], state: _State, access_log: bool) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state = state
        self.access_log = access_log
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN (reverse DNS),
        # which can stall start-up for seconds; the numeric name is enough.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host if isinstance(host, str) else host.decode()
        self.server_port = port

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            if not self._closing:
                self._connections.add(connection)
                return
        # Accepted just as the server stopped: end it instead of serving it.
        _shutdown_socket(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Make every open connection's handler see end-of-stream and exit."""
        with self._connections_lock:
            self._closing = True
            connections = list(self._connections)
        for connection in connections:
            _shutdown_socket(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are routine under load; stay quiet.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _shutdown_socket(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        connection.shutdown(socket.SHUT_RDWR)


# ----------------------------------------------------------------- public API


class SampleAPI:
    """The sample API server: `start()` it in the background or `serve_forever()`.

    Binds on `start()`/`serve_forever()` (port 0 picks a free port, read it from
    `port`/`url` afterwards). A stopped server cannot be started again.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        email: str = DEFAULT_EMAIL,
        password: str = DEFAULT_PASSWORD,
        version: str = DEFAULT_VERSION,
        faults: Mapping[str, Fault] | None = None,
        seed: int | None = None,
        access_log: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._access_log = access_log
        self._state = _State(
            email=email, password=password, version=version, faults=faults, seed=seed
        )
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._serving = False
        self._stopped = False

    # -- addresses

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("SampleAPI is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. `http://127.0.0.1:8000`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- life cycle

    def start(self) -> SampleAPI:
        """Bind and serve from a background daemon thread; returns self."""
        server = self._claim()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"sample-api:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self, on_ready: Callable[[SampleAPI], None] | None = None) -> None:
        """Bind and serve in this thread until `stop()` (from another thread) or an exception.

        `on_ready` is called once the socket listens, before serving starts.
        KeyboardInterrupt propagates after the server is closed.
        """
        server = self._claim()
        try:
            if on_ready is not None:
                on_ready(self)
            server.serve_forever(poll_interval=POLL_INTERVAL)
        finally:
            self._close(server)

    def stop(self) -> None:
        """Stop serving, close open connections and the socket. Idempotent."""
        with self._lock:
            server, serving = self._server, self._serving
            self._serving = False
        if server is None:
            return
        if serving:
            server.shutdown()  # waits for the accept loop to exit
        self._close(server)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> SampleAPI:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- run-time control

    def set_fault(self, route: str, fault: Fault) -> None:
        """Set the fault for a public route, or `"*"` for all; ValueError for other routes."""
        self._state.set_fault(route, fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._state.clear_faults()

    def faults(self) -> dict[str, Fault]:
        """The faults in force, by route."""
        return self._state.faults()

    def stats(self) -> dict[str, int]:
        """Requests received per public route (any method, faulted ones included)."""
        return self._state.counts()

    def reset_stats(self) -> None:
        """Zero the request counters."""
        self._state.reset_counts()

    # -- internals

    def _claim(self) -> _Server:
        """Bind, once: a SampleAPI serves at most one time."""
        with self._lock:
            if self._stopped or self._server is not None:
                raise RuntimeError("SampleAPI can only be started once")
            self._server = _Server((self.host, self._requested_port), self._state, self._access_log)
            self._serving = True
            return self._server

    def _close(self, server: _Server) -> None:
        with self._lock:
            self._serving = False
            if self._stopped:
                return
            self._stopped = True
        server.close_connections()
        server.server_close()
