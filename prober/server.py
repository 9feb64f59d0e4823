"""HTTP endpoints on the standard library's threading server (no web framework):

    GET /metrics      Prometheus exposition; OpenMetrics when the scraper asks for it
    GET /healthz      200 while the process is alive
    GET /readyz       200 once the config is loaded and every journey ran once, else 503
    GET /api/status   JSON: every journey's last run, percentiles, success ratio
    GET /             a status page a person can read

Handlers run in the server's threads and read only the registry (thread-safe) and the
status board's frozen snapshot.

**The endpoints cannot take the prober down** (what Prometheus does with
`--web.max-connections` and `--web.read-timeout`):

- at most `max_connections` connections at once (default `DEFAULT_MAX_CONNECTIONS`,
  `--max-connections`), one thread each; a connection beyond the cap is closed at once,
  so idle or slow clients cannot pile up threads and memory;
- every request head must arrive within `read_timeout` (default `DEFAULT_READ_TIMEOUT`,
  `--read-timeout`) of the connection becoming ready for it, counted from the first byte
  *awaited*, not the last received: a client trickling one byte at a time (slowloris), or
  holding a keep-alive connection idle, is closed when it runs out;
- `/metrics`, `/api/status` and `/` are rendered at most once per `RENDER_INTERVAL` per
  format (text vs OpenMetrics) and shared: concurrent scrapers wait for the render in
  progress and all get it, so a hundred scrapers cost one render;
- serving each of those pages (rendering it or not, and writing it out) is reported
  (`on_busy(started, ended)`, monotonic seconds) to the daemon's lag monitor: it takes the
  prober's CPU and interpreter lock, and a run measured meanwhile is marked `lag_affected`
  rather than its delay blamed on the API. `/healthz` and `/readyz` are too small to count.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from prober.redaction import redact

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_READ_TIMEOUT",
    "RENDER_INTERVAL",
    "RenderCache",
    "StatusServer",
    "parse_listen",
]

#: Connections served at once; Prometheus' default is 512, but prober's endpoints have a
#: handful of scrapers and people, and each connection is a thread sharing the prober's CPU.
DEFAULT_MAX_CONNECTIONS = 64
#: Seconds a connection has to deliver each request head (and for each write).
DEFAULT_READ_TIMEOUT = 10.0
#: Seconds a rendered page is shared before the next request renders it again.
RENDER_INTERVAL = 1.0


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `[::1]:PORT`. A host that looks like an address must be one
    (`256.1.1.1` is refused here, not looked up as a name)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT with a port 0-65535, got {listen!r}")
    host = host.strip("[]") or "0.0.0.0"
    if ":" in host or host.replace(".", "").isdigit():
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host} is not an IP address (in {listen!r})") from None
    return host, int(port)


class RenderCache:
    """Renders each key at most once per `interval`; callers asking while a key is being
    rendered wait for that render and share it."""

    def __init__(
        self, *, interval: float = RENDER_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._entries: dict[str, tuple[float, bytes]] = {}

    def get(self, key: str, render: Callable[[], bytes]) -> bytes:
        return self.fetch(key, render)[0]

    def fetch(self, key: str, render: Callable[[], bytes]) -> tuple[bytes, bool]:
        """The page for `key`, and whether this call rendered it."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            entry = self._entries.get(key)
            now = self._clock()
            if entry is not None and now - entry[0] < self.interval:
                return entry[1], False
            body = render()
            self._entries[key] = (now, body)
            return body, True


#: The endpoints whose answers are rendered pages (shared, and reported as busy time).
_PAGES = frozenset({"/metrics", "/api/status", "/"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: StatusServer) -> None:
        self.app = app
        self._slots = threading.BoundedSemaphore(app.max_connections)
        self._open = 0
        self._count_lock = threading.Lock()
        #: Connections waiting for a request head, and when they run out of time.
        self.deadlines: dict[socket.socket, float] = {}
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the bind address; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def open_connections(self) -> int:
        return self._open

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed at once, no thread
            return
        with self._count_lock:
            self._open += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.deadlines.pop(request, None)
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self._open -= 1
        self._slots.release()

    def service_actions(self) -> None:
        """Called by serve_forever every poll: close connections past their deadline (the
        handler's blocked read then returns, and its thread ends)."""
        now = time.monotonic()
        for sock, deadline in list(self.deadlines.items()):
            if now >= deadline:
                self.deadlines.pop(sock, None)
                with contextlib.suppress(OSError):  # the client closed it meanwhile
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        # StreamRequestHandler.setup applies `timeout` to the socket: each read and write.
        self.timeout = self.server.app.read_timeout  # type: ignore[misc]
        super().setup()

    def handle_one_request(self) -> None:
        # The whole head must arrive by the deadline, however slowly it trickles in.
        self.server.deadlines[self.connection] = time.monotonic() + self.server.app.read_timeout
        try:
            super().handle_one_request()
        finally:
            self.server.deadlines.pop(self.connection, None)

    def do_GET(self) -> None:
        self.server.deadlines.pop(self.connection, None)  # the head is in: now the answer
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path in _PAGES:
            # Rendering and writing out a page (megabytes of exposition) take the prober's
            # CPU and interpreter lock: runs measured meanwhile are marked lag_affected.
            started = time.monotonic()
            try:
                self._page(app, path)
            finally:
                app.busy(started, time.monotonic())
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/readyz":
            ready = app.ready()
            self._send(
                200 if ready else 503,
                "text/plain; charset=utf-8",
                b"ready\n" if ready else b"not ready: waiting for the first run of every journey\n",
            )
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _page(self, app: StatusServer, path: str) -> None:
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            body = app.render(f"/metrics {content_type}", lambda: encoder(app.registry))
            self._send(200, content_type, body)
        elif path == "/api/status":
            body = app.render(path, lambda: redact(json.dumps(app.status(), indent=2)).encode())
            self._send(200, "application/json", body)
        else:
            body = app.render(path, lambda: app.page().encode())
            self._send(200, "text/html; charset=utf-8", body)

    def do_HEAD(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StatusServer:
    """Serves the endpoints from a background thread."""

    def __init__(
        self,
        listen: tuple[str, int],
        registry: CollectorRegistry,
        *,
        ready: Callable[[], bool],
        status: Callable[[], dict[str, Any]],
        page: Callable[[], str],
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        on_busy: Callable[[float, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.ready = ready
        self.status = status
        self.page = page
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self._cache = RenderCache(clock=clock)
        self._on_busy = on_busy
        self._server = _Server(listen, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": min(0.5, read_timeout / 4)},
            name="prober-http",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def open_connections(self) -> int:
        """Connections being served now (at most `max_connections`)."""
        return self._server.open_connections

    def render(self, key: str, render: Callable[[], bytes]) -> bytes:
        """The shared page for `key` (see `RenderCache`)."""
        return self._cache.get(key, render)

    def busy(self, started: float, ended: float) -> None:
        """Report time spent serving a page (monotonic seconds) to `on_busy`."""
        if self._on_busy is not None:
            self._on_busy(started, ended)

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; also for a server never started."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
