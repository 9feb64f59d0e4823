"""`prober replay`: multi-day scenarios through the SLO engine in simulated time, pinned by
golden timelines and checked against DESIGN's exact definition computed naively."""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prober.config import parse_config
from prober.replay import event_to_json, parse_timestamp, read_events, replay, transition_records
from tests.conftest import PROPERTY_SETTINGS, run_prober

CONFIG = """
service: shop
journeys:
  - {name: chat, interval: 30s, steps: [{name: send, url: /}]}
slos:
  - {name: chat-availability, journey: chat, objective: 99.5%, window: 30d}
"""
START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
INTERVAL = 30.0
HOUR = 3600.0


def events(hours: float, failing: Callable[[int, float], bool]) -> list[str]:
    """One run every 30 s for `hours`; `failing(index, seconds_from_start)` decides."""
    lines = []
    for index in range(int(hours * HOUR / INTERVAL)):
        at = START + index * INTERVAL
        ok = not failing(index, at - START)
        lines.append(json.dumps({"timestamp": at, "journey": "chat", "success": ok}))
    return lines


SCENARIOS: dict[str, Callable[[], list[str]]] = {
    # 2 h healthy, 20 min hard down, healthy again.
    "fast-outage": lambda: events(4, lambda i, t: 2 * HOUR <= t < 2 * HOUR + 1200),
    # 4% of runs fail for 12 h after 6 h healthy: 4% > 3% (6h/30m) but < 7.2% (1h/5m).
    "degradation-4pct": lambda: events(20, lambda i, t: 6 * HOUR <= t < 18 * HOUR and i % 25 == 0),
    # 1% of runs fail for 2 days: only the slow ticket tier (3d/6h at 0.5%) may fire.
    "slow-leak": lambda: events(48, lambda i, t: i % 100 == 0),
}


def timeline(name: str) -> list[dict[str, object]]:
    config = parse_config(CONFIG)
    recorded = read_events(SCENARIOS[name](), name)
    return [record for tick in replay(config, recorded) for record in transition_records(tick)]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_replay_golden(name: str, golden) -> None:  # type: ignore[no-untyped-def]
    """Each scenario's alert timeline is pinned."""
    golden(f"replay/{name}.jsonl", "".join(json.dumps(record) + "\n" for record in timeline(name)))


def firings(records: list[dict[str, object]], long_window: str) -> list[dict[str, object]]:
    return [r for r in records if r["state"] == "firing" and r.get("long_window") == long_window]


def seconds(record: dict[str, object]) -> float:
    return parse_timestamp(record["timestamp"]) - START


def test_fast_outage_pages_within_5_minutes_and_clears() -> None:
    """A hard outage pages on 1h/5m within 5 minutes, and resolves after recovery."""
    records = timeline("fast-outage")
    fast = firings(records, "1h")
    assert fast
    assert fast[0]["severity"] == "critical"
    assert 2 * HOUR < seconds(fast[0]) <= 2 * HOUR + 300
    resolved = [r for r in records if r["state"] == "resolved" and r.get("long_window") == "1h"]
    assert resolved
    assert 2 * HOUR + 1200 < seconds(resolved[0]) <= 2 * HOUR + 1200 + 600
    assert not any(
        r["state"] == "firing"
        for r in records
        if seconds(r) > 3.5 * HOUR and r.get("long_window") == "1h"
    )


def test_four_percent_degradation_pages_slow_tier_only() -> None:
    """4% errors on a 99.5% SLO pages on 6h/30m and never on 1h/5m."""
    records = timeline("degradation-4pct")
    assert firings(records, "6h")
    assert firings(records, "6h")[0]["severity"] == "critical"
    assert firings(records, "1h") == []


def test_slow_leak_only_warns() -> None:
    """1% errors for two days opens a ticket (warning) and never pages."""
    records = timeline("slow-leak")
    fired = [r for r in records if r["state"] == "firing"]
    assert fired
    assert {r["severity"] for r in fired} == {"warning"}


def _ratio(
    points: list[tuple[float, bool]], tick: float, window: float
) -> tuple[float | None, int]:
    inside = [ok for at, ok in points if tick - window < at <= tick]
    return ((inside.count(False) / len(inside)) if inside else None), len(inside)


def naive_firing(
    lines: list[str], long: float, short: float, limit: float, min_events: int, step: float = 30.0
) -> Iterator[tuple[float, bool]]:
    """DESIGN's definition computed the slow way: at each tick, bad/total over (t - w, t]."""
    points = [(float(json.loads(line)["timestamp"]), json.loads(line)["success"]) for line in lines]
    start, end = points[0][0], points[-1][0]
    tick = start
    while tick <= end:
        long_ratio, long_n = _ratio(points, tick, long)
        short_ratio, _ = _ratio(points, tick, short)
        fires = (
            long_ratio is not None
            and short_ratio is not None
            and long_ratio > limit
            and short_ratio > limit
            and long_n >= min_events
        )
        yield tick, fires
        tick += step


@pytest.mark.parametrize("name", ["fast-outage", "degradation-4pct"])
def test_transitions_match_exact_definition(name: str) -> None:
    """The engine's 1h/5m and 6h/30m transitions are within two evaluation intervals of
    DESIGN's exact definition (computed naively here)."""
    from slo.policies import default_min_events

    lines = SCENARIOS[name]()
    records = timeline(name)
    for long, short, threshold, label in ((HOUR, 300.0, 14.4, "1h"), (6 * HOUR, 1800.0, 6.0, "6h")):
        limit = threshold * 0.005
        naive_changes = []
        previous = False
        for tick, fires in naive_firing(
            lines, long, short, limit, default_min_events(threshold, 0.995)
        ):
            if fires != previous:
                naive_changes.append((tick, "firing" if fires else "resolved"))
                previous = fires
        engine_changes = [
            (parse_timestamp(r["timestamp"]), r["state"])
            for r in records
            if r.get("long_window") == label
        ]
        assert [state for _, state in engine_changes] == [state for _, state in naive_changes]
        for (engine_at, _), (naive_at, _) in zip(engine_changes, naive_changes, strict=True):
            assert abs(engine_at - naive_at) <= 2 * 30.0


def replay_every_tick(config_text: str, lines: list[str]) -> list[dict[str, object]]:
    """The replay loop with no skipping: the engine evaluated at every tick."""
    from prober.slos import engine_spec
    from slo.engine import Engine

    config = parse_config(config_text)
    recorded = read_events(lines, "events")
    engine = Engine(engine_spec(config, journeys={e.journey for e in recorded}), windows="exact")
    step = config.alerting.evaluation_interval
    start, end = recorded[0].timestamp, recorded[-1].timestamp
    position, records = 0, list[dict[str, object]]()
    for index in range(math.floor((end - start) / step + 1e-9) + 1):
        now = start + index * step
        while position < len(recorded) and recorded[position].timestamp <= now:
            engine.record(recorded[position])
            position += 1
        records.extend(transition_records(engine.evaluate(now, figures=False)))
    return records


@settings(PROPERTY_SETTINGS, max_examples=25)
@given(
    outages=st.lists(
        st.tuples(st.integers(0, 40 * 120), st.integers(1, 200), st.sampled_from([1, 2, 3])),
        max_size=4,
    ),
    gaps=st.lists(st.tuples(st.integers(0, 40 * 120), st.integers(1, 2000)), max_size=2),
    step=st.sampled_from(["30s", "47s", "2m"]),
)
def test_property_skipping_quiet_ticks_changes_nothing(
    outages: list[tuple[int, int, int]], gaps: list[tuple[int, int]], step: str
) -> None:
    """40 h of runs every 30 s with random outages (every k-th run failing) and gaps: the
    replay that jumps over provably quiet ticks gives the transitions of one that
    evaluates every tick."""

    def failing(index: int) -> bool:
        return any(s <= index < s + n and index % k == 0 for s, n, k in outages)

    def missing(index: int) -> bool:
        return any(s <= index < s + n for s, n in gaps)

    lines = [
        json.dumps(
            {"timestamp": START + i * INTERVAL, "journey": "chat", "success": not failing(i)}
        )
        for i in range(40 * 120)
        if not missing(i) or i in (0, 40 * 120 - 1)
    ]
    config_text = CONFIG + f"alerting: {{evaluation_interval: {step}}}\n"
    recorded = read_events(lines, "events")
    fast = [
        r for tick in replay(parse_config(config_text), recorded) for r in transition_records(tick)
    ]
    assert fast == replay_every_tick(config_text, lines)


def test_a_tiny_evaluation_interval_does_not_step_through_every_tick() -> None:
    """30 days at a 1 ms evaluation interval is 2.6 billion ticks; with nothing to evaluate
    between runs (all good, none missing), replay evaluates about once per run at most."""
    lines = events(30 * 24, lambda i, t: False)[::20]  # a run every 10 minutes
    config = parse_config(
        CONFIG.replace("interval: 30s", "interval: 10m") + "alerting: {evaluation_interval: 1ms}\n"
    )
    recorded = read_events(lines, "events")

    def stepping_through_every_tick(signum: int, frame: object) -> None:
        raise AssertionError("replay is stepping through every 1 ms tick")

    # Not a benchmark: it takes well under a second; stepping through every tick would take
    # many minutes, so this bound can only trip on that, never on a slow machine.
    previous = signal.signal(signal.SIGALRM, stepping_through_every_tick)
    signal.alarm(120)
    try:
        evaluations = sum(1 for _ in replay(config, recorded))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert 0 < evaluations <= len(lines)


def test_export_format_round_trips() -> None:
    """What `export` writes, `replay` reads back unchanged."""
    original = read_events(
        [
            '{"timestamp": "2026-11-01T12:00:00Z", "journey": "chat", "success": false, "duration_seconds": 0.84,'
            ' "failed_step": "login", "reason": "status", "status_codes": {"login": 503}, "captures": {"version": "1.4.2"}}',
        ],
        "x",
    )
    assert read_events([event_to_json(original[0])], "y") == original


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "x:1:"),
        ('{"journey": "chat", "success": true}', "missing timestamp"),
        ('{"timestamp": "yesterday", "journey": "chat", "success": true}', "invalid timestamp"),
        ('{"timestamp": 1, "journey": "chat", "success": "yes"}', "'success' true or false"),
    ],
    ids=["not-json", "missing-field", "bad-timestamp", "bad-success"],
)
def test_bad_event_lines_are_reported_with_line_number(line: str, message: str) -> None:
    """A malformed replay line is an error naming its line."""
    from prober.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        read_events(["", line], "x")
    assert str(caught.value).startswith("x:2:")
    assert message.removeprefix("x:1:") in str(caught.value)


@pytest.mark.integration
def test_replay_command(tmp_path: Path) -> None:
    """`prober replay` prints the timeline as JSON lines; a bad file exits 2."""
    config, recorded = tmp_path / "c.yaml", tmp_path / "e.jsonl"
    config.write_text(CONFIG)
    recorded.write_text("\n".join(SCENARIOS["fast-outage"]()) + "\n")
    result = run_prober("replay", "-c", str(config), "--events", str(recorded))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == timeline("fast-outage")
    recorded.write_text("{broken\n")
    result = run_prober("replay", "-c", str(config), "--events", str(recorded))
    assert result.returncode == 2
    assert f"{recorded}:1:" in result.stderr


@pytest.mark.parametrize(
    "options",
    [
        ["--windows", "daemon"],
        ["--windows", "daemon", "--restart-every", "2h"],
        ["--windows", "exact", "--restart-every", "45m"],
    ],
    ids=["daemon", "daemon-restarts", "exact-restarts"],
)
def test_replay_command_with_daemon_windows_and_restarts(
    tmp_path: Path, options: list[str]
) -> None:
    """`--windows daemon` and `--restart-every` print the same timeline as the default."""
    config, recorded = tmp_path / "c.yaml", tmp_path / "e.jsonl"
    config.write_text(CONFIG)
    recorded.write_text("\n".join(SCENARIOS["degradation-4pct"]()) + "\n")
    result = run_prober("replay", "-c", str(config), "--events", str(recorded), *options)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == timeline("degradation-4pct")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--restart-every", "soon"], "--restart-every: invalid duration"),
        (["--restart-every", "0s"], "--restart-every must be a positive duration"),
        (["--windows", "buckets"], "expected one of exact, daemon, got 'buckets'"),
    ],
    ids=["bad-duration", "zero", "bad-mode"],
)
def test_replay_command_usage_errors(tmp_path: Path, options: list[str], message: str) -> None:
    config, recorded = tmp_path / "c.yaml", tmp_path / "e.jsonl"
    config.write_text(CONFIG)
    recorded.write_text("\n".join(SCENARIOS["fast-outage"]()) + "\n")
    result = run_prober("replay", "-c", str(config), "--events", str(recorded), *options)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
