"""A config reload reads and validates the file off the event loop (probing goes on while a
big config parses) and swaps the result in on the loop. In-process, no network."""

from __future__ import annotations

import asyncio
import inspect
import threading
from pathlib import Path

import pytest

import prober.daemon as daemon_module
from prober.config import ProberConfig, load_config
from prober.daemon import Daemon
from prober.scheduler import Scheduler

CONFIG = """
service: {service}
target: {{base_url: "http://127.0.0.1:9"}}
defaults: {{interval: 1h, timeout: 2s, jitter: 0%}}
journeys:
  - name: health
    steps:
      - {{name: health, url: /health, expect: [status == 200]}}
"""


def reload_while_watching(
    path: Path, config: ProberConfig, monkeypatch: pytest.MonkeyPatch
) -> tuple[Daemon, object, list[bool]]:
    """Reload with a loader that waits (up to 5 s) for a task on the loop to run; what the
    reload returned, and whether the loop ran while the file was being loaded."""
    loop_ran = threading.Event()
    seen: list[bool] = []
    real = daemon_module.load_config

    def watched_load(config_path: str) -> ProberConfig:
        seen.append(loop_ran.wait(5))
        return real(config_path)

    monkeypatch.setattr(daemon_module, "load_config", watched_load)

    async def main() -> tuple[Daemon, object]:
        daemon = Daemon(str(path), config, listen=("127.0.0.1", 0))
        daemon._scheduler = Scheduler(daemon._run_journey, max_concurrency=1)

        async def mark() -> None:
            loop_ran.set()

        marker = asyncio.ensure_future(mark())
        outcome = daemon.reload("test")
        if inspect.isawaitable(outcome):
            outcome = await outcome
        await marker
        await daemon._scheduler.stop(1.0)
        await daemon._alert_store.close()
        if daemon.server is not None:
            daemon.server.stop()
        return daemon, outcome

    daemon, outcome = asyncio.run(main())
    return daemon, outcome, seen


def test_reload_parses_off_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop runs while the new config is loaded; then the new config is the running one."""
    path = tmp_path / "prober.yaml"
    path.write_text(CONFIG.format(service="before"))
    config = load_config(str(path))
    path.write_text(CONFIG.format(service="after"))
    daemon, outcome, seen = reload_while_watching(path, config, monkeypatch)
    assert seen == [True]
    assert outcome is True
    assert daemon.config.service == "after"


def test_bad_reload_off_the_loop_keeps_the_running_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config that fails validation in the worker thread leaves the running one in place."""
    path = tmp_path / "prober.yaml"
    path.write_text(CONFIG.format(service="before"))
    config = load_config(str(path))
    path.write_text("journeys: [")
    daemon, outcome, seen = reload_while_watching(path, config, monkeypatch)
    assert seen == [True]
    assert outcome is False
    assert daemon.config.service == "before"
    assert daemon.metrics.reload_ok._value.get() == 0
