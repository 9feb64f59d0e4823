"""Every command against a table of hostile arguments and environment: a usage error is
exit 2 with one line on stderr naming what is wrong, never a traceback, and run-once
refuses an unwritable report path before it runs anything."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from prober.demo import DEFAULT_PASSWORD, SampleAPI
from tests.conftest import CONFIG_DIR, free_port, run_prober

pytestmark = pytest.mark.integration

DEMO = str(CONFIG_DIR / "demo.yaml")
TAKEN = "{taken}"  # replaced by a port a test socket listens on


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port that something is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


CASES = [
    # (args, env, a fragment the one line must contain)
    (["run", "-c", DEMO, "--log-level", "LOUD"], {}, "--log-level"),
    (["run", "-c", DEMO], {"PROBER_LOG_LEVEL": "LOUD"}, "PROBER_LOG_LEVEL"),
    (["run", "-c", DEMO], {"PROBER_LOG_FORMAT": "xml"}, "PROBER_LOG_FORMAT"),
    (["demo"], {"PROBER_LOG_FORMAT": "xml"}, "PROBER_LOG_FORMAT"),
    (["run", "-c", DEMO], {"PROBER_LISTEN": "256.1.1.1:9"}, "256.1.1.1"),
    (["run", "-c", DEMO, "--listen", "127.0.0.1:99999"], {}, "--listen"),
    (["run", "-c", DEMO, "--listen", f"127.0.0.1:{TAKEN}"], {}, f"127.0.0.1:{TAKEN}"),
    (["run", "-c", DEMO, "--listen", "192.0.2.1:9469"], {}, "192.0.2.1:9469"),
    (["demo", "--listen", f"127.0.0.1:{TAKEN}"], {}, f"127.0.0.1:{TAKEN}"),
    (["demo", "--api-port", TAKEN], {}, f"127.0.0.1:{TAKEN}"),
    (["demo"], {"PROBER_API_PORT": "abc"}, "PROBER_API_PORT"),
    (["run", "-c", DEMO, "--grace", "soon"], {}, "--grace"),
    (["run", "-c", DEMO, "--max-connections", "0"], {}, "--max-connections"),
    (["run", "-c", DEMO], {"PROBER_MAX_CONNECTIONS": "many"}, "PROBER_MAX_CONNECTIONS"),
    (["run", "-c", DEMO, "--read-timeout", "never"], {}, "--read-timeout"),
    (["run-once", "-c", DEMO], {"PROBER_ITERATIONS": "abc"}, "PROBER_ITERATIONS"),
    (["run-once", "-c", DEMO, "--iterations", "abc"], {}, "--iterations"),
    (["run-once", "-c", DEMO, "--json", "/proc/nope/x.json"], {}, "/proc/nope/x.json"),
    (["run-once", "-c", DEMO, "--junit", "/proc/nope/x.xml"], {}, "/proc/nope/x.xml"),
    (["run-once", "-c", DEMO], {"PROBER_JSON": "/proc/nope/x.json"}, "/proc/nope/x.json"),
    (["run-once", "-c", DEMO, "--json", "/tmp"], {}, "/tmp"),
    (["run-once"], {}, "--config"),
    (["replay", "-c", DEMO, "--events", "/proc/nope/x.jsonl"], {}, "--events"),
    (["replay", "-c", DEMO, "--events", DEMO], {"PROBER_WINDOWS": "nope"}, "PROBER_WINDOWS"),
    (["rules", "-c", DEMO], {"PROBER_FORMAT": "nope"}, "PROBER_FORMAT"),
    (["rules", "-c", DEMO, "-o", "/proc/nope/rules.yml"], {}, "/proc/nope/rules.yml"),
    (["dashboard", "-c", DEMO, "-o", "/proc/nope/d.json"], {}, "/proc/nope/d.json"),
    (["export", "-c", DEMO, "--since", "lately"], {}, "--since"),
    (["nonsense"], {}, "nonsense"),
]


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    CASES,
    ids=[
        "log-level-flag",
        "log-level-env",
        "log-format-env",
        "demo-log-format-env",
        "listen-bad-ip",
        "listen-port-range",
        "listen-port-taken",
        "listen-not-local",
        "demo-listen-taken",
        "demo-api-port-taken",
        "demo-api-port-env",
        "grace",
        "max-connections-zero",
        "max-connections-env",
        "read-timeout",
        "run-once-iterations-env",
        "iterations-flag",
        "json-unwritable",
        "junit-unwritable",
        "json-env-unwritable",
        "json-is-a-directory",
        "config-missing",
        "events-unreadable",
        "windows-env",
        "rules-format-env",
        "rules-output-unwritable",
        "dashboard-output-unwritable",
        "export-since",
        "unknown-command",
    ],
)
def test_hostile_input_is_one_line_and_exit_2(
    sample_api: SampleAPI, taken_port: int, args: list[str], env: dict[str, str], fragment: str
) -> None:
    """Exit 2, exactly one line on stderr naming the culprit, no traceback, nothing run."""
    args = [arg.replace(TAKEN, str(taken_port)) for arg in args]
    full_env = {"DEMO_PASSWORD": DEFAULT_PASSWORD, **env}
    if args[0] == "run-once":
        args += ["--base-url", sample_api.url]
    if args[0] in ("run", "demo") and not any(a.startswith("--listen") for a in args):
        full_env.setdefault("PROBER_LISTEN", f"127.0.0.1:{free_port()}")
    result = run_prober(*args, env=full_env, timeout=60)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, result.stderr
    assert fragment.replace(TAKEN, str(taken_port)) in lines[0]
    assert sample_api.stats().get("/health", 0) == 0  # nothing ran against the target


def test_a_twin_is_checked_only_where_its_flag_is() -> None:
    """`validate` has no --iterations: a malformed PROBER_ITERATIONS does not stop it (it
    used to crash every command while the parser was built)."""
    result = run_prober(
        "validate", "-c", DEMO, env={"PROBER_ITERATIONS": "abc", "DEMO_PASSWORD": "x"}
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_server_defaults_are_the_same_in_the_cli() -> None:
    """The --help defaults (kept in the CLI so --help imports no server) match the server's."""
    from prober import cli, server

    assert cli.DEFAULT_MAX_CONNECTIONS == server.DEFAULT_MAX_CONNECTIONS
    assert cli.DEFAULT_READ_TIMEOUT == server.DEFAULT_READ_TIMEOUT
