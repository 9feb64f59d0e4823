"""The daemon's engine gives the exact definition's answers at its ticks (issue #13).

- Regressions, each failing on the engine before the per-journey timelines: a window as long
  as the retention counted the runs dropped from it (1), and a bucketed window invented a
  page from a run that had already left it (2).
- A property: random streams longer than the retention, with gaps, bursts, duplicates and
  restarts, through `prober replay --windows daemon` (the daemon's timelines, snapshots and
  restarts) and `--windows exact` (DESIGN's definition, every event kept): the same
  transitions; and the figures (budget remaining, burn rates) of the daemon's engine equal
  those of the exact one to 1e-9 wherever the window is exact.

PROBER_PROPERTY_EXAMPLES=500 hunts longer than CI's bounded run.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from prober.config import parse_config
from prober.replay import replay, transition_records
from prober.slos import engine_spec
from slo.engine import Engine, EngineSpec, Event, SloSpec
from slo.policies import BurnRatePolicy, PolicySpec, resolve_policies
from tests.conftest import hunt_settings

PROPERTY_SETTINGS = hunt_settings(12)

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
T0 = 1_790_000_040.0  # a multiple of 60 s: on the evaluation grid


def transitions(engine: Engine, now: float) -> list[tuple[float, str, str]]:
    tick = engine.evaluate(now, figures=False)
    return [(now, dict(t.labels)["long_window"], t.state) for t in tick.transitions]


def test_a_policy_as_long_as_the_window_does_not_count_dropped_runs() -> None:
    """Issue #13, 1: `window: 3d`, one policy 3d/6h at burn rate 1, one run a minute, the first
    6 h all failing then all passing, from day 3.5 one run in 50 failing. By the exact
    definition the failures of the first 6 h have left the 3 days by day 3.25, and the page
    fires once, at day 3.6458 (5 failed of 4,320 runs, over 0.1%); the daemon's engine
    counted the dropped failures once every 30 minutes and fired and resolved from day 3.5."""
    slo = SloSpec("s", "chat", 0.999, 3 * DAY, (BurnRatePolicy("warning", 3 * DAY, 6 * HOUR, 1.0),))
    engine = Engine(EngineSpec("svc", (slo,), intervals={"chat": MINUTE}))
    made = []
    run = 0
    for tick in range(int(5 * DAY / 30) + 1):
        now = T0 + tick * 30.0
        while T0 + run * MINUTE <= now:
            failing = run < 360 or (run >= 3.5 * 1440 and run % 50 == 0)
            engine.record(Event(T0 + run * MINUTE, "chat", not failing))
            run += 1
        if now >= T0 + 3 * DAY:
            made.extend(transitions(engine, now))
        else:
            engine.evaluate(now, figures=False)
    assert made == [(T0 + 315_000.0, "3d", "firing")]


def test_a_run_that_left_the_window_cannot_page() -> None:
    """Issue #13, 2: a failed run 1 day and 40 s old has left the 1-day window; with a new
    failed run, the long window holds one run, under the guard of 2. The exact definition
    does not fire; the old engine still counted the old run (its minute had not ended) and
    paged."""
    policy = PolicySpec("critical", DAY, 2 * HOUR, burn_rate=5.0)
    slo = SloSpec("s", "chat", 0.9, DAY, resolve_policies(DAY, (policy,)))
    engine = Engine(EngineSpec("svc", (slo,), intervals={"chat": DAY}))
    old = T0 + 10.0  # 10 s into a minute
    engine.record(Event(old, "chat", False))
    engine.evaluate(old + 20, figures=False)
    engine.record(Event(old + DAY + 5.0, "chat", False))
    assert transitions(engine, T0 + DAY + 30.0) == []
    assert engine.windows["s"].counts(DAY, T0 + DAY + 30.0).total == 1


# --------------------------------------------------------------------------- the property

CONFIG = """
service: shop
journeys:
  - {{name: chat, interval: {interval}s, steps: [{{name: send, url: /}}]}}
slos:
  - {{name: avail, journey: chat, objective: {objective}, window: {window}}}
  - {{name: fast, journey: chat, objective: 95%, window: {window},
      indicator: {{latency_below: 1s}}}}
alerting:
  evaluation_interval: {evaluation}s
  burn_rate_policies:
    - {{severity: critical, long: 1h, short: 5m, burn_rate: {fast}, min_events: {guard}}}
    - {{severity: critical, long: 6h, short: 30m, burn_rate: {medium}}}
    - {{severity: warning, long: 1d, short: 2h, burn_rate: {slow}}}
"""


@st.composite
def recordings(draw: st.DrawFn) -> tuple[str, list[Event], float | None]:
    """A config and a recording over up to three times its retention (the 1-day policy,
    or a 3-day SLO window), with outages, gaps, bursts and duplicate timestamps."""
    interval = draw(st.sampled_from([60, 120, 300]))
    window = draw(st.sampled_from(["1d", "3d"]))
    config = CONFIG.format(
        interval=interval,
        objective=draw(st.sampled_from(["99%", "99.5%", "99.9%"])),
        window=window,
        evaluation=draw(st.sampled_from([15, 30, 60])),
        fast=draw(st.sampled_from([2, 14.4])),
        medium=draw(st.sampled_from([1, 6])),
        slow=draw(st.sampled_from([1, 3])),
        guard=draw(st.sampled_from([0, 1, 20])),
    )
    days = draw(st.integers(2, 9 if window == "3d" else 3))
    rng = random.Random(draw(st.integers(0, 2**32)))
    events = []
    at = T0 + rng.randrange(interval)
    failing_until = -1.0
    while at < T0 + days * DAY:
        roll = rng.random()
        if roll < 0.002:
            failing_until = at + rng.choice([10 * MINUTE, HOUR, 6 * HOUR])
        elif roll < 0.004:
            at += rng.choice([HOUR, 12 * HOUR])
            continue
        success = at >= failing_until and rng.random() > 0.01
        duration = rng.choice([0.2, 0.4, 1.5])
        for _ in range(rng.choice([1, 1, 1, 2, 3])):  # bursts and duplicate timestamps
            events.append(Event(at, "chat", success, duration))
        at += interval + rng.uniform(-0.1, 0.1) * interval
    restart = draw(st.sampled_from([None, 3 * HOUR, DAY]))
    return config, events, restart


def lines(config_text: str, events: list[Event], **options: object) -> list[str]:
    config = parse_config(config_text)
    return [
        str(sorted(record.items()))
        for tick in replay(config, events, **options)  # type: ignore[arg-type]
        for record in transition_records(tick)
    ]


@PROPERTY_SETTINGS
@given(recordings())
def test_property_daemon_windows_match_the_exact_definition(
    recording: tuple[str, list[Event], float | None],
) -> None:
    """Same transitions with the daemon's timelines as with every event kept, with and
    without restarts; the figures agree to 1e-9 at every sampled tick."""
    config_text, events, restart = recording
    exact = lines(config_text, events)
    assert lines(config_text, events, windows="daemon") == exact
    assert lines(config_text, events, windows="daemon", restart_every=restart) == exact
    config = parse_config(config_text)
    spec = engine_spec(config)
    origin = events[0].timestamp
    daemon = Engine(spec, windows="daemon", origin=origin)
    reference = Engine(spec, windows="exact")
    step = config.alerting.evaluation_interval
    position = 0
    last = events[-1].timestamp
    for index in range(0, int((last - origin) / step) + 1, 97):
        now = origin + index * step
        while position < len(events) and events[position].timestamp <= now:
            daemon.record(events[position])
            reference.record(events[position])
            position += 1
        ours, theirs = daemon.evaluate(now).slos, reference.evaluate(now).slos
        layout = daemon.timelines["chat"].layout  # type: ignore[union-attr]
        for mine, exact_status in zip(ours, theirs, strict=True):
            for span, ratio in exact_status.error_ratios.items():
                if layout.is_exact(span, now):
                    assert _close(mine.error_ratios[span], ratio), (mine.spec.name, span, now)
            if layout.is_exact(mine.spec.window, now):
                assert _close(mine.budget_remaining, exact_status.budget_remaining)


def _close(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and abs(a - b) <= 1e-9)
