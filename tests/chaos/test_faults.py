"""Faults in the prober's own world (issue #8): kill -9 at random moments under load, the
state file's disk full, the config file deleted while running."""

from __future__ import annotations

import os
import random
import resource
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prober.demo import Fault, SampleAPI
from tests.notify.conftest import Receiver
from tests.test_daemon import Daemon, sample, start_daemon, wait_for

__all__ = ["start_daemon"]  # the fixture, re-used from the daemon tests

pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("PROBER_FAULT_KILLS", "5"))


def load_config(api: str, hook: str, journeys: int = 20) -> str:
    """Load on the sample API (its admin stats page, which faults on /health leave alone),
    an SLO on the health check, a paging rule and a webhook notifier."""
    extra = "".join(
        f"  - {{name: load_{i}, steps: [{{name: get, url: /_admin/stats}}]}}\n"
        for i in range(journeys)
    )
    return f"""
service: shop
target: {{base_url: "{api}"}}
defaults: {{interval: 300ms, timeout: 2s, jitter: 0%, max_requests_per_second: 500}}
journeys:
  - {{name: healthcheck, steps: [{{name: health, url: /health, expect: [status == 200]}}]}}
{extra}slos:
  - {{name: health-availability, journey: healthcheck, objective: 99%, window: 1d}}
alerting:
  evaluation_interval: 500ms
  rules:
    - {{name: ApiDown, severity: critical, journey: healthcheck, when: "error_ratio > 20%", window: 3s}}
  notifiers:
    - {{type: webhook, url: {hook}, backoff_initial: 100ms, backoff_max: 500ms}}
"""


def read_state(path: Path) -> tuple[str, int, int]:
    """(integrity_check, events stored, outbox rows) of a state file no process holds."""
    with sqlite3.connect(path) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        events = connection.execute("SELECT count(*) FROM events").fetchone()[0]
        outbox = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return integrity, events, outbox


@pytest.fixture
def hook() -> Iterator[Receiver]:
    """A webhook receiver whose port is reserved but which is down until started."""
    receiver = Receiver()
    yield receiver
    receiver.stop()


def test_kill_9_at_random_moments_keeps_state_and_outbox(
    sample_api: SampleAPI,
    start_daemon: Callable[..., Daemon],
    hook: Receiver,
    tmp_path: Path,
) -> None:
    """Under load, the daemon is killed -9 at random moments, again and again: every time the
    state file passes integrity_check, no stored run or queued notification is lost, and
    when the webhook finally comes up it gets ApiDown firing exactly once."""
    state = tmp_path / "kept.db"
    text = load_config(sample_api.url, hook.url)
    sample_api.set_fault("/health", Fault(error_rate=1.0, status=503))
    moments = random.Random(8)  # seeded: the same "random" moments every run
    events = outbox = 0
    for kill in range(KILLS):
        daemon = start_daemon(text, "--state", str(state))
        if kill == 0:
            wait_for(
                lambda d=daemon: (
                    sample(d.metrics(), "prober_alert_state", alertname="ApiDown") == 2.0
                ),
                "ApiDown to fire",
            )
        time.sleep(moments.uniform(0.2, 2.5))  # the random moment, not synchronisation
        daemon.process.kill()
        daemon.process.wait()
        integrity, stored, queued = read_state(state)
        assert integrity == "ok", f"kill {kill}"
        assert stored >= events, f"kill {kill}: stored runs went from {events} to {stored}"
        assert queued >= outbox, f"kill {kill}: outbox went from {outbox} to {queued}"
        events, outbox = stored, queued
    assert events > 0
    assert outbox >= 1  # ApiDown firing, waiting for the webhook

    hook.start()
    last = start_daemon(text, "--state", str(state))
    wait_for(lambda: hook.delivered(), "the queued message to arrive")
    wait_for(
        lambda: sample(last.metrics(), "prober_notification_queue_depth", notifier="webhook") == 0,
        "the queue to empty",
    )
    assert last.stop() == 0
    firing = [r.json() for r in hook.delivered() if r.json()["status"] == "firing"]
    assert len(firing) == 1, [r.json()["status"] for r in hook.delivered()]


DISK_LIMIT = 384 * 1024  # bytes any one file of the daemon may reach


def _limit_file_size() -> None:  # runs in the child before exec
    # SIGXFSZ would kill the process; ignored, a write past the limit fails with EFBIG,
    # which is what a full disk looks like to SQLite ("database or disk is full").
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # Only the soft limit: the test raises it again later ("space freed").
    resource.setrlimit(resource.RLIMIT_FSIZE, (DISK_LIMIT, resource.RLIM_INFINITY))


def test_disk_full_keeps_probing_and_says_so(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """The state file cannot grow (RLIMIT_FSIZE, as a full disk): the daemon logs a clear
    error, counts it in a metric, keeps probing and serving; once there is room again the
    runs of the full period are written too, and it exits 0."""
    state = tmp_path / "full.db"
    daemon = start_daemon(
        load_config(sample_api.url, "http://127.0.0.1:9/", journeys=40),
        "--state",
        str(state),
        "--log-level",
        "warning",  # keeps the log file itself far below the limit
        preexec_fn=_limit_file_size,
    )

    def metric(name: str, **labels: str) -> float:
        return sample(daemon.metrics(), name, **labels) or 0.0

    wait_for(lambda: metric("prober_state_errors_total") >= 3, "state writes to fail", 60)
    runs_then = metric("prober_journey_runs_total", journey="load_0", result="success")
    wait_for(
        lambda: (
            metric("prober_journey_runs_total", journey="load_0", result="success") >= runs_then + 5
        ),
        "probing to go on",
    )
    assert daemon.get("/api/status")[0] == 200
    # Room again (as after an operator frees space): what could not be written is
    # written now, the runs of the full-disk period included.
    pid = daemon.process.pid
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    errors = metric("prober_state_errors_total")
    time.sleep(3)  # a few flushes (one a second): the errors must have stopped
    assert metric("prober_state_errors_total") <= errors + 1
    runs = sum(
        metric("prober_journey_runs_total", journey="healthcheck", result=result)
        for result in ("success", "failure")
    )
    assert daemon.stop() == 0
    with sqlite3.connect(state) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = connection.execute(
            "SELECT count(*) FROM events WHERE journey = 'healthcheck'"
        ).fetchone()[0]
    assert stored >= runs  # nothing lost to the full disk
    text = daemon.log.read_text()
    assert "state file write failed" in text
    assert "is the disk full?" in text
    assert "Traceback" not in text


def test_config_file_deleted_keeps_the_last_good_config(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon]
) -> None:
    """Deleting the config file while running keeps the running config (and says so);
    a SIGHUP then fails loudly; the file coming back is picked up."""
    text = load_config(sample_api.url, "http://127.0.0.1:9/", journeys=2)
    daemon = start_daemon(text)
    wait_for(
        lambda: sample(daemon.metrics(), "probe_success", journey="load_0") is not None, "runs"
    )
    daemon.config.unlink()
    wait_for(
        lambda: any("config file is gone" in line.get("message", "") for line in daemon.logs()),
        "the missing file to be noticed",
    )

    def runs() -> float:
        return sum(
            sample(daemon.metrics(), "prober_journey_runs_total", journey="load_0", result=r) or 0
            for r in ("success", "failure")
        )

    before = runs()
    wait_for(lambda: runs() >= before + 3, "probing to go on with the last good config")
    assert sample(daemon.metrics(), "prober_config_last_reload_successful") == 1

    daemon.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: sample(daemon.metrics(), "prober_config_last_reload_successful") == 0,
        "the SIGHUP reload of a missing file to fail",
    )
    assert daemon.process.poll() is None

    daemon.config.write_text(
        text.replace("slos:", "  - {name: added, steps: [{name: get, url: /health}]}\nslos:", 1)
    )
    wait_for(
        lambda: sample(daemon.metrics(), "probe_success", journey="added") is not None,
        "the file coming back to be loaded",
    )
    assert sample(daemon.metrics(), "prober_config_last_reload_successful") == 1
    assert daemon.stop() == 0
