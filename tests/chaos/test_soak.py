"""Soak (issue #8): the daemon under 200 journeys against the chaos target for a bounded
run, its RSS and open file descriptors sampled every second: after warm-up, no growth
trend; after shutdown, no connection left open on the target.

CI runs the short form (`SOAK_SECONDS`, 40 s by default); a full-length run is on demand:

    PROBER_SOAK_SECONDS=900 .venv/bin/python -m pytest tests/chaos/test_soak.py -s
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import pytest

from tests.chaos.target import ChaosTarget
from tests.chaos.test_chaos import CASES, chaos_config, journey_name, rss_mib
from tests.test_daemon import Daemon, sample, start_daemon, wait_for

__all__ = ["start_daemon"]  # the fixture, re-used from the daemon tests

pytestmark = pytest.mark.integration

SOAK_SECONDS = float(os.environ.get("PROBER_SOAK_SECONDS", "40"))
WARM_UP = 12.0  # seconds: imports, first runs, caches, the sketches' first buckets
JOURNEYS = 200
RSS_GROWTH_MIB = 8.0  # allowed difference between the first and last third after warm-up
FD_GROWTH = 16


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_soak_no_growth_no_leaks(chaos: ChaosTarget, start_daemon: Callable[..., Daemon]) -> None:
    cases = [CASES[index % len(CASES)] for index in range(JOURNEYS)]
    daemon = start_daemon(chaos_config(chaos, cases, interval="2s"))
    pid = daemon.process.pid
    started = time.monotonic()
    samples: list[tuple[float, float, int, int]] = []  # (t, rss MiB, fds, target connections)
    while (elapsed := time.monotonic() - started) < SOAK_SECONDS:
        assert daemon.process.poll() is None, daemon.log.read_text()[-3000:]
        samples.append((elapsed, rss_mib(pid), open_fds(pid), chaos.open_connections))
        time.sleep(1.0)
    metrics = daemon.metrics()
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log.read_text()

    steady = [s for s in samples if s[0] >= WARM_UP]
    assert len(steady) >= 9, "soak too short to judge a trend"
    third = len(steady) // 3
    first, last = steady[:third], steady[-third:]
    rss_first = statistics.median(s[1] for s in first)
    rss_last = statistics.median(s[1] for s in last)
    fds_first, fds_last = max(s[2] for s in first), max(s[2] for s in last)
    report = (
        f"RSS {rss_first:.1f} → {rss_last:.1f} MiB, fds {fds_first} → {fds_last},"
        f" max target connections {max(s[3] for s in samples)}, {len(samples)} samples"
    )
    print(report)
    print([(round(s[0]), round(s[1], 1), s[2]) for s in samples[::5]])
    assert rss_last - rss_first <= RSS_GROWTH_MIB, report
    assert fds_last <= fds_first + FD_GROWTH, report
    assert max(s[1] for s in samples) < 150, report
    # Every connection a run opened is closed by the next interval at the latest.
    assert max(s[3] for s in samples) <= JOURNEYS, report
    wait_for(lambda: chaos.open_connections == 0, "the target to see every connection closed")
    # It kept probing all along: every journey ran, none overran its interval.
    runs = [
        sum(
            sample(metrics, "prober_journey_runs_total", journey=name, result=result) or 0
            for result in ("success", "failure")
        )
        for name in (journey_name(case, i) for i, case in enumerate(cases))
    ]
    assert min(runs) >= SOAK_SECONDS / 2 - 3, report
    # An overrun (a run still going at its next tick) only comes from this machine being
    # busy: runs are bounded by their 1 s timeout, the interval is 2 s. Allow a few.
    overran = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("prober_journey_overruns_total{")
    }
    assert sum(overran.values()) <= 0.02 * sum(runs), (report, overran)
