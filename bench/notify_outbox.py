"""What the outbox costs per alert state change (target: <= 1 ms).

Per state change, the outbox adds: planning the message and rendering its payload, writing
it in the alert state's transaction, and the sender's bookkeeping to drain it (reading it
back, marking it sent) — everything but the network. Measured on a state file (WAL, as the
daemon runs it), through the store's worker thread, in two shapes:

- one change per evaluation (the usual case: an alert fires or resolves), `--changes`
  evaluations in a row, each a transaction of its own;
- 1,000 changes in one evaluation (an outage), batched as the daemon batches them.

Baseline, in the same run: the same evaluations writing only the alert state (what the
daemon wrote before there was an outbox). Median of `--runs` runs.

    python bench/notify_outbox.py [--changes 200] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _common import median

from prober.config import parse_config
from prober.metrics import ProberMetrics
from prober.notify import NotificationService, build_channels
from prober.store import StateStore
from slo.alerting import ActiveAlert, AlertKey, AlertState, Transition, alert_key
from slo.engine import Tick

CONFIG = (
    "journeys: [{name: j, steps: [{name: s, url: /}]}]\n"
    "alerting: {notifiers: [{type: webhook, url: 'http://127.0.0.1:9/hook'}]}\n"
)
ANNOTATION = {
    "summary": "ApiDown: error_ratio > 90% (healthcheck)",
    "description": "error_ratio > 90% held for journey healthcheck over 2m.",
    "runbook_url": "https://runbooks.example.com/api-down",
}


def label(i: int) -> AlertKey:
    return alert_key(
        {"alertname": f"Alert{i}", "severity": "critical", "journey": "chat", "service": "api"}
    )


class Run:
    """One state file and service; `evaluate` = one evaluation's writes (and drain)."""

    def __init__(self, folder: Path, name: str, *, outbox: bool) -> None:
        self.store = StateStore.open(folder / f"{name}.db")
        self.outbox = outbox
        self.service = NotificationService(ProberMetrics("bench"))
        self.service.configure(build_channels(parse_config(CONFIG)), "http://bench/")
        self.firing: dict[AlertKey, float] = {}

    async def evaluate(self, firing: dict[AlertKey, float], now: float) -> int:
        alerts = AlertState({k: ActiveAlert("firing", s, s, False, {}) for k, s in firing.items()})
        gone = tuple(
            Transition(k, "resolved", now, s, {}) for k, s in self.firing.items() if k not in firing
        )
        self.firing = firing
        records = alerts.to_records()
        if not self.outbox:
            await self.store.save_alerts(records, now)
            return 0
        tick = Tick(now, (), gone, alerts, {})
        entries, notified = self.service.plan(tick, dict.fromkeys(firing, ANNOTATION))
        await self.store.save_alerts_with_notifications(records, now, entries, notified)
        # The sender's bookkeeping, as it does it: read back, then mark sent and read on.
        drained = 0
        rows = await self.store.pending_notifications("webhook", 500)
        while rows:
            drained += len(rows)
            rows = await self.store.sent_then_pending([row.id for row in rows], now, "webhook", 500)
        return drained

    async def close(self) -> None:
        await self.store.close()


async def one_at_a_time(
    folder: Path, name: str, changes: int, *, outbox: bool
) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) per evaluation with one state change each."""
    run = Run(folder, name, outbox=outbox)
    background = {label(1000 + i): 1_780_000_000.0 for i in range(10)}  # 10 already firing
    now = 1_780_000_000.0
    await run.evaluate(dict(background), now)
    started, cpu = time.perf_counter(), time.process_time()
    firing = dict(background)
    for i in range(changes):
        now += 30
        key = label(i // 2)
        if i % 2 == 0:
            firing[key] = now
        else:
            del firing[key]
        await run.evaluate(dict(firing), now)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await run.close()
    return elapsed / changes, cpu / changes


async def all_at_once(folder: Path, name: str, count: int, *, outbox: bool) -> tuple[float, float]:
    """Wall and CPU seconds per state change when `count` alerts fire in one evaluation."""
    run = Run(folder, name, outbox=outbox)
    firing = {label(i): 1_780_000_000.0 for i in range(count)}
    started, cpu = time.perf_counter(), time.process_time()
    drained = await run.evaluate(firing, 1_780_000_030.0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert not outbox or drained == count
    await run.close()
    return elapsed / count, cpu / count


async def main(changes: int, runs: int) -> None:
    shapes: dict[str, list[tuple[float, float]]] = {
        "single": [],
        "single-base": [],
        "burst": [],
        "burst-base": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as name:
        folder = Path(name)
        for index in range(runs):
            for shape, measure, size in (
                ("single", one_at_a_time, changes),
                ("burst", all_at_once, 1000),
            ):
                shapes[f"{shape}-base"].append(
                    await measure(folder, f"{shape}-base-{index}", size, outbox=False)
                )
                shapes[shape].append(await measure(folder, f"{shape}-{index}", size, outbox=True))

    def ms(shape: str, which: int) -> float:
        return median([figures[which] for figures in shapes[shape]]) * 1000

    lines = []
    worst = 0.0
    for shape, title in (
        ("single", f"one change per evaluation ({changes} evaluations)"),
        ("burst", "1,000 changes in one evaluation"),
    ):
        wall, cpu = ms(shape, 0), ms(shape, 1)
        base_wall, base_cpu = ms(f"{shape}-base", 0), ms(f"{shape}-base", 1)
        worst = max(worst, wall - base_wall, cpu - base_cpu)
        lines.append(
            f"  {title}:\n"
            f"    wall {wall:.3f} ms, baseline (alert state only) {base_wall:.3f} ms"
            f" → outbox adds {wall - base_wall:.3f} ms\n"
            f"    CPU  {cpu:.3f} ms, baseline {base_cpu:.3f} ms → outbox adds {cpu - base_cpu:.3f} ms"
        )
    print(
        f"outbox cost per alert state change (median of {runs} runs; state file, WAL;"
        " CPU = all threads):\n" + "\n".join(lines) + "\n"
        f"  target: <= 1 ms added per change — {'met' if worst <= 1 else 'NOT met'}"
        f" (largest added: {worst:.3f} ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.changes, args.runs))
