"""The low-traffic guard (`min_events`) and the cold start, end to end: a config as
`prober validate` reads it, fed to the real SLO engine one run per probe interval from empty
windows and evaluated at every `alerting.evaluation_interval` tick (issue #13, items 4-5).

The first page must come exactly where `validate` says (`slo.policies.resolution_table`,
which `prober.explain` prints): at the first tick at or after run N = max(min_events, 1),
which comes `fill_time` after the first run, with `failures_to_trip_at_min_events` failed
runs among those N, and not with one fewer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pytest

from prober.config import ProberConfig, load_config, parse_config
from prober.slos import engine_spec
from slo.engine import Engine, Event, format_window
from slo.policies import Resolution, resolution_table
from tests.conftest import CONFIG_DIR

#: A multiple of the evaluation interval (30 s): the ticks fall on the epoch's grid.
T0 = 1_750_000_020.0

GUARD_OFF = """
journeys: [{name: chat, interval: 1m, steps: [{name: s, url: /}]}]
slos: [{name: chat-availability, journey: chat, objective: 99.9%, window: 30d}]
alerting:
  burn_rate_policies:
    - {severity: critical, long: 1h, short: 5m, budget_consumed: 2%, min_events: 0}
    - {severity: critical, long: 6h, short: 30m, budget_consumed: 5%}
"""

#: Every kind of guard at two probe rates: derived (6h/30m), off, set below the derived
#: one (single failures page while the window fills), set above it, silencing.
GUARDS = """
journeys:
  - {name: chat, interval: 1m, steps: [{name: s, url: /}]}
  - {name: health, interval: 15s, steps: [{name: s, url: /}]}
slos:
  - {name: chat-availability, journey: chat, objective: 99.5%, window: 30d}
  - {name: health-availability, journey: health, objective: 99.9%, window: 30d}
alerting:
  burn_rate_policies:
    - {severity: critical, long: 1h, short: 5m, budget_consumed: 2%, min_events: 0}
    - {severity: critical, long: 6h, short: 30m, budget_consumed: 5%}
    - {severity: warning, long: 1d, short: 2h, budget_consumed: 10%, min_events: 5}
    - {severity: warning, long: 3d, short: 6h, budget_consumed: 10%, min_events: 300}
    - {severity: info, long: 30m, short: 5m, burn_rate: 20, min_events: 100}
"""


def first_pages(
    config: ProberConfig, outcomes: Sequence[bool], journey: str = "chat"
) -> dict[tuple[str, str], float]:
    """Feed `outcomes` (True: the run succeeded, in 100 ms) to `journey`, one per probe
    interval from T0, into a fresh engine evaluated at every tick until the tick after the
    last run; per (SLO, long window) the tick of its first page."""
    spec = engine_spec(config, journeys={journey})
    interval = config.journey(journey).interval_or(config.defaults)
    tick = spec.evaluation_interval
    engine = Engine(spec)
    pages: dict[tuple[str, str], float] = {}
    runs: Iterator[tuple[int, bool]] = iter(enumerate(outcomes))
    pending = next(runs, None)
    now = T0
    while now < T0 + len(outcomes) * interval + tick:
        while pending is not None and T0 + pending[0] * interval <= now:
            engine.record(Event(T0 + pending[0] * interval, journey, pending[1], 0.1))
            pending = next(runs, None)
        for transition in engine.evaluate(now).transitions:
            labels = dict(transition.labels)
            if transition.state == "firing" and "long_window" in labels:
                pages.setdefault((labels["slo"], labels["long_window"]), now)
        now += tick
    return pages


def test_min_events_zero_is_accepted_and_one_failed_run_pages() -> None:
    """`min_events: 0` loads, and with it one failed run in an otherwise empty hour pages;
    the guarded 6h policy beside it stays quiet."""
    config = parse_config(GUARD_OFF)
    assert [p.min_events for p in config.alerting.burn_rate_policies] == [0, None]
    assert [p.min_events for p in engine_spec(config).slos[0].policies] == [0, None]
    assert first_pages(config, [False]) == {("chat-availability", "1h"): T0}


def test_min_events_zero_single_failure_after_good_runs() -> None:
    """Without the guard one failed run pages whatever came before it in an hour of
    one-a-minute runs (1 of 60 is above 1.44%), at the tick that sees it."""
    config = parse_config(GUARD_OFF)
    pages = first_pages(config, [True] * 59 + [False])
    assert pages == {("chat-availability", "1h"): T0 + 59 * 60}


def cases() -> Iterator[tuple[str, ProberConfig, str, str, Resolution]]:
    configs = {"demo": load_config(CONFIG_DIR / "demo.yaml"), "guards": parse_config(GUARDS)}
    for name, config in configs.items():
        for slo in engine_spec(config).slos:
            interval = config.journey(slo.journey).interval_or(config.defaults)
            for row in resolution_table(slo.objective, slo.window, slo.policies, interval):
                yield name, config, slo.journey, slo.name, row


CASES = list(cases())


def tick_at_or_after(moment: float, tick: float) -> float:
    return math.ceil(moment / tick) * tick


@pytest.mark.parametrize(
    ("config", "journey", "slo", "row"),
    [case[1:] for case in CASES],
    ids=[
        f"{name}-{slo}-{row.policy.severity}-{row.policy.long_window:g}s"
        for name, _, _, slo, row in CASES
    ],
)
def test_first_page_from_a_cold_start_is_where_validate_says(
    config: ProberConfig, journey: str, slo: str, row: Resolution
) -> None:
    """All runs failing from empty windows, the policy first pages at the first tick at or
    after run max(min_events, 1), `fill_time` after the first run; with the fewest failures
    `validate` names (the newest runs) at the same tick, and with one fewer not then."""
    interval = config.journey(journey).interval_or(config.defaults)
    tick = config.alerting.evaluation_interval
    key = (slo, format_window(row.policy.long_window))
    runs = row.guard_runs
    if row.fill_time is None or row.failures_to_trip_at_min_events is None:
        # Silenced, or beyond all errors: never, not even with a full window of failures.
        full = [False] * (row.runs_per_long_window + 1)
        assert key not in first_pages(config, full, journey)
        return
    assert row.fill_time == pytest.approx((runs - 1) * interval)
    expected = tick_at_or_after(T0 + row.fill_time, tick)
    # Runs up to the page's tick (more failed runs after run N change nothing).
    through_tick = math.floor((expected - T0) / interval) + 1
    assert first_pages(config, [False] * through_tick, journey)[key] == expected
    failed = row.failures_to_trip_at_min_events
    fewest = [True] * (runs - failed) + [False] * (through_tick - runs + failed)
    assert first_pages(config, fewest, journey)[key] == expected
    # One failure fewer among the first N: quiet through that tick (the runs after N are good).
    short = [True] * (runs - failed + 1) + [False] * (failed - 1)
    short += [True] * (through_tick - runs)
    assert key not in first_pages(config, short, journey)


def test_the_cases_cover_every_kind_of_guard() -> None:
    """The cases hold a derived guard, none, one below the derived value (a single failure
    pages while the window fills), one needing more than 2 failures, a silenced policy, and
    pages due between two ticks (15 s runs, 30 s ticks)."""
    rows = [case[4] for case in CASES]
    assert any(row.min_events == 0 for row in rows)
    assert any(row.single_failure_pages and row.min_events > 1 for row in rows)
    assert any((row.failures_to_trip_at_min_events or 0) > 2 for row in rows)
    assert any(row.silenced for row in rows)
    assert any(row.fill_time and row.fill_time % 30 for row in rows)
