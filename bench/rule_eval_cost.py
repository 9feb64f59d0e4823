"""Rule evaluation cost in a real Prometheus for 100 SLOs: the generated rules with the long
windows built from the 5m slices (the default) against the same rules reading the raw
counters for every window (`optimize_long_windows=False`), on the same backfilled history.

Setup: `--slos` SLOs (default policies, 30d window), each counted by `--replicas` prober
replicas scraped every 15 s (one run per scrape, 0.5% failing), `--days` of history
backfilled with `promtool tsdb create-blocks-from openmetrics` (the 5m slices the optimized
rules read are backfilled too, at the 1m evaluation interval they would have been recorded
at). Each mode gets its own copy of the blocks and its own Prometheus, evaluating every
`--interval`; the figure is the sum over the SLO rule groups of Prometheus' own
`prometheus_rule_group_last_duration_seconds`, per evaluation round, median of `--rounds`
rounds (the first two dropped: cold caches), and Prometheus' CPU seconds per round. The
groups of one round run concurrently, so on a small machine a slow mode's durations also
include waiting for a core; the CPU figure does not.

    python bench/rule_eval_cost.py [--slos 100] [--days 1] [--replicas 2] [--interval 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from prober.config import parse_config
from prober.slos import engine_spec
from slo.promrules import generate_rules, render_rules

SCRAPE = 15
SLICE_STEP = 60
DURATION_SAMPLE = re.compile(
    r'^prometheus_rule_group_last_duration_seconds\{rule_group="[^"]*;(?P<group>[^"]+)"\} (?P<value>\S+)$',
    re.MULTILINE,
)
EVALUATED = re.compile(
    r'^prometheus_rule_group_last_evaluation_timestamp_seconds\{rule_group="[^"]*;(?P<group>[^"]+)"\} (?P<value>\S+)$',
    re.MULTILINE,
)


def config(slos: int) -> str:
    lines = ["service: bench", "journeys:"]
    lines += [
        f"  - {{name: j{i:03d}, interval: 15s, steps: [{{name: s, url: /}}]}}" for i in range(slos)
    ]
    lines.append("slos:")
    lines += [
        f"  - {{name: slo-{i:03d}, journey: j{i:03d}, objective: 99.5%, window: 30d}}"
        for i in range(slos)
    ]
    return "\n".join(lines) + "\n"


def write_history(path: Path, slos: int, days: int, replicas: int, end: int) -> int:
    """OpenMetrics text: the raw counters per replica every 15 s and the 5m slices every
    minute, ending at `end`. Returns the number of samples."""
    rng = random.Random(11)
    steps = days * 86400 // SCRAPE
    start = end - steps * SCRAPE
    samples = 0
    with path.open("w") as out:
        out.write("# TYPE prober_slo_events_total unknown\n")
        totals: dict[str, list[tuple[int, int]]] = {}  # slo -> per step (bad, all), summed
        for i in range(slos):
            slo = f"slo-{i:03d}"
            summed = [[0, 0] for _ in range(steps + 1)]
            for replica in range(replicas):
                good = bad = 0
                good_lines, bad_lines = [], []
                for step in range(steps + 1):
                    if step:
                        if rng.random() < 0.005:
                            bad += 1
                        else:
                            good += 1
                    at = start + step * SCRAPE
                    good_lines.append(f"{good} {at}")
                    bad_lines.append(f"{bad} {at}")
                    summed[step][0] += bad
                    summed[step][1] += good + bad
                for result, values in (("good", good_lines), ("bad", bad_lines)):
                    prefix = f'prober_slo_events_total{{slo="{slo}",result="{result}",job="prober",instance="r{replica}"}} '
                    out.write("".join(prefix + value + "\n" for value in values))
                    samples += len(values)
            totals[slo] = [(bad, total) for bad, total in summed]
        per_slice = 300 // SCRAPE
        every = SLICE_STEP // SCRAPE
        for name, index in (("slo:sli_bad_events:increase5m", 0), ("slo:sli_events:increase5m", 1)):
            out.write(f"# TYPE {name} unknown\n")
            for slo, counts in totals.items():
                labels = f'sloth_id="bench-{slo}",sloth_service="bench",sloth_slo="{slo}",sloth_window="5m"'
                lines = [
                    f"{name}{{{labels}}} {counts[step][index] - counts[step - per_slice][index]} {start + step * SCRAPE}\n"
                    for step in range(per_slice, steps + 1, every)
                ]
                out.write("".join(lines))
                samples += len(lines)
        out.write("# EOF\n")
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


CPU = re.compile(r"^process_cpu_seconds_total (?P<value>\S+)$", re.MULTILINE)


def measure(
    blocks: Path, rules: str, work: Path, interval: int, rounds: int
) -> tuple[list[float], float]:
    """Seconds per evaluation round (sum over the SLO groups), one value per round, and
    Prometheus' CPU seconds per round over the measured rounds."""
    data = work / "data"
    shutil.copytree(blocks, data)
    (work / "rules.yml").write_text(rules)
    (work / "prometheus.yml").write_text(
        f"global: {{evaluation_interval: {interval}s}}\nrule_files: ['{work / 'rules.yml'}']\n"
    )
    port = free_port()
    with (work / "prometheus.log").open("w") as log:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=60d",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if "Ready" in get(url + "/-/ready"):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("Prometheus did not start")
        values: list[float] = []
        cpu: list[float] = []
        seen = 0.0
        deadline = time.monotonic() + (rounds + 4) * interval * 3 + 60
        while len(values) < rounds and time.monotonic() < deadline:
            metrics = get(url + "/metrics")
            stamps = {
                m["group"]: float(m["value"])
                for m in EVALUATED.finditer(metrics)
                if "-slo-" in m["group"]
            }
            if stamps and min(stamps.values()) > seen and min(stamps.values()) > 0:
                seen = max(stamps.values())
                durations = [
                    float(m["value"])
                    for m in DURATION_SAMPLE.finditer(metrics)
                    if "-slo-" in m["group"]
                ]
                values.append(sum(durations))
                match = CPU.search(metrics)
                cpu.append(float(match["value"]) if match else 0.0)
            time.sleep(interval / 10)
        per_round = (cpu[-1] - cpu[2]) / (len(cpu) - 3) if len(cpu) > 3 else float("nan")
        return values, per_round
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slos", type=int, default=100)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--interval", type=int, default=20, help="rule evaluation interval (s)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        raise SystemExit("needs the Debian package prometheus (prometheus, promtool)")
    spec = engine_spec(parse_config(config(args.slos)))
    with tempfile.TemporaryDirectory(prefix="rule-eval-cost-") as temp:
        work = Path(temp)
        end = int(time.time()) // SCRAPE * SCRAPE
        started = time.monotonic()
        samples = write_history(work / "history.om", args.slos, args.days, args.replicas, end)
        subprocess.run(
            [
                "promtool",
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                str(work / "history.om"),
                str(work / "blocks"),
            ],
            check=True,
        )
        (work / "history.om").unlink()
        print(
            f"{args.slos} SLOs x {args.replicas} replicas, {args.days} d of history at {SCRAPE} s"
            f" ({samples:,} samples backfilled in {time.monotonic() - started:.0f} s);"
            f" rules evaluated every {args.interval} s, {args.rounds} rounds each"
        )
        results = {}
        for name, optimize in (
            ("raw counters for every window", False),
            ("long windows from 5m slices", True),
        ):
            rules = render_rules(generate_rules(spec, optimize_long_windows=optimize))
            run = work / ("optimized" if optimize else "raw")
            run.mkdir()
            values, cpu = measure(work / "blocks", rules, run, args.interval, args.rounds + 2)
            values = values[2:]
            if not values:
                raise SystemExit(
                    f"{name}: no evaluation rounds measured (see {run}/prometheus.log)"
                )
            results[name] = statistics.median(values)
            print(
                f"  {name:32s} median {results[name] * 1000:8.1f} ms per round"
                f" (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}, n={len(values)});"
                f" Prometheus CPU {cpu:.2f} s per round"
            )
        raw, optimized = results.values()
        print(f"  optimized / raw: {optimized / raw:.2f} ({raw / optimized:.1f}x cheaper)")


if __name__ == "__main__":
    main()
