"""Shared fixtures: the bundled sample API on a free loopback port, the prober CLI as a
subprocess, and a clean secret registry for every test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from prober.demo import SampleAPI
from prober.redaction import secrets

REPO = Path(__file__).resolve().parent.parent

#: Property tests: derandomized (the same examples every run: no flaky failures), no deadline
#: (the machine is shared and noisy).
PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def hunt_settings(examples: int) -> settings:
    """Property tests with a bounded run in CI and a longer hunt behind
    PROBER_PROPERTY_EXAMPLES (derandomized up to 100 examples: the same ones every run)."""
    count = int(os.environ.get("PROBER_PROPERTY_EXAMPLES", str(examples)))
    return settings(max_examples=count, deadline=None, derandomize=count <= 100, database=None)


CONFIG_DIR = REPO / "config"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Each test starts with no registered secrets."""
    yield
    secrets.clear()


@pytest.fixture
def sample_api() -> Iterator[SampleAPI]:
    """The bundled sample API, started on a free loopback port."""
    api = SampleAPI(host="127.0.0.1", port=0, seed=1).start()
    try:
        yield api
    finally:
        api.stop()


def run_prober(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real `prober` command line as a subprocess."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("PROBER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "prober", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the golden files under tests/golden/ from the current output (review the diff!)",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """`golden("case/file.json", text)` compares with tests/golden/case/file.json."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = REPO / "tests" / "golden" / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"no golden file {path}; run pytest --update-golden and review it"
        assert text == path.read_text(encoding="utf-8")

    return check


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers 400 with the request (path and body) echoed back: an API that leaks."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = json.dumps({"path": self.path, "received": json.loads(body or b"null")}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
