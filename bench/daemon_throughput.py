"""The daemon at scale: N journeys × 1 GET every second against nginx on loopback, for a
bounded time, in this process. Prints sustained runs/s, schedule lag p50/p99, RSS and
CPU-ms per probe — beside blackbox_exporter's CPU-ms per probe (Debian package, driven by
`wrk` on its /probe endpoint against the same nginx, same run).

Targets (issue #3): >= 900 runs/s with 1,000 journeys, lag p99 <= 20 ms, RSS <= 150 MiB;
idle (10 journeys at 30 s) <= 1% of one core:
`--journeys 10 --interval 30s --seconds 60 --rounds 1`.

    python bench/daemon_throughput.py [--journeys 1000] [--interval 1s] [--seconds 20]
                                      [--rounds 3] [--no-blackbox]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _servers import blackbox_exporter, cpu_seconds, free_port, nginx, rss_mib

from prober import eventloop
from prober.config import parse_config
from prober.daemon import Daemon
from prober.logs import configure_logging


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure_prober(
    url: str, journeys: int, interval: str, seconds: float, warmup: float
) -> dict[str, float]:
    config_text = (
        f"target: {{base_url: '{url}'}}\n"
        f"defaults: {{interval: {interval}, timeout: 5s, jitter: 0%, max_concurrency: 500,"
        " max_requests_per_second: 100000}\n"
        "journeys:\n"
        + "".join(
            f"  - {{name: j{i:04d}, steps: [{{name: get, url: /health}}]}}\n"
            for i in range(journeys)
        )
    )
    path = Path(f"/tmp/prober-bench-{os.getpid()}.yaml")
    path.write_text(config_text)
    config = parse_config(config_text)
    with open(os.devnull, "w") as sink:
        configure_logging(service="bench", stream=sink)
        daemon = Daemon(str(path), config, listen=("127.0.0.1", free_port()), version="bench")
        lags: list[float] = []
        original = daemon.metrics.schedule_lag
        marks: dict[str, float] = {}

        class Recorder:
            def observe(self, value: float) -> None:
                if "start" in marks:
                    lags.append(value)
                original.observe(value)

        daemon.metrics.schedule_lag = Recorder()  # type: ignore[assignment]

        def runs(result: str = "success") -> float:
            return sum(
                sample.value
                for metric in daemon.metrics.runs.collect()
                for sample in metric.samples
                if sample.name.endswith("_total") and sample.labels["result"] == result
            )

        def start_window() -> None:
            marks["start"] = time.monotonic()
            marks["cpu"] = (
                resource.getrusage(resource.RUSAGE_SELF)[0]
                + resource.getrusage(resource.RUSAGE_SELF)[1]
            )
            marks["runs"] = runs()
            marks["failed"] = runs("failure")

        def end_window() -> None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            marks["cpu_end"] = usage[0] + usage[1]
            marks["runs_end"] = runs()
            marks["failed_end"] = runs("failure")
            marks["end"] = time.monotonic()
            marks["rss"] = rss_mib()
            daemon.request_stop()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            loop.call_later(warmup, start_window)
            loop.call_later(warmup + seconds, end_window)
            await daemon.run()

        eventloop.run(main())
    path.unlink()
    elapsed = marks["end"] - marks["start"]
    done = marks["runs_end"] - marks["runs"]
    cpu = marks["cpu_end"] - marks["cpu"]
    return {
        "runs_per_s": done / elapsed,
        "failed": marks["failed_end"] - marks["failed"],
        "lag_p50_ms": percentile(lags, 0.5) * 1000,
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "rss_mib": marks["rss"],
        "core_percent": cpu / elapsed * 100,
        "cpu_ms_per_probe": cpu / done * 1000 if done else float("nan"),
    }


def print_prober(
    rounds: list[dict[str, float]], journeys: int, interval: str, seconds: float, warmup: float
) -> None:
    print(
        f"prober: {journeys} journeys every {interval}, {len(rounds)} rounds of"
        f" {seconds:g} s measured after {warmup:g} s warm-up (median, then each round)"
    )

    def row(label: str, key: str, fmt: str) -> None:
        values = [r[key] for r in rounds]
        each = ", ".join(format(v, fmt) for v in values)
        print(f"  {label:<26}{format(statistics.median(values), fmt):>9}   ({each})")

    row("sustained runs/s:", "runs_per_s", ".1f")
    row("failed runs:", "failed", ".0f")
    row("schedule lag p50 (ms):", "lag_p50_ms", ".2f")
    row("schedule lag p99 (ms):", "lag_p99_ms", ".2f")
    row("RSS at end (MiB):", "rss_mib", ".1f")
    row("CPU (% of one core):", "core_percent", ".1f")
    row("CPU-ms per probe:", "cpu_ms_per_probe", ".3f")


def measure_blackbox(url: str, seconds: float) -> None:
    if shutil.which("wrk") is None:
        print("blackbox_exporter: skipped (apt-get install wrk)")
        return
    with blackbox_exporter() as (exporter, pid):
        target = f"{exporter}/probe?module=http_2xx&target={url}/health"
        subprocess.run(
            ["wrk", "-t1", "-c8", "-d2s", target], capture_output=True, check=False
        )  # warm-up
        before = cpu_seconds(pid)
        output = subprocess.run(
            ["wrk", "-t1", "-c16", f"-d{int(seconds)}s", target],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        cpu = cpu_seconds(pid) - before
    match = re.search(r"(\d+) requests in ([\d.]+)s", output)
    if not match:
        print(f"blackbox_exporter: could not read wrk's output:\n{output}")
        return
    probes, duration = int(match.group(1)), float(match.group(2))
    print(f"blackbox_exporter (same nginx, wrk -c16 on /probe, {duration:.0f} s):")
    print(f"  probes/s:                {probes / duration:8.1f}")
    print(
        f"  CPU:                     {cpu / duration * 100:8.1f}% of one core; {cpu / probes * 1000:.3f} CPU-ms per probe"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--journeys", type=int, default=1000)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="fresh daemons, one after another")
    parser.add_argument("--no-blackbox", action="store_true")
    parser.add_argument("--one-round-against", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    measure = [args.journeys, args.interval, args.seconds, args.warmup]
    if args.one_round_against:
        print(json.dumps(measure_prober(args.one_round_against, *measure)))
        return
    with nginx() as url:
        # Each round in a fresh process, so one round's memory is not the next one's RSS.
        rounds = [
            json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--one-round-against", url]
                    + [
                        f"--{name}={value}"
                        for name, value in zip(
                            ("journeys", "interval", "seconds", "warmup"), measure, strict=True
                        )
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.splitlines()[-1]
            )
            for _ in range(args.rounds)
        ]
        print_prober(rounds, args.journeys, args.interval, args.seconds, args.warmup)
        if not args.no_blackbox:
            measure_blackbox(url, min(args.seconds, 10))


if __name__ == "__main__":
    main()
