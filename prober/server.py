"""HTTP endpoints on the standard library's threading server (no web framework):

    GET /metrics      Prometheus exposition; OpenMetrics when the scraper asks for it
    GET /healthz      200 while the process is alive
    GET /readyz       200 once the config is loaded and every journey ran once, else 503
    GET /api/status   JSON: every journey's last run, percentiles, success ratio
    GET /             a status page a person can read

Handlers run in the server's threads and read only the registry (thread-safe) and the
status board's frozen snapshot.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from prober.redaction import redact

__all__ = ["StatusServer", "parse_listen"]


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `[::1]:PORT`."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: StatusServer) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the bind address; skip it.
        import socketserver

        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, content_type, encoder(app.registry))
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/readyz":
            ready = app.ready()
            self._send(
                200 if ready else 503,
                "text/plain; charset=utf-8",
                b"ready\n" if ready else b"not ready: waiting for the first run of every journey\n",
            )
        elif path == "/api/status":
            body = redact(json.dumps(app.status(), indent=2)).encode()
            self._send(200, "application/json", body)
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", app.page().encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

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
    ) -> None:
        self.registry = registry
        self.ready = ready
        self.status = status
        self.page = page
        self._server = _Server(listen, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="prober-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
