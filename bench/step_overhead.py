"""CPU per step with 100 journeys in flight against a fast loopback server, beside a
bare httpx loop sending the same requests in the same run.

Both sides open a fresh connection per request (prober's default: a fresh connection
per journey run; the baseline is a shared httpx.AsyncClient with keep-alive off),
100 concurrent, and the CPU time of this process (not the server's, which runs in
its own process) is divided by the number of requests. Median of several rounds,
alternating the two so that machine noise hits both.

Target (issue #2): prober's overhead on top of the bare client <= 25%.

    python bench/step_overhead.py [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from _common import median, sample_api_process

from prober import eventloop
from prober.config import parse_config
from prober.http import HttpClient
from prober.journey import JourneyRunner

CONCURRENCY = 100


async def bare_httpx(url: str, requests: int) -> float:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits) as client:
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                response = await client.get(url + "/health")
                assert response.status_code == 200

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return (time.process_time() - started) / requests


async def prober_runs(url: str, requests: int) -> float:
    config = parse_config(
        f"target: {{base_url: '{url}'}}\n"
        "journeys: [{name: health, steps: [{name: get, url: /health, expect: [status == 200]}]}]\n"
    )
    runner = JourneyRunner(config, HttpClient())
    journey = config.journeys[0]
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            result = await runner.run(journey)
            assert result.success, result.failure

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bare, ours = [], []
    with sample_api_process() as url:
        eventloop.run(bare_httpx(url, 200))  # warm-up
        eventloop.run(prober_runs(url, 200))
        for _ in range(args.rounds):
            bare.append(eventloop.run(bare_httpx(url, args.requests)))
            ours.append(eventloop.run(prober_runs(url, args.requests)))
    bare_ms, ours_ms = median(bare) * 1000, median(ours) * 1000
    print(
        f"CPU per step, {CONCURRENCY} in flight, fresh connection each, {args.requests} requests x "
        f"{args.rounds} rounds (median):"
    )
    print(f"  baseline bare httpx (keep-alive off): {bare_ms:.3f} CPU-ms/request")
    print(f"  prober journey runner (1-step run):   {ours_ms:.3f} CPU-ms/step")
    overhead = (ours_ms / bare_ms - 1) * 100
    print(f"  prober overhead on top of bare httpx: {overhead:+.1f}% (target <= +25%)")


if __name__ == "__main__":
    main()
