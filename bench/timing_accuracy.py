"""Timing accuracy: against a loopback server that answers after exactly 50 ms, the median
and p99 of (reported latency − 50 ms) for prober at 1 probe/s and at 400 probes/s, beside
blackbox_exporter's `probe_duration_seconds` on the same server in the same run (and curl's
`time_total` at 1/s).

Target (issue #3): prober within 1 ms of blackbox_exporter at both rates.

    python bench/timing_accuracy.py [--slow-samples 15] [--fast-seconds 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import time

import httpx
from _common import sample_api_process
from _servers import blackbox_exporter

from prober import eventloop
from prober.config import parse_config
from prober.daemon import tune_garbage_collector
from prober.http import HttpClient
from prober.journey import JourneyRunner

DELAY = 0.050


def median_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def stats(samples: list[float]) -> str:
    median, p99 = median_p99(samples)
    return f"median {median * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms   (n={len(samples)})"


def rounds_stats(rounds: list[list[float]]) -> str:
    """Median across rounds of each round's median and p99 (one noisy round moves neither)."""
    figures = [median_p99(samples) for samples in rounds]
    median = statistics.median(figure[0] for figure in figures)
    p99 = statistics.median(figure[1] for figure in figures)
    each = ", ".join(f"{figure[1] * 1000:.1f}" for figure in figures)
    return (
        f"median {median * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms"
        f"   (median of {len(rounds)} rounds; p99 of each: {each})"
    )


async def at_rate(probe, rate: float, count: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Start `count` probes `rate` per second (not waiting for each other); their overheads."""
    tasks = []
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(probe()))
    return [value - DELAY for value in await asyncio.gather(*tasks)]


def prober_probe(url: str):  # type: ignore[no-untyped-def]
    config = parse_config(
        f"target: {{base_url: '{url}'}}\n"
        "defaults: {max_concurrency: 1000}\n"
        "journeys: [{name: slow, steps: [{name: get, url: /health}]}]\n"
    )
    runner = JourneyRunner(config, HttpClient())

    async def probe() -> float:
        result = await runner.run(config.journeys[0])
        assert result.success, result.failure
        return result.duration_seconds

    return probe


def blackbox_probe(client: httpx.AsyncClient, exporter: str, url: str):  # type: ignore[no-untyped-def]
    async def probe() -> float:
        response = await client.get(
            f"{exporter}/probe", params={"module": "http_2xx", "target": f"{url}/health"}
        )
        match = re.search(r"^probe_duration_seconds (\S+)$", response.text, re.MULTILINE)
        success = re.search(r"^probe_success (\S+)$", response.text, re.MULTILINE)
        assert match is not None, response.text[-300:]
        assert success is not None, response.text[-300:]
        assert success.group(1) == "1", response.text[-300:]
        return float(match.group(1))

    return probe


def curl_samples(url: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.monotonic()
        output = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", f"{url}/health"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        samples.append(float(output) - DELAY)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return samples


async def measure(url: str, exporter: str, slow: int, fast_seconds: float, rounds: int) -> None:
    ours = prober_probe(url)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        theirs = blackbox_probe(client, exporter, url)
        await at_rate(ours, 50, 50)  # warm-up both
        await at_rate(theirs, 50, 50)
        tune_garbage_collector()  # as `prober run` does once started
        rows = [
            ("prober            1/s  ", stats(await at_rate(ours, 1, slow))),
            ("blackbox_exporter 1/s  ", stats(await at_rate(theirs, 1, slow))),
        ]
        # At 400/s the tail is the shared machine's: several rounds, alternating who goes
        # first, so that a noisy moment does not land on one side only.
        fast: dict[str, list[list[float]]] = {"ours": [], "theirs": []}
        for round_ in range(rounds):
            order = ("ours", "theirs") if round_ % 2 == 0 else ("theirs", "ours")
            for side in order:
                probe = ours if side == "ours" else theirs
                fast[side].append(await at_rate(probe, 400, int(400 * fast_seconds)))
        rows += [
            ("prober            400/s", rounds_stats(fast["ours"])),
            ("blackbox_exporter 400/s", rounds_stats(fast["theirs"])),
        ]
    for name, figures in rows:
        print(f"  {name}  reported − 50 ms: {figures}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-samples", type=int, default=15)
    parser.add_argument("--fast-seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("timing overhead against a server that answers after 50 ms (sample API, delay fault):")
    with (
        sample_api_process("--fault", f"/health:delay={DELAY}") as url,
        blackbox_exporter() as (exporter, _),
    ):
        eventloop.run(measure(url, exporter, args.slow_samples, args.fast_seconds, args.rounds))
        if shutil.which("curl"):
            print(
                f"  curl              1/s    reported − 50 ms: {stats(curl_samples(url, args.slow_samples))}"
            )


if __name__ == "__main__":
    main()
