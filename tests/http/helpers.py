"""Loopback servers for the HTTP layer's tests.

`RawServer` is a threaded raw-socket HTTP/1.1 server on 127.0.0.1 with a port picked by
the OS. It parses each request (request line, headers, Content-Length body) and hands it
to a *behaviour*: a callable that writes whatever bytes it likes to the connection and
says whether to keep the connection for another request. Connections are kept alive
between requests, so keep-alive reuse can be observed. Every thread catches its own
errors (pytest turns unhandled thread exceptions into failures) and every socket is
closed on exit (ResourceWarnings are errors too).

`TlsServer` is the standard library's `ThreadingHTTPServer` wrapped in `ssl`, for the
TLS tests, with a certificate issued by a `trustme.CA`.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

POLL = 0.02  # seconds; how often blocked server threads look at the stop flag
KEEP = True
CLOSE = False


@dataclass
class Received:
    """One parsed request as the server saw it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Connection:
    """The server's side of one accepted connection."""

    sock: socket.socket
    server: RawServer
    bytes_sent: int = 0
    finished: threading.Event = field(default_factory=threading.Event)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.bytes_sent += len(data)

    def wait(self, seconds: float) -> None:
        """Block for `seconds` or until the server stops, whichever is first."""
        self.server.stopping.wait(seconds)

    def reset(self) -> None:
        """Close with SO_LINGER 0: the peer gets a TCP RST, not a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Behaviour = Callable[[Connection, Received], bool]


class RawServer:
    """`with RawServer(behaviour) as server:` serves on `server.url(path)` until exit."""

    def __init__(
        self, behaviour: Behaviour, *, on_accept: Callable[[Connection], bool] | None = None
    ):
        self.behaviour = behaviour
        self.on_accept = on_accept  # return False to stop before reading any request
        self.stopping = threading.Event()
        self.received: list[Received] = []
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(POLL)
        self.port: int = self._listener.getsockname()[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._start(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        for thread in list(self._threads):
            thread.join(timeout=10)
        self._listener.close()
        for connection in self.connections:
            connection.sock.close()

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection = Connection(sock, self)
            with self._lock:
                self.connections.append(connection)
            self._start(self._serve, connection)

    def _serve(self, connection: Connection) -> None:
        sock = connection.sock
        try:
            sock.settimeout(POLL)
            if self.on_accept is not None and not self.on_accept(connection):
                return
            buffer = b""
            while not self.stopping.is_set():
                request, buffer = self._read_request(sock, buffer)
                if request is None:
                    return
                with self._lock:
                    self.received.append(request)
                if not self.behaviour(connection, request):
                    return
        except OSError:
            return  # the client went away (reset, broken pipe): part of the game
        finally:
            sock.close()
            connection.finished.set()

    def _read_request(self, sock: socket.socket, buffer: bytes) -> tuple[Received | None, bytes]:
        while b"\r\n\r\n" not in buffer:
            chunk = self._recv(sock)
            if not chunk:
                return None, b""
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(buffer) < length:
            chunk = self._recv(sock)
            if not chunk:
                return None, b""
            buffer += chunk
        body, buffer = buffer[:length], buffer[length:]
        return Received(method, target, headers, body), buffer

    def _recv(self, sock: socket.socket) -> bytes:
        while not self.stopping.is_set():
            try:
                return sock.recv(65536)
            except TimeoutError:
                continue
        return b""


# --- behaviours -------------------------------------------------------------------------


def response(
    status: int = 200,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response with an honest Content-Length."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def fixed(raw: bytes, *, delay: float = 0.0) -> Behaviour:
    """Answer every request with `raw`, after `delay` seconds; keep the connection."""

    def behaviour(connection: Connection, request: Received) -> bool:
        if delay:
            time.sleep(delay)  # the delay under test, not synchronisation
        connection.send(raw)
        return KEEP

    return behaviour


def routes(table: dict[str, bytes]) -> Behaviour:
    """Answer by request path (query ignored); 404 for anything else."""

    def behaviour(connection: Connection, request: Received) -> bool:
        path = request.target.partition("?")[0]
        connection.send(table.get(path, response(404)))
        return KEEP

    return behaviour


def redirect_loop(connection: Connection, request: Received) -> bool:
    """302 back to the very same target, forever."""
    connection.send(response(302, headers=(("Location", request.target),)))
    return KEEP


def reset_after_request(connection: Connection, request: Received) -> bool:
    """Read the request, then reset the connection without answering."""
    connection.reset()
    return CLOSE


def close_after_request(connection: Connection, request: Received) -> bool:
    """Read the request, then close cleanly (FIN) without answering."""
    return CLOSE


def reset_before_reading(connection: Connection) -> bool:
    """Reset the connection once the request has arrived, without reading any of it.

    Not straight after accept(): the kernel completes the handshake before accept(), so
    an immediate RST races the client's own connect() and, on a busy machine, reaches it
    as `ECONNRESET` from connect itself ("Connect call failed"): a `connect` failure.
    Waiting (MSG_PEEK) for the first request byte proves the client's connect is done.
    """
    while not connection.server.stopping.is_set():
        try:
            if connection.sock.recv(1, socket.MSG_PEEK):
                break
        except TimeoutError:
            continue
    connection.reset()
    return False


def stall_before_headers(connection: Connection, request: Received) -> bool:
    """Read the request and never answer (until the server stops)."""
    connection.wait(60)
    return CLOSE


def stall_after_headers(connection: Connection, request: Received) -> bool:
    """Send headers and part of the body, then stall (until the server stops)."""
    connection.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
    connection.wait(60)
    return CLOSE


HUGE = 256 * 1024 * 1024  # bytes a huge body would have; nobody should read them all
_CHUNK = b"x" * 65536


def huge_body(framing: str) -> Behaviour:
    """Send a 256 MiB body framed by `content-length`, `chunked` or `close`, stopping as
    soon as the client hangs up."""

    heads = {
        "content-length": f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n",
        "chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "close": "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    }

    def behaviour(connection: Connection, request: Received) -> bool:
        connection.sock.settimeout(10)
        connection.send(heads[framing].encode())
        chunk = b"%x\r\n%s\r\n" % (len(_CHUNK), _CHUNK) if framing == "chunked" else _CHUNK
        sent = 0
        while sent < HUGE and not connection.server.stopping.is_set():
            connection.send(chunk)  # raises once the client has closed: the thread ends
            sent += len(_CHUNK)
        return CLOSE

    return behaviour


# --- helpers ----------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], deadline: float = 10.0) -> bool:
    """Poll `predicate` until it is true or `deadline` seconds have passed."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(POLL)
    return predicate()


@contextlib.contextmanager
def unused_port() -> Iterator[int]:
    """A loopback port reserved for the duration but not listening: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        body = b"secure"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TlsHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that reject our certificate hang up mid-handshake: expected


@contextlib.contextmanager
def tls_server(cert: Any) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 presenting `cert` (a trustme LeafCert); yields the port.
    The handshake runs in the handler thread, so a client that rejects the certificate
    cannot block the accept loop."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server = _TlsHttpServer(("127.0.0.1", 0), _QuietHandler)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
