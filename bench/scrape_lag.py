"""Does scraping the daemon slow its probing? A canary journey (GET /health on nginx, every
0.2 s) beside 1,000 journeys' worth of series (probing every hour, so /metrics is large and
the canary is nearly all the probing), with 0, 4 and 20 threads scraping /metrics back to
back from this process. Per phase it prints the canary's measured latency (median, p99),
the share of its runs marked lag_affected, the schedule lag p99 (the histogram bucket it
falls in), and the scrapes served — for this tree and, in the same run, for the baseline
revision (issue #14: 22914f5), each from a copy taken when the bench starts.

    python bench/scrape_lag.py [--baseline REV] [--seconds 10] [--journeys 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from _servers import free_port, nginx

REPO = Path(__file__).resolve().parent.parent
BASELINE = "22914f5"
PHASES = (0, 4, 20)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def config_text(target: str, journeys: int) -> str:
    lines = [
        f"target: {{base_url: '{target}'}}",
        "defaults: {interval: 1h, timeout: 5s, jitter: 0%, max_concurrency: 100}",
        "journeys:",
        "  - {name: canary, interval: 200ms, steps: [{name: get, url: /health}]}",
        *(f"  - {{name: j{i:04d}, steps: [{{name: get, url: /health}}]}}" for i in range(journeys)),
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def daemon(source: Path, config: str, folder: Path) -> Iterator[tuple[str, Path]]:
    """`prober run` from the tree at `source`; yields (URL, log file) once /readyz is 200."""
    path = folder / "config.yaml"
    path.write_text(config)
    log = folder / "daemon.log"
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PROBER_")}
    environment["PYTHONPATH"] = str(source)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "prober", "run", "-c", str(path),
             "--listen", f"127.0.0.1:{port}", "--state", str(folder / "state.db")],
            stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=source,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"daemon from {source} did not get ready: {log.read_text()[-2000:]}")
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def schedule_lag_buckets(url: str) -> dict[float, float]:
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith("prober_schedule_lag_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket the q-quantile of the observations between falls in."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0
    for bound, cumulative in counts:
        if total and cumulative >= q * total:
            return bound
    return float("nan")


def canary_runs(log: Path, since: float, until: float) -> list[dict[str, object]]:
    runs = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("journey") != "canary" or "duration_ms" not in record:
            continue
        stamp = time.mktime(time.strptime(record["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
        stamp -= time.timezone
        if since <= stamp < until:
            runs.append(record)
    return runs


def phase(url: str, log: Path, scrapers: int, seconds: float) -> dict[str, float]:
    stop = threading.Event()
    served = [0]

    def scrape() -> None:
        while not stop.is_set():
            try:
                urllib.request.urlopen(url + "/metrics", timeout=30).read()
                served[0] += 1
            except OSError:
                time.sleep(0.01)

    before = schedule_lag_buckets(url)
    threads = [threading.Thread(target=scrape, daemon=True) for _ in range(scrapers)]
    started = time.time()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    ended = time.time()
    stop.set()
    for thread in threads:
        thread.join(60)
    after = schedule_lag_buckets(url)
    time.sleep(0.5)  # the daemon writes its log lines in batches
    runs = canary_runs(log, started + 1, ended)
    latencies = [float(run["duration_ms"]) for run in runs]  # type: ignore[arg-type]
    return {
        "runs": len(runs),
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p99_ms": percentile(latencies, 0.99),
        "lag_affected": sum(1 for run in runs if run.get("lag_affected")) / max(1, len(runs)),
        "failed": sum(1 for run in runs if not run.get("success")),
        "schedule_lag_p99_s": bucket_quantile(before, after, 0.99),
        "scrapes_per_s": served[0] / seconds,
    }


def checkout(revision: str, folder: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", revision, "prober", "slo"], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def copy_tree(folder: Path) -> Path:
    """This working tree's code as it is now (others may be editing it while the bench runs)."""
    for part in ("prober", "slo"):
        shutil.copytree(REPO / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--journeys", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, nginx() as target:
        folder = Path(root)
        (folder / "now").mkdir()
        (folder / "old").mkdir()
        sides = {
            "now": copy_tree(folder / "now"),
            f"baseline {args.baseline}": checkout(args.baseline, folder / "old"),
        }
        config = config_text(target, args.journeys)
        size = 0
        print(
            f"{'side':<18} {'scrapers':>8} {'runs':>5} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'lag-affected':>12} {'failed':>6} {'sched p99 s':>11} {'scrapes/s':>9}"
        )
        for name, source in sides.items():
            work = folder / f"run-{name.split()[0]}"
            work.mkdir()
            with daemon(source, config, work) as (url, log):
                size = len(urllib.request.urlopen(url + "/metrics", timeout=30).read())
                time.sleep(3)  # the start-up runs of every journey are over
                for scrapers in PHASES:
                    row = phase(url, log, scrapers, args.seconds)
                    print(
                        f"{name:<18} {scrapers:>8} {row['runs']:>5.0f} "
                        f"{row['latency_p50_ms']:>8.2f} {row['latency_p99_ms']:>8.2f} "
                        f"{row['lag_affected']:>11.0%} {row['failed']:>6.0f} "
                        f"{row['schedule_lag_p99_s']:>11.3f} {row['scrapes_per_s']:>9.1f}",
                        flush=True,
                    )
        print(f"/metrics: {size / 1e6:.1f} MB, {args.journeys} journeys + the canary; "
              f"{args.seconds:g} s per phase; schedule lag p99 is a histogram bucket bound")  # fmt: skip


if __name__ == "__main__":
    main()
