"""Replay of 30 days of one-minute events for one SLO (43,200 events, a tick every 30 s:
86,400 evaluations), whole pipeline from parsed events to transition records. Median of
several runs, beside the bare cost of reading the events in the same run.

Target (issue #4): <= 2 s.

    python bench/replay_speed.py [--days 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from prober.config import parse_config
from prober.replay import read_events, replay, transition_records

CONFIG = """
service: bench
journeys: [{name: chat, interval: 1m, steps: [{name: s, url: /}]}]
slos: [{name: chat-availability, journey: chat, objective: 99.5%, window: 30d}]
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(7)
    start = 1_790_000_000.0
    lines = [
        json.dumps(
            {"timestamp": start + 60 * i, "journey": "chat", "success": rng.random() > 0.004}
        )
        for i in range(args.days * 1440)
    ]
    config = parse_config(CONFIG)
    reading, replaying, transitions = [], [], 0
    for _ in range(args.runs):
        began = time.perf_counter()
        events = read_events(lines, "bench")
        read = time.perf_counter()
        transitions = sum(1 for tick in replay(config, events) for _ in transition_records(tick))
        done = time.perf_counter()
        reading.append(read - began)
        replaying.append(done - read)
    total = [a + b for a, b in zip(reading, replaying, strict=True)]
    print(
        f"replay of {args.days} days of one-minute events ({len(lines)} events, one SLO, "
        f"{transitions} transitions):"
    )
    print(f"  whole (read + replay): median {statistics.median(total):.2f} s (target <= 2 s)")
    print(f"  baseline, reading the events alone: median {statistics.median(reading):.2f} s")


if __name__ == "__main__":
    main()
