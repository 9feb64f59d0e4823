"""1,000 alerts changing state at once reach a local Alertmanager (target: within 5 s).

A real Alertmanager (Debian `prometheus-alertmanager`) on loopback. Each round, 1,000 alerts
with fresh label sets start firing in one evaluation: the notification service plans them,
writes them to a state file in the alert state's transaction and the Alertmanager channel
drains the outbox; the clock runs from the evaluation until `GET /api/v2/alerts` lists all
1,000. Then they all resolve in one evaluation, timed until Alertmanager lists none. The
baseline, measured in the same run: one bare POST of the same 1,000 alerts (what the
outbox adds is the write, the read-back and the marking).

    python bench/notify_alertmanager.py [--alerts 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import median
from _servers import free_port

from prober.config import parse_config
from prober.http import HttpClient
from prober.metrics import ProberMetrics
from prober.notify import NotificationService, build_channels
from prober.notify.channels import http_post
from prober.notify.message import rfc3339
from prober.store import StateStore
from slo.alerting import ActiveAlert, AlertKey, AlertState, Transition, alert_key
from slo.engine import Tick

DEADLINE = 60.0


def active_count(url: str) -> int:
    with urllib.request.urlopen(url + "/api/v2/alerts?silenced=false", timeout=10) as answer:
        return len(json.loads(answer.read()))


async def wait_count(url: str, wanted: int, started: float) -> float:
    """Seconds from `started` until Alertmanager lists `wanted` active alerts."""
    while time.monotonic() - started < DEADLINE:
        if await asyncio.to_thread(active_count, url) == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise RuntimeError(f"Alertmanager never listed {wanted} alerts")


def keys(round_: int, count: int) -> list[AlertKey]:
    return [
        alert_key(
            {
                "alertname": f"Bench{round_}",
                "severity": "critical",
                "journey": f"journey-{i}",
                "service": "bench",
            }
        )
        for i in range(count)
    ]


async def evaluate(
    service: NotificationService,
    store: StateStore,
    firing: dict[AlertKey, float],
    resolved: dict[AlertKey, float],
) -> None:
    now = time.time()
    alerts = AlertState({k: ActiveAlert("firing", s, s, False, {}) for k, s in firing.items()})
    gone = tuple(Transition(k, "resolved", now, s, {}) for k, s in resolved.items())
    entries, notified = service.plan(Tick(now, (), gone, alerts, {}), {})
    await store.save_alerts_with_notifications(alerts.to_records(), now, entries, notified)
    service.queued(entries)


async def run(url: str, count: int, rounds: int, folder: Path) -> None:
    config = parse_config(
        "journeys: [{name: j, steps: [{name: s, url: /}]}]\n"
        f"alerting: {{notifiers: [{{type: alertmanager, url: {url}, resend_interval: 1h}}]}}\n"
    )
    store = StateStore.open(folder / "state.db")
    service = NotificationService(ProberMetrics("bench"))
    service.configure(build_channels(config), "http://bench.example.com/")
    await service.start(store)
    fire_times, resolve_times, baselines = [], [], []
    client = HttpClient()
    try:
        for round_ in range(rounds):
            since = time.time()
            labels = keys(round_, count)
            started = time.monotonic()
            await evaluate(service, store, dict.fromkeys(labels, since), {})
            fire_times.append(await wait_count(url, count, started))
            started = time.monotonic()
            await evaluate(service, store, {}, dict.fromkeys(labels, since))
            resolve_times.append(await wait_count(url, 0, started))
            # Baseline: the same 1,000 alerts in one bare POST (then resolved, untimed).
            body = [
                {
                    "labels": {**dict(key), "alertname": f"Base{round_}"},
                    "startsAt": rfc3339(since - 60),
                    "endsAt": rfc3339(since + 3600),
                }
                for key in labels
            ]
            started = time.monotonic()
            await http_post(client, url + "/api/v2/alerts", body, where="bench", timeout=30)
            baselines.append(await wait_count(url, count, started))
            for alert in body:
                alert["endsAt"] = rfc3339(time.time() - 1)
            await http_post(client, url + "/api/v2/alerts", body, where="bench", timeout=30)
            await wait_count(url, 0, time.monotonic())
            print(
                f"  round {round_ + 1}: firing {fire_times[-1]:.3f} s, resolved"
                f" {resolve_times[-1]:.3f} s, bare POST {baselines[-1]:.3f} s",
                flush=True,
            )
    finally:
        await service.stop()
        await store.close()
    print(
        f"{count} alerts changing state at once → Alertmanager (median of {rounds} rounds):\n"
        f"  firing:   {median(fire_times):.3f} s (max {max(fire_times):.3f} s)\n"
        f"  resolved: {median(resolve_times):.3f} s (max {max(resolve_times):.3f} s)\n"
        f"  baseline, one bare POST of the same alerts: {median(baselines):.3f} s\n"
        f"  target: <= 5 s — {'met' if max(fire_times + resolve_times) <= 5 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        sys.exit("alertmanager is not installed: apt-get install prometheus-alertmanager")
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as folder:
        port = free_port()
        config = Path(folder) / "alertmanager.yml"
        config.write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={folder}/am",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    active_count(url)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            asyncio.run(run(url, args.alerts, args.rounds, Path(folder)))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
