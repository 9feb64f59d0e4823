"""Figures against the anchors (issue #8), each beside blackbox_exporter on the same nginx in
the same run:

1. CPU per HTTP probe at ~400 probes/s: `prober run` (a subprocess: 400 journeys × 1 GET
   every second, JSON logs at info to /dev/null, as a pod runs) against blackbox_exporter
   driven at 400 probes/s on its /probe endpoint by a paced client in this process (whose
   own CPU is not counted: only each server process's CPU, from /proc). Rounds alternate;
   medians. Target: prober <= 1.5 × blackbox_exporter.
2. RSS at 1,000 journeys with 30 days of SLO history: a state file holding, for each of
   1,000 SLOs (one per journey, 30-day window), a window snapshot of 30 days at one run per
   15 s; `prober run` restores it and probes nginx, 1,000 journeys × 1/s; RSS after 20 s.
   The in-process percentile sketches reach their full size only after an hour: their
   full-hour size per journey is measured here with tracemalloc and added.

Timing overhead (median, p99 at 1 and 400 probes/s) is bench/timing_accuracy.py;
`run-once` wall time is bench/run_once_wall.py.

    python bench/anchors.py [--rounds 3] [--seconds 15] [--skip-rss]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _servers import blackbox_exporter, cpu_seconds, free_port, nginx, rss_mib

from prober.sketch import TieredSketch

REPO = Path(__file__).resolve().parent.parent
RATE = 400


def scrape_runs(url: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prober_journey_runs_total{")
    )


@contextmanager
def prober_daemon(
    config_text: str, state: str | None = None, source: Path = REPO
) -> Iterator[tuple[str, int]]:
    """`prober run` as a subprocess, from the tree at `source` (this one by default);
    yields (its URL, pid) once /readyz answers 200."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.yaml"
        config.write_text(config_text)
        port = free_port()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PROBER_")}
        environment.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed prober runs
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prober",
                "run",
                "-c",
                str(config),
                "--listen",
                f"127.0.0.1:{port}",
                "--state",
                state or str(Path(folder) / "state.db"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
            cwd=source,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if urllib.request.urlopen(url + "/readyz", timeout=2).status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            else:
                raise RuntimeError("prober did not become ready")
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)


def journeys_config(target: str, count: int, *, slos: bool = False) -> str:
    lines = [
        f"target: {{base_url: '{target}'}}",
        "defaults: {interval: 1s, timeout: 5s, jitter: 0%, max_concurrency: 1000,"
        " max_requests_per_second: 100000}",
        "journeys:",
        *(f"  - {{name: j{i:04d}, steps: [{{name: get, url: /health}}]}}" for i in range(count)),
    ]
    if slos:
        lines.append("slos:")
        lines += [
            f"  - {{name: s{i:04d}, journey: j{i:04d}, objective: 99.9%, window: 30d}}"
            for i in range(count)
        ]
    return "\n".join(lines) + "\n"


def prober_cpu_per_probe(target: str, seconds: float) -> tuple[float, float]:
    """(CPU-ms per probe, probes/s) of the daemon at RATE journeys × 1/s."""
    with prober_daemon(journeys_config(target, RATE)) as (url, pid):
        time.sleep(5)  # warm-up: every journey has run a few times
        runs, cpu, started = scrape_runs(url), cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        runs = scrape_runs(url) - runs
        cpu = cpu_seconds(pid) - cpu
        elapsed = time.monotonic() - started
    return cpu / runs * 1000, runs / elapsed


async def paced_probes(probe_url: str, seconds: float) -> int:
    """GET `probe_url` RATE times a second on 32 kept-alive connections (a bare HTTP/1.1
    client: the driver must keep pace without being the bottleneck); how many succeeded."""
    url = httpx.URL(probe_url)
    request = (
        f"GET {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    start = loop.time()
    schedule = iter(range(int(RATE * seconds)))
    done = 0

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            for n in schedule:
                delay = start + n / RATE - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if length is not None:
                    body = await reader.readexactly(int(length.group(1)))
                else:  # chunked
                    body = b""
                    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                        body += await reader.readexactly(size)
                        await reader.readexactly(2)
                    await reader.readuntil(b"\r\n")
                if head.startswith(b"HTTP/1.1 200") and b"probe_success 1" in body:
                    done += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(32)))
    return done


def blackbox_cpu_per_probe(target: str, seconds: float) -> tuple[float, float]:
    with blackbox_exporter() as (exporter, pid):
        probe_url = f"{exporter}/probe?module=http_2xx&target={target}/health"
        asyncio.run(paced_probes(probe_url, 2))  # warm-up
        cpu, started = cpu_seconds(pid), time.monotonic()
        probes = asyncio.run(paced_probes(probe_url, seconds))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu
    return cpu / probes * 1000, probes / elapsed


def history_state_file(path: str, slos: int) -> None:
    """A state file whose timeline snapshots hold 30 days at one run per 15 s for each of
    `slos` journeys (one 30-day SLO each): bench/slo_engine.py writes it."""
    from slo_engine import state_file_worker

    state_file_worker(path, slos)
    with sqlite3.connect(path) as connection:
        stored = connection.execute("SELECT count(*) FROM windows").fetchone()[0]
    assert stored == slos


def sketch_hour_kib() -> float:
    """tracemalloc size of one journey's percentile sketches after an hour at 1 probe/s."""
    rng = random.Random(2)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    sketches = [TieredSketch() for _ in range(20)]
    for second in range(3700):
        for sketch in sketches:
            sketch.add(rng.lognormvariate(-5.3, 0.3), float(second))
    size = (tracemalloc.get_traced_memory()[0] - before) / 20 / 1024
    tracemalloc.stop()
    return size


def rss_with_history(target: str, journeys: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        state = str(Path(folder) / "history.db")
        history_state_file(state, journeys)
        with prober_daemon(journeys_config(target, journeys, slos=True), state) as (url, pid):
            time.sleep(20)
            runs = scrape_runs(url)
            return rss_mib(pid), runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    ours: list[float] = []
    theirs: list[float] = []
    with nginx() as target:
        for _ in range(args.rounds):
            cpu, rate = prober_cpu_per_probe(target, args.seconds)
            ours.append(cpu)
            print(f"  round: prober {cpu:.3f} CPU-ms/probe at {rate:.0f}/s", flush=True)
            cpu, rate = blackbox_cpu_per_probe(target, args.seconds)
            theirs.append(cpu)
            print(f"  round: blackbox_exporter {cpu:.3f} CPU-ms/probe at {rate:.0f}/s", flush=True)
        prober_ms, blackbox_ms = statistics.median(ours), statistics.median(theirs)
        print(f"CPU per HTTP probe at ~{RATE} probes/s, median of {args.rounds} rounds:")
        print(f"  prober run (400 journeys x 1/s):      {prober_ms:.3f} CPU-ms")
        print(f"  blackbox_exporter (/probe at 400/s): {blackbox_ms:.3f} CPU-ms")
        print(f"  ratio: {prober_ms / blackbox_ms:.2f} x (target <= 1.5 x)")
        if not args.skip_rss:
            rss, runs = rss_with_history(target, 1000)
            sketches = sketch_hour_kib()
            print(
                "RSS, 1,000 journeys x 1/s, each with a 30-day SLO restored from 30 days of history:"
            )
            print(f"  after 20 s: {rss:.1f} MiB ({runs:.0f} runs so far)")
            print(
                f"  + percentile sketches at a full hour: {sketches:.1f} KiB/journey"
                f" = {sketches * 1000 / 1024:.1f} MiB -> {rss + sketches * 1000 / 1024:.1f} MiB"
            )


if __name__ == "__main__":
    main()
