"""Memory and evaluation time of the SLO window store at the size issue #4 sets.

1,000 SLOs, each with 30 days of history at one run per 15 s (172,800 events), evaluated
every 30 s against DESIGN's four default burn-rate policies plus the 30-day budget.

- Memory (tracemalloc): one store is fed 30 days of runs by `add`, with a `prune` every 30 s;
  999 more are restored from its snapshot, then all 1,000 run an hour of ticks (adds and
  prunes) so that every array has grown and dropped blocks the way it does in the daemon.
  Reported: the store's allocations only. Target: <= 200 MiB.
- Time per tick: for every SLO, 8 window counts and 4 `evaluate_policy` calls (the policies'
  long and short windows), plus the 30-day counts, budget remaining and burn rate; the two
  runs that arrived since the last tick and the `prune` are timed separately. Median of
  several ticks, tracemalloc off. Target: <= 50 ms.

    python bench/slo_store.py [--slos 1000] [--days 30] [--interval 15] [--ticks 15]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc

from slo.budget import budget_remaining, burn_rate
from slo.policies import DAY, evaluate_policy, resolve_policies
from slo.windows import EventWindow

OBJECTIVE = 0.999
EVALUATION_INTERVAL = 30.0
FAILURE_RATIO = 0.002
START = 1_790_000_040.0
MIB = 1024 * 1024


def fed_store(days: float, interval: float, rng: random.Random) -> tuple[EventWindow, float]:
    """One store fed `days` of runs the way the daemon feeds it; returns it and the last time."""
    store = EventWindow(days * DAY)
    runs = int(days * DAY / interval)
    per_tick = max(1, int(EVALUATION_INTERVAL / interval))
    now = START
    for run in range(runs):
        now = START + run * interval
        store.add(now, rng.random() >= FAILURE_RATIO)
        if run % per_tick == 0:
            store.prune(now)
    return store, now


def advance(stores: list[EventWindow], now: float, interval: float, rng: random.Random) -> float:
    """One evaluation interval of runs for every store, then a prune; returns the new now."""
    runs = max(1, int(EVALUATION_INTERVAL / interval))
    for store in stores:
        for run in range(1, runs + 1):
            store.add(now + run * interval, rng.random() >= FAILURE_RATIO)
    now += runs * interval
    for store in stores:
        store.prune(now)
    return now


def evaluate(stores: list[EventWindow], now: float, slo_window: float) -> int:
    """One tick of SLO evaluation for every store; returns how many policies fire."""
    policies = resolve_policies(slo_window)
    firing = 0
    for store in stores:
        for policy in policies:
            verdict = evaluate_policy(
                policy,
                OBJECTIVE,
                store.counts(policy.long_window, now),
                store.counts(policy.short_window, now),
            )
            firing += verdict.firing
        month = store.counts(slo_window, now)
        budget_remaining(OBJECTIVE, month)
        burn_rate(OBJECTIVE, month)
    return firing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, default=1000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between runs")
    parser.add_argument("--ticks", type=int, default=15, help="timed evaluation ticks")
    args = parser.parse_args()
    rng = random.Random(4)
    slo_window = args.days * DAY

    started = time.perf_counter()
    template, now = fed_store(args.days, args.interval, rng)
    fed_seconds = time.perf_counter() - started
    snapshot = template.snapshot()

    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    stores = [template] + [EventWindow.restore(snapshot, slo_window) for _ in range(args.slos - 1)]
    warm_ticks = int(3600 / EVALUATION_INTERVAL)
    for _ in range(warm_ticks):
        now = advance(stores, now, args.interval, rng)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()

    evaluations = []
    feeding = []
    for _ in range(args.ticks):
        tick = time.perf_counter()
        now = advance(stores, now, args.interval, rng)
        feeding.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        evaluate(stores, now, slo_window)
        evaluations.append(time.perf_counter() - tick)

    runs = int(slo_window / args.interval)
    print(
        f"store: {args.slos} SLOs × {args.days:g} days at one run per {args.interval:g} s ({runs:,} runs each)"
    )
    print(
        f"  fed one store by add/prune in {fed_seconds:.2f} s; snapshot {len(snapshot) / 1024:.0f} KiB"
    )
    print(
        f"  memory (tracemalloc, after {warm_ticks} live ticks): {used / MIB:.1f} MiB total, {used / args.slos / 1024:.1f} KiB per SLO (target <= 200 MiB)"
    )
    print(
        f"tick: {args.slos} SLOs × 4 policies (8 window counts) + 30-day budget, median of {args.ticks}:"
    )
    print(
        f"  evaluate: {statistics.median(evaluations) * 1000:.1f} ms (target <= 50 ms; min {min(evaluations) * 1000:.1f}, max {max(evaluations) * 1000:.1f})"
    )
    print(f"  add the tick's runs + prune: {statistics.median(feeding) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
