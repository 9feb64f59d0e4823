"""Target templates and the prober's own setup faults (issue #14): the target headers and
base URL are rendered, and a fault of the prober's setup is never blamed on the target."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from prober.config import parse_config
from prober.http import HttpClient
from prober.journey import JourneyRunner
from prober.results import RunResult

pytestmark = pytest.mark.integration


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 and keeps the X-Key header of every request."""

    keys: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).keys.append(self.headers.get("X-Key"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    """A recording server on 127.0.0.1."""
    Recorder.keys = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def run(base_url: str, environ: dict[str, str], *, ca_file: str | None = None) -> RunResult:
    config = parse_config(
        f"target:\n  base_url: '{base_url}'\n  headers: {{X-Key: '${{secret.KEY}}'}}\n"
        "journeys: [{name: j, steps: [{name: s, url: /x}]}]\n"
    )
    runner = JourneyRunner(config, HttpClient(ca_file=ca_file), environ=environ)
    return asyncio.run(runner.run(config.journeys[0]))


CASES = [
    ("env-host", "http://${env.HOST}:{port}", {"HOST": "127.0.0.1", "KEY": "k-1"}, None, ["k-1"]),
    ("unset-host", "http://${env.HOST}:{port}", {"KEY": "k-1"}, "template", []),
    ("unset-header-secret", "http://127.0.0.1:{port}", {}, "template", []),
]


@pytest.mark.parametrize(
    ("base_url", "environ", "reason", "keys"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_target_templates_are_rendered(
    port: int, base_url: str, environ: dict[str, str], reason: str | None, keys: list[str]
) -> None:
    """`${env.X}` in base_url and `${secret.X}` in target headers are rendered; an unset
    one fails the run with reason `template` before anything is sent (never `dns`)."""
    result = run(base_url.replace("{port}", str(port)), environ)
    assert (result.failure.reason if result.failure else None) == reason
    assert Recorder.keys == keys


def test_unreadable_ca_file_is_a_setup_fault() -> None:
    """A CA file gone since the config was loaded fails the step with reason `config`, not
    the target's `tls`."""
    result = run("https://127.0.0.1:9", {"KEY": "k"}, ca_file="/nonexistent/ca.pem")
    assert result.failure is not None
    assert result.failure.reason == "config"
