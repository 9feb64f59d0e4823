"""A real Prometheus (Debian package `prometheus`) scrapes a real daemon probing the sample
API; the test reads `probe_success` and a histogram quantile back through its HTTP API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prober.demo import SampleAPI
from tests.conftest import free_port
from tests.test_daemon import SECRET_ENV, Daemon, demo_config, http_get, start_daemon, wait_for

__all__ = ["start_daemon"]  # the fixture, re-used here

pytestmark = pytest.mark.integration


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed (.ci/run installs the Debian package)")
        pytest.skip("prometheus is not installed: apt-get install prometheus")
    return binary


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`prometheus(target, rules=None)` starts Prometheus scraping `target` every second (and
    evaluating the rule file `rules` every second); returns its URL."""
    binary = _prometheus_binary()
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str, rules: Path | None = None) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            + (f"rule_files: ['{rules}']\n" if rules is not None else "")
            + "scrape_configs:\n"
            f"  - job_name: prober\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        with (tmp_path / "prometheus.log").open("w") as log:
            processes.append(
                subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={tmp_path / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(url + "/-/ready")[0] == 200, "Prometheus to be ready")
        return url

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def query(prometheus_url: str, expression: str) -> list[dict[str, object]]:
    code, body, _ = http_get(
        f"{prometheus_url}/api/v1/query?query={urllib.parse.quote(expression)}"
    )
    if code != 200:
        return []
    result: list[dict[str, object]] = json.loads(body)["data"]["result"]
    return result


def test_prometheus_scrapes_the_daemon(
    sample_api: SampleAPI, start_daemon: Callable[..., Daemon], prometheus: Callable[[str], str]
) -> None:
    """probe_success and a histogram quantile come back through Prometheus' query API."""
    daemon = start_daemon(demo_config(sample_api.url), env=SECRET_ENV)
    url = prometheus(daemon.url.removeprefix("http://"))
    success = wait_for(
        lambda: query(url, 'probe_success{journey="chat"} == 1'), "probe_success in Prometheus"
    )
    assert success[0]["metric"]["job"] == "prober"  # type: ignore[index]
    p95 = wait_for(
        lambda: [
            row
            for row in query(
                url,
                'histogram_quantile(0.95, sum by (le) (rate(prober_journey_duration_seconds_bucket{journey="chat"}[10s])))',
            )
            if row["value"][1] not in ("NaN", "+Inf")  # type: ignore[index]
        ],
        "a finite p95 from the histogram",
    )
    assert 0 < float(p95[0]["value"][1]) <= 2.0  # type: ignore[index]
