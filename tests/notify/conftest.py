"""Real receivers on loopback: an HTTP receiver (the webhook target and the Slack stand-in)
that records what it got and can be taken down and brought back on the same port, a real
Alertmanager (Debian package `prometheus-alertmanager`), and a real SMTP server (aiosmtpd)
with STARTTLS (a trustme certificate) and AUTH."""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port
from tests.test_daemon import http_get, wait_for


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int  # what the receiver answered
    at: float  # when it arrived (unix seconds)

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A loopback HTTP server recording every POST; answers `status` (200 by default)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.status = 200
        self.received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.status
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.time(),
                        )
                    )
                answer = b"ok" if status < 300 else b"unavailable"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """`receiver()` starts one; `receiver(start=False)` only reserves its port."""
    made: list[Receiver] = []

    def make(*, start: bool = True) -> Receiver:
        found = Receiver()
        made.append(found)
        return found.start() if start else found

    yield make
    for found in made:
        found.stop()


# ---------------------------------------------------------------------- Alertmanager


def alertmanager_binary() -> str:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("alertmanager is not installed (.ci/run installs prometheus-alertmanager)")
        pytest.skip("alertmanager is not installed: apt-get install prometheus-alertmanager")
    return binary


@dataclass
class Alertmanager:
    """A real Alertmanager on a fixed loopback port; `start()` and `stop()` at will."""

    binary: str
    port: int
    config: Path
    storage: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # independent: no gossip port to clash
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: http_get(self.url + "/-/ready")[0] == 200, "Alertmanager to be ready")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def alerts(self) -> list[dict[str, Any]]:
        """`GET /api/v2/alerts`: the active alerts ([] while it is down)."""
        code, body, _ = http_get(self.url + "/api/v2/alerts")
        return json.loads(body) if code == 200 else []


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    """`alertmanager(hook=URL)` starts a real Alertmanager on a free loopback port that
    notifies `hook` (send_resolved, each alert its own group, no waiting); `start=False`
    only reserves the port (call `.start()` later)."""
    binary = alertmanager_binary()
    made: list[Alertmanager] = []

    def make(*, hook: str | None = None, start: bool = True) -> Alertmanager:
        port = free_port()
        found = Alertmanager(
            binary,
            port,
            tmp_path / f"alertmanager-{port}.yml",
            tmp_path / f"alertmanager-{port}",
            tmp_path / f"alertmanager-{port}.log",
        )
        made.append(found)
        receiver = (
            f"{{name: hook, webhook_configs: [{{url: '{hook}', send_resolved: true}}]}}"
            if hook
            else "{name: hook}"
        )
        found.config.write_text(
            "route: {receiver: hook, group_by: ['...'], group_wait: 0s, group_interval: 1s,"
            " repeat_interval: 1h}\n"
            f"receivers: [{receiver}]\n"
        )
        return found.start() if start else found

    yield make
    for found in made:
        found.stop()


# ---------------------------------------------------------------------- SMTP


@dataclass
class SmtpServer:
    host: str
    port: int
    ca_file: str
    username: str
    password: str
    messages: list[EmailMessage]
    refused_logins: list[str]


class _Handler:
    def __init__(self, messages: list[EmailMessage]) -> None:
        self.messages = messages

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """aiosmtpd on loopback: STARTTLS required (a trustme certificate for 127.0.0.1), AUTH
    required (user `prober`, a password the test must never see leak)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = SmtpServer(
        "127.0.0.1", free_port(), str(ca_file), "prober", "s3cret-smtp-Pa55", [], []
    )

    def authenticate(
        smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == server.username.encode()
            and data.password == server.password.encode()
        )
        if not ok:
            server.refused_logins.append(mechanism)
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        _Handler(server.messages),
        hostname=server.host,
        port=server.port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
