"""No secret leaves prober, in any encoding, through any output (issue #14).

A loopback target echoes everything it receives (headers, body, URL) back in each
encoding a real API might use — raw, in response headers (UTF-8 bytes a server reads as
latin-1), JSON-escaped once and twice, percent-encoded, base64 and basic-auth base64 —
and its login hands out a hostile token that later steps send as a credential. Failing
conditions quote those echoes in failure messages. Then every output is scanned for any
spelling of any secret: the daemon's debug logs, `/metrics`, `/api/status`, the status
page, the state file's raw bytes, `prober export`, the webhook notifications, and the
`run-once` reports (JSON, JUnit, table).
"""

from __future__ import annotations

import base64
import html
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, quote_plus, unquote

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
#: Hostile secrets: quote, backslash, non-ASCII, '/', '+', '=', '%', spaces.
SECRET_KEY = 'k3y "wörd" \\ a/b+c=d%20e'
SECRET_PASSWORD = 'pässwörd/+= %41"\\ end'
#: What the target's login hands out: captured and sent as `Authorization: Bearer ...`.
TOKEN = 'tok-"ä\\/+=%2F x-9f8e7d6c'
#: Captured with `secret: true` and never sent anywhere.
SESSION = 'sess+/="ü\\-0a1b2c3d4e'
SECRETS = (SECRET_KEY, SECRET_PASSWORD, TOKEN, SESSION)
DEADLINE = 60.0


def spellings(secret: str) -> set[str]:
    """Every encoding the corpus looks for; shorter than 6 characters is left out, as it
    would match unrelated text."""
    readings = {secret, secret.encode().decode("latin-1")}
    found: set[str] = set()
    for reading in readings:
        for ascii_only in (True, False):
            once = json.dumps(reading, ensure_ascii=ascii_only)[1:-1]
            found |= {reading, once, json.dumps(once, ensure_ascii=ascii_only)[1:-1]}
    found |= {html.escape(item) for item in set(found)}
    found |= {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    for value in (secret, f"user:{secret}", f"admin:{secret}"):
        encoded = base64.b64encode(value.encode()).decode()
        found |= {encoded, base64.urlsafe_b64encode(value.encode()).decode()}
    # the secret's own base64 characters, inside any longer base64 text
    found |= {base64.b64encode(secret.encode()).decode()[4:-4]}
    return {item for item in found if len(item) >= 6}


CORPUS = {spelling: secret for secret in SECRETS for spelling in spellings(secret)}


def leaks(text: str) -> list[str]:
    """The spellings of secrets found in `text`."""
    return sorted({repr(spelling) for spelling in CORPUS if spelling in text})


def _echoes(value: str) -> dict[str, str]:
    once = json.dumps(value)[1:-1]
    return {
        "raw": value,
        "json": once,
        "json2": json.dumps(once)[1:-1],
        "pct": quote(value, safe=""),
        "b64": base64.b64encode(value.encode()).decode(),
        "basic": base64.b64encode(f"user:{value}".encode()).decode(),
    }


class Echo(BaseHTTPRequestHandler):
    """`/login` hands out the token (and echoes the key it got); anything else echoes
    what it received in every encoding; `/redirect` sends the client to `redirect_to`."""

    redirect_to = ""
    received: ClassVar[list[str]] = []  # every header value and body, as read, for the redirect row

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        got = {name.lower(): value for name, value in self.headers.items()}
        type(self).received.extend([*got.values(), body, unquote(self.path)])
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/login"):
            document: dict[str, object] = {
                "token": TOKEN,
                "session": SESSION,
                "echoed": got.get("x-key", ""),  # a plain capture holding a secret
            }
        else:
            sources = {"key": got.get("x-key", ""), "authorization": got.get("authorization", "")}
            sources |= {"url": unquote(self.path), "body": body}
            document = {"echo": {name: _echoes(value) for name, value in sources.items()}}
        payload = json.dumps(document, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for name in ("x-key", "authorization"):
            # http.server read the header bytes as latin-1; written back the same way, the
            # client gets the very bytes it sent
            self.send_header(f"X-Echo-{name}", got.get(name, ""))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


class Hook(BaseHTTPRequestHandler):
    """A webhook receiver that keeps every payload."""

    payloads: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        type(self).payloads.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


CONDITIONS = [
    f"json.echo.{source}.{encoding} == 'nothing'"
    for source in ("key", "authorization", "url", "body")
    for encoding in ("raw", "json", "json2", "pct", "b64", "basic")
] + ["header.x-echo-x-key == 'nothing'", "header.x-echo-authorization == 'nothing'"]


def _config(tmp_path: Path, target: str, hook: str) -> Path:
    expect = json.dumps(CONDITIONS)
    text = f"""
service: leaks
state_path: {tmp_path / "state.db"}
target:
  base_url: "{target}"
  headers: {{X-Key: "${{secret.LEAK_KEY}}"}}
journeys:
  - name: echo
    interval: 1s
    steps:
      - name: login
        method: POST
        url: /login
        json: {{password: "${{secret.LEAK_PASSWORD}}"}}
        capture:
          token: json.token
          session: {{from: json.session, secret: true}}
          echoed: json.echoed
      - name: use
        method: POST
        url: "/echo?pw=${{secret.LEAK_PASSWORD}}"
        headers: {{Authorization: "Bearer ${{token}}"}}
        body: "pw=${{secret.LEAK_PASSWORD}}&t=${{token}}"
        expect: {expect}
slos:
  - {{name: echo-availability, journey: echo, objective: 99%, window: 1h}}
alerting:
  evaluation_interval: 1s
  rules:
    - {{name: EchoFailing, severity: warning, journey: echo, when: error_ratio > 0%, window: 5s}}
  notifiers:
    - {{type: webhook, url: "{hook}/hook", repeat_interval: 1s}}
"""
    path = tmp_path / "prober.yaml"
    path.write_text(text, encoding="utf-8")
    return path


ENVIRONMENT = {"LEAK_KEY": SECRET_KEY, "LEAK_PASSWORD": SECRET_PASSWORD}


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    """The echoing target and the webhook receiver, on loopback."""
    Echo.received, Hook.payloads = [], []
    target, hook = _serve(Echo), _serve(Hook)
    yield _url(target), _url(hook)
    for server in (target, hook):
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode("utf-8"))


def _prober(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prober", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        timeout=DEADLINE,
        check=False,
    )


def test_daemon_outputs_hold_no_secret(tmp_path: Path, servers: tuple[str, str]) -> None:
    """Logs at debug, /metrics, /api/status, the status page, the state file, export and
    webhook payloads hold no spelling of any secret, the captured token's included."""
    target, hook = servers
    config = _config(tmp_path, target, hook)
    port = _free_port()
    log = tmp_path / "daemon.log"
    env = {**os.environ, **ENVIRONMENT, "PYTHONPATH": str(REPO)}
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "prober", "run", "-c", str(config), "--listen",
             f"127.0.0.1:{port}", "--log-level", "debug", "--grace", "5s"],
            stdout=output, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    outputs: dict[str, str] = {}
    try:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = _get(base + "/api/status")
            except OSError:
                status = ""
            if Hook.payloads and "assertion" in status and (tmp_path / "state.db").exists():
                break
            time.sleep(0.2)
        assert process.poll() is None, log.read_text()
        assert Hook.payloads, "no notification arrived"
        outputs["/metrics"] = _get(base + "/metrics")
        outputs["/api/status"] = _get(base + "/api/status")
        outputs["status page"] = _get(base + "/")
        time.sleep(1.5)  # one more state-file flush after the outputs were read
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=DEADLINE)
    outputs["log"] = log.read_text(encoding="utf-8")
    assert '"level": "debug"' in outputs["log"]
    assert "assertion" in outputs["/api/status"]  # the echoes were judged and quoted
    outputs["webhooks"] = b"\n".join(Hook.payloads).decode("utf-8")
    state = b"".join(path.read_bytes() for path in tmp_path.glob("state.db*"))
    outputs["state file"] = state.decode("latin-1") + state.decode("utf-8", "replace")
    exported = _prober("export", "-c", str(config), env=ENVIRONMENT, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert '"captures"' in exported.stdout  # the plain capture is kept, masked
    outputs["export"] = exported.stdout + exported.stderr
    found = {name: leaks(text) for name, text in outputs.items()}
    assert found == {name: [] for name in outputs}


def test_run_once_reports_hold_no_secret(tmp_path: Path, servers: tuple[str, str]) -> None:
    """The run-once table, JSON and JUnit reports hold no spelling of any secret."""
    target, hook = servers
    config = _config(tmp_path, target, hook)
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    ran = _prober(
        "run-once", "-c", str(config), "--json", str(report), "--junit", str(junit),
        env=ENVIRONMENT, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stdout + ran.stderr  # the echo conditions fail
    outputs = {
        "table": ran.stdout + ran.stderr,
        "json": report.read_text(encoding="utf-8"),
        "junit": junit.read_text(encoding="utf-8"),
    }
    assert "expected json.echo" in outputs["json"]
    found = {name: leaks(text) for name, text in outputs.items()}
    assert found == {name: [] for name in outputs}


class Elsewhere(Echo):
    """The other origin a redirect points to: keeps what it received apart."""

    received: ClassVar[list[str]] = []


def test_cross_origin_redirect_gets_no_credential(tmp_path: Path) -> None:
    """A redirect to another origin is sent neither the target headers' secret nor the
    step's credential headers, and the run's output holds no secret either."""
    Echo.received, Elsewhere.received = [], []
    other = _serve(Elsewhere)
    Echo.redirect_to = _url(other) + "/landing"
    origin = _serve(Echo)
    try:
        config = tmp_path / "redirect.yaml"
        config.write_text(
            f"""
target:
  base_url: "{_url(origin)}"
  headers: {{X-Key: "${{secret.LEAK_KEY}}"}}
journeys:
  - name: hop
    steps:
      - name: go
        url: /redirect
        follow_redirects: true
        headers: {{Authorization: "Basic ${{secret.LEAK_PASSWORD}}", Cookie: "s=${{secret.LEAK_KEY}}"}}
""",
            encoding="utf-8",
        )
        ran = _prober("run-once", "-c", str(config), env=ENVIRONMENT, cwd=tmp_path)
        assert Echo.received, ran.stdout + ran.stderr  # the origin was asked
        assert leaks(ran.stdout + ran.stderr) == []
        assert any("/landing" in item for item in Elsewhere.received)  # followed there
        assert leaks("\n".join(Elsewhere.received)) == []
    finally:
        for server in (origin, other):
            server.shutdown()
            server.server_close()
