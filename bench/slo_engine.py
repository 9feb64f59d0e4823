"""The SLO engine's figures (issue #13), each beside the same workload on a baseline revision
(default: the commit the "Lean" work of issue #13 resumed from) in the same run. Both sides
run from copies taken when the bench starts (the baseline from git, this side from the
working tree), so edits made while it runs do not mix into one side's figures.

1. replay, 100 SLOs on one journey × 30 days at one run per 10 s (259,200 events; 50
   availability SLOs and 50 latency SLOs over 5 thresholds, objectives 99%..99.95%, 0.1% of
   runs failing, a 2-hour outage on day 12): wall time of read + replay and peak RSS, with
   `--windows exact` and `--windows daemon`. Goal: <= 15 s, <= 150 MiB.
2. replay, 1 SLO × 30 days at one run a minute (43,200 events, 0.4% failing), read + replay.
   Goal: <= 0.5 s.
3. one evaluation of 1,000 SLOs × 4 policies, two ways: the windows and verdicts alone (the
   workload of the issue's 33 ms: per SLO the counts of the default policies' windows and the
   30-day one, 4 policy verdicts, budget and burn rate, 30 days at one run per 15 s restored),
   and `Engine.evaluate` with every figure (the daemon's whole tick: statuses, signals, the
   alert step; after a day of one-minute runs), and the daemon's whole tick: that plus what
   the daemon does with the tick (notification plan, metrics, status board). Goal: <= 10 ms.
4. the daemon's RSS: `prober run`, 1,000 journeys × 1/s against nginx, each with a 30-day SLO
   restored from a state file holding 30 days at one run per 15 s; RSS after 20 s. Goal:
   <= 150 MiB. (bench/anchors.py adds the percentile sketches' full-hour size to it.)

Each figure runs in a fresh process (`--worker`), so one figure's memory is not another's.

    python bench/slo_engine.py [--baseline REV] [--runs 3] [--skip-daemon]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: What a worker runs: this script as copied when the bench started (see `copy_tree`).
SCRIPT = Path(__file__).resolve()
BASELINE = "22914f5"
START = 1_790_000_040.0
DAY = 86400.0


def many_slos_config() -> str:
    lines = [
        "service: bench",
        "journeys: [{name: chat, interval: 10s, steps: [{name: s, url: /}]}]",
        "slos:",
    ]
    for i in range(100):
        objective = ["99%", "99.5%", "99.9%", "99.95%"][i % 4]
        if i < 50:
            lines.append(f"  - {{name: a{i}, journey: chat, objective: {objective}, window: 30d}}")
        else:
            below = [0.5, 1, 2, 3, 5][i % 5]
            lines.append(
                f"  - {{name: l{i}, journey: chat, objective: {objective}, window: 30d,"
                f" indicator: {{latency_below: {below}s}}}}"
            )
    return "\n".join(lines) + "\n"


def event_lines(days: int, interval: float, outage: bool, failing: float) -> list[str]:
    rng = random.Random(7)
    lines = []
    for i in range(int(days * DAY / interval) // int(os.environ.get("BENCH_DIV", "1"))):
        at = START + i * interval
        down = outage and 12 * DAY <= at - START < 12 * DAY + 7200
        success = not down and rng.random() > failing
        lines.append(
            json.dumps(
                {
                    "timestamp": at,
                    "journey": "chat",
                    "success": success,
                    "duration_seconds": round(rng.lognormvariate(-2.5, 0.5), 4),
                }
            )
        )
    return lines


def replay_worker(kind: str, windows: str) -> dict[str, float]:
    from prober.config import parse_config
    from prober.replay import read_events, replay, transition_records

    if kind == "many":
        config, lines = (
            parse_config(many_slos_config()),
            event_lines(30, 10.0, outage=True, failing=0.001),
        )
    else:
        config = parse_config(
            "service: bench\n"
            "journeys: [{name: chat, interval: 1m, steps: [{name: s, url: /}]}]\n"
            "slos: [{name: chat-availability, journey: chat, objective: 99.5%, window: 30d}]\n"
        )
        lines = event_lines(30, 60.0, outage=False, failing=0.004)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as file:
        file.write("\n".join(lines) + "\n")
    del lines  # the command reads the file line by line, as here
    began = time.perf_counter()
    with open(file.name, encoding="utf-8") as source:
        events = read_events(source, "bench")
    os.unlink(file.name)
    options = {} if windows == "exact" else {"windows": windows}
    count = sum(1 for tick in replay(config, events, **options) for _ in transition_records(tick))
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mib": peak, "transitions": count}


def evaluate_worker(whole: bool = False) -> dict[str, float]:
    """`Engine.evaluate` alone, or (`whole`) with what the daemon's `evaluate` does with the
    tick besides the state file's write: the notification plan, the metrics, the status."""
    from prober.config import parse_config
    from prober.metrics import ProberMetrics
    from prober.notify.service import NotificationService
    from prober.slos import engine_spec
    from prober.status import StatusBoard
    from slo.engine import Engine, Event

    text = ["service: bench", "journeys:"]
    text += [f"  - {{name: j{i}, interval: 1m, steps: [{{name: s, url: /}}]}}" for i in range(1000)]
    text += ["slos:"]
    text += [
        f"  - {{name: s{i}, journey: j{i}, objective: 99.9%, window: 30d}}" for i in range(1000)
    ]
    config = parse_config("\n".join(text) + "\n")
    engine = Engine(engine_spec(config))
    metrics = ProberMetrics("bench")
    metrics.configure(config)
    metrics.configure_slos((slo.name, slo.objective) for slo in config.slos)
    board = StatusBoard(config.service)
    board.configure(config.service, {journey.name: 60.0 for journey in config.journeys})
    notify = NotificationService(metrics, publish=board.record_notifiers)
    rng = random.Random(3)
    now = START
    for minute in range(1440):
        now = START + minute * 60.0
        for i in range(1000):
            engine.record(Event(now - 1.0, f"j{i}", rng.random() > 0.002))
        if minute % 60 == 0:
            engine.evaluate(now)
    times = []
    for tick in range(1, 16):
        if tick % 2 == 0:  # the runs keep coming, one a minute
            for i in range(1000):
                engine.record(Event(now + 30.0 * tick - 1.0, f"j{i}", rng.random() > 0.002))
        began = time.perf_counter()
        result = engine.evaluate(now + 30.0 * tick)
        if whole:
            notify.plan(result, engine.annotations)
            metrics.observe_tick(result)
            board.record_tick(result, engine.annotations)
        times.append(time.perf_counter() - began)
    return {"ms": statistics.median(times) * 1000}


def store_worker() -> dict[str, float]:
    """The workload behind the issue's 33 ms (the old bench/slo_store.py tick): 1,000 SLOs,
    each with 30 days at one run per 15 s; per SLO, the 8 counts of the default policies'
    windows and the 30-day one, 4 policy verdicts, budget remaining and burn rate."""
    import slo.windows as windows
    from slo.budget import Counts, budget_remaining, burn_rate
    from slo.policies import DAY as DAY_
    from slo.policies import evaluate_policy, resolve_policies

    policies = resolve_policies(30 * DAY_)
    spans = sorted({30 * DAY_, *(w for p in policies for w in (p.long_window, p.short_window))})
    rng = random.Random(5)
    now = START + 30 * DAY
    times = []
    if hasattr(windows, "Timeline"):
        from slo.policies import judge_policy, min_events_for

        layout = windows.Layout.plan(spans, spans[:-1], 30.0)
        one = windows.Timeline(layout)
        for run in range(int(30 * DAY / 15)):
            one.add(START + run * 15, () if rng.random() >= 0.002 else (0,))
        data = one.snapshot()
        stores = [windows.Timeline.restore(data, layout) for _ in range(1000)]
        micro = [windows.micros(span) for span in spans]
        index = {span: i for i, span in enumerate(spans)}
        guards = [min_events_for(policy, 0.999) for policy in policies]
        for tick in range(16):
            moment = windows.micros(now + 30 * tick)
            began = time.perf_counter()
            for store in stores:
                found = store.bad_and_totals(0, micro, moment)
                for policy, guard in zip(policies, guards, strict=True):
                    long_bad, long_total = found[index[policy.long_window]]
                    short_bad, short_total = found[index[policy.short_window]]
                    judge_policy(policy, 0.001, guard, long_bad, long_total, short_bad, short_total)
                bad, total = found[-1]
                counts = Counts(total - bad, bad)
                budget_remaining(0.999, counts)
                burn_rate(0.999, counts)
            times.append(time.perf_counter() - began)
    else:
        old = windows.EventWindow(30 * DAY)  # type: ignore[attr-defined]
        for run in range(int(30 * DAY / 15)):
            old.add(START + run * 15, rng.random() >= 0.002)
        data = old.snapshot()
        olds = [windows.EventWindow.restore(data, 30 * DAY) for _ in range(1000)]  # type: ignore[attr-defined]
        for tick in range(16):
            began = time.perf_counter()
            for window in olds:
                found = {span: window.counts(span, now + 30 * tick) for span in spans}
                for policy in policies:
                    evaluate_policy(
                        policy, 0.999, found[policy.long_window], found[policy.short_window]
                    )
                budget_remaining(0.999, found[30 * DAY])
                burn_rate(0.999, found[30 * DAY])
            times.append(time.perf_counter() - began)
    return {"ms": statistics.median(times[1:]) * 1000}


def state_file_worker(path: str, journeys: int = 1000) -> dict[str, float]:
    """A state file with 30 days at one run per 15 s for each of 1,000 journeys' SLOs, in
    whichever format this revision's daemon restores."""
    import asyncio

    import slo.windows as windows
    from prober.config import parse_config
    from prober.slos import engine_spec
    from prober.store import StateStore
    from slo.engine import Engine, Event

    rng = random.Random(1)
    now = time.time()
    begin = now - 30 * DAY
    config = parse_config(
        "journeys: [{name: j0000, steps: [{name: s, url: /}]}]\n"
        "slos: [{name: s0000, journey: j0000, objective: 99.9%, window: 30d}]\n"
    )
    if hasattr(windows, "Timeline"):
        engine = Engine(engine_spec(config))
        for run in range(int(30 * DAY / 15)):
            engine.record(Event(begin + run * 15, "j0000", rng.random() >= 0.002))
        snapshot = engine.checkpoint().timelines["j0000"]
        names = [f"j{i:04d}" for i in range(journeys)]
    else:
        window = windows.EventWindow(30 * DAY)  # type: ignore[attr-defined]
        for run in range(int(30 * DAY / 15)):
            window.add(begin + run * 15, rng.random() >= 0.002)
        snapshot = window.snapshot()
        names = [f"s{i:04d}" for i in range(journeys)]

    async def write() -> None:
        store = StateStore.open(path)
        await store.save_windows(dict.fromkeys(names, snapshot), now)
        await store.close()

    asyncio.run(write())
    return {}


def worker(source: Path, *arguments: str) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--worker", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        cwd=source,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def daemon_rss(source: Path) -> float:
    sys.path.insert(0, str(REPO / "bench"))
    from _servers import nginx, rss_mib
    from anchors import journeys_config, prober_daemon, scrape_runs

    with tempfile.TemporaryDirectory() as folder, nginx() as target:
        state = str(Path(folder) / "history.db")
        worker(source, "state", state)
        os.environ["PYTHONPATH"] = str(source)
        try:
            config = journeys_config(target, 1000, slos=True)
            with prober_daemon(config, state, source) as (url, pid):
                time.sleep(20)
                scrape_runs(url)
                return rss_mib(pid)
        finally:
            os.environ.pop("PYTHONPATH")


def copy_tree(folder: Path) -> Path:
    """This working tree's code as it is now (others may be editing it while the bench runs)."""
    for part in ("prober", "slo", "bench"):
        shutil.copytree(REPO / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def checkout(revision: str, folder: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", revision, "prober", "slo", "bench"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--worker", nargs="+")
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        result = (
            replay_worker(rest[0], rest[1])
            if kind == "replay"
            else evaluate_worker(whole=kind == "tick")
            if kind in ("evaluate", "tick")
            else store_worker()
            if kind == "store"
            else state_file_worker(rest[0])
        )
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "now").mkdir()
        (Path(folder) / "old").mkdir()
        global SCRIPT
        now = copy_tree(Path(folder) / "now")
        SCRIPT = now / "bench" / Path(__file__).name
        sides = {
            "now": now,
            f"baseline {args.baseline}": checkout(args.baseline, Path(folder) / "old"),
        }

        measured: dict[tuple[str, ...], list[dict[str, float]]] = {}

        def median(source: Path, *arguments: str, key: str) -> float:
            """One set of runs per workload and side: its rows read different keys."""
            runs = measured.get((str(source), *arguments))
            if runs is None:
                runs = measured[(str(source), *arguments)] = [
                    worker(source, *arguments) for _ in range(args.runs)
                ]
            return statistics.median(run[key] for run in runs)

        rows = [
            ("replay 100 SLOs x 30 d at 1/10 s, exact: s", ("replay", "many", "exact"), "seconds"),
            ("  peak RSS, MiB", ("replay", "many", "exact"), "peak_mib"),
            (
                "replay 100 SLOs x 30 d at 1/10 s, daemon: s",
                ("replay", "many", "daemon"),
                "seconds",
            ),
            ("  peak RSS, MiB", ("replay", "many", "daemon"), "peak_mib"),
            (
                "replay 1 SLO x 30 d at 1/min (read + replay): s",
                ("replay", "one", "exact"),
                "seconds",
            ),
            ("window counts + verdicts, 1,000 SLOs x 4 policies: ms", ("store",), "ms"),
            ("Engine.evaluate with every figure, 1,000 SLOs: ms", ("evaluate",), "ms"),
            ("the daemon's whole tick (+ notify, metrics, status): ms", ("tick",), "ms"),
        ]
        print(f"median of {args.runs} fresh processes per figure; baseline = {args.baseline}")
        for label, arguments, key in rows:
            figures = []
            for name, source in sides.items():
                try:
                    figures.append(f"{name}: {median(source, *arguments, key=key):.2f}")
                except subprocess.CalledProcessError:  # a baseline without this workload
                    figures.append(f"{name}: (cannot run it)")
            print(f"{label:52} " + "   ".join(figures), flush=True)
        if not args.skip_daemon:
            figures = [f"{name}: {daemon_rss(source):.1f}" for name, source in sides.items()]
            print(
                f"{'daemon RSS, 1,000 journeys x 1/s, 30 d restored: MiB':52} "
                + "   ".join(figures)
            )


if __name__ == "__main__":
    main()
