"""`prober replay` and the event format that `prober export` writes (DESIGN: "Replay").

Input: one JSON object a line,
`{"timestamp": "2026-11-01T12:00:00Z", "journey": "chat", "success": false, ...}`
(`timestamp` may be unix seconds; only `timestamp`, `journey`, `success` are required).
Simulated time advances in steps of `alerting.evaluation_interval` from the first event to
the last; at each tick the events up to it are recorded and the engine evaluated, exactly
as the daemon does live. Output: one JSON line per alert transition, in time order.

Decisions: events of journeys the config does not know are skipped (counted on stderr);
`ProberNoData` is evaluated only for journeys that appear in the events, since a recording
of one journey says nothing about the others; a malformed line is an error naming its line.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prober.config import ProberConfig
from prober.errors import ConfigError, ConfigIssue
from prober.slos import engine_spec
from slo.engine import Engine, Event, Tick, WindowMode
from slo.windows import MICROS, micros

__all__ = ["event_to_json", "parse_event", "read_events", "replay", "transition_records"]


# Both used once per replayed line: a tuple, not `int | float` (which builds a union each
# time), and one shared, never-written dict for events without codes or captures.
_NUMBER = (int, float)
_NONE: dict[str, Any] = {}


def parse_timestamp(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid timestamp {value!r}")
    if isinstance(value, _NUMBER):
        if not math.isfinite(value):
            raise ValueError(f"invalid timestamp {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"invalid timestamp {value!r}: expected RFC 3339 or unix seconds"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValueError(f"invalid timestamp {value!r}")


def rfc3339(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_event(data: Any) -> Event:
    """One replay line, already JSON-decoded; raises ValueError with what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if "timestamp" not in data or "journey" not in data or "success" not in data:
        missing = [key for key in ("timestamp", "journey", "success") if key not in data]
        raise ValueError(f"missing {', '.join(missing)}")
    if not isinstance(data["journey"], str) or not isinstance(data["success"], bool):
        raise ValueError("'journey' must be a string and 'success' true or false")
    duration = data.get("duration_seconds")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, _NUMBER)):
        raise ValueError(f"invalid duration_seconds {duration!r}")
    codes = data.get("status_codes") or _NONE
    if codes and (
        not isinstance(codes, dict)
        or not all(type(code) is int for code in codes.values())  # bool is not a status
    ):
        raise ValueError("'status_codes' must map step names to integers")
    captures = data.get("captures") or _NONE
    if captures and not isinstance(captures, dict):
        raise ValueError("'captures' must be an object")
    timestamp = data["timestamp"]
    return Event(  # positional: a replay builds one per line
        timestamp
        if type(timestamp) is float and math.isfinite(timestamp)
        else parse_timestamp(timestamp),
        data["journey"],
        data["success"],
        None if duration is None else float(duration),
        data.get("failed_step"),
        data.get("reason"),
        codes,
        captures,
        bool(data.get("inconclusive", False)),
    )


def read_events(lines: Iterable[str], source: str) -> list[Event]:
    """Every event of a JSON-lines file, sorted by time; all bad lines reported at once."""
    events, issues = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(parse_event(json.loads(line)))
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            issues.append(ConfigIssue(f"{source}:{number}", str(error)))
    if issues:
        raise ConfigError(issues[:50])
    events.sort(key=lambda event: event.timestamp)
    return events


def event_to_json(event: Event) -> str:
    """The export format: what `read_events` reads back."""
    record: dict[str, Any] = {
        "timestamp": rfc3339(event.timestamp),
        "journey": event.journey,
        "success": event.success,
    }
    if event.duration_seconds is not None:
        record["duration_seconds"] = round(event.duration_seconds, 6)
    if event.failed_step is not None:
        record["failed_step"] = event.failed_step
    if event.reason is not None:
        record["reason"] = event.reason
    if event.status_codes:
        record["status_codes"] = dict(event.status_codes)
    if event.captures:
        record["captures"] = dict(event.captures)
    if event.inconclusive:
        record["inconclusive"] = True
    return json.dumps(record, separators=(", ", ": "), default=str)


def replay(
    config: ProberConfig,
    events: list[Event],
    *,
    windows: WindowMode = "exact",
    restart_every: float | None = None,
) -> Iterator[Tick]:
    """Feed events through the engine in simulated time; one `Tick` per evaluation.

    `windows="daemon"` counts with the bounded timelines `prober run` keeps, sliced so that
    the ticks (from the first event, every evaluation interval) are exact for them: the
    same transitions as `"exact"` whenever `slo.windows.Layout.is_exact` holds for every
    window, which the default windows and evaluation intervals dividing them satisfy.
    `restart_every` checkpoints the engine and resumes a fresh one from the checkpoint and
    the runs so far at those points, as a pod restart does: it changes no transition.
    Ticks at which nothing can change (`Engine.quiet_until`) are skipped: same transitions.
    """
    if not events:
        return
    known = {journey.name for journey in config.journeys}
    events = [event for event in events if event.journey in known]
    if not events:
        return
    spec = engine_spec(config, journeys={event.journey for event in events})
    start_us, step_us = micros(events[0].timestamp), micros(config.alerting.evaluation_interval)
    start = start_us / MICROS

    def fresh() -> Engine:
        return Engine(spec, windows=windows, origin=start)

    engine = fresh()
    restart_us = micros(restart_every) if restart_every else 0
    next_restart = start_us + restart_us if restart_us else _NEVER
    stamps = array("q", [micros(event.timestamp) for event in events])
    position = 0
    quiet_until = -math.inf
    ticks = (micros(events[-1].timestamp) - start_us) // step_us
    index = 0
    while index <= ticks:
        now_us = start_us + index * step_us
        now = now_us / MICROS
        if now_us >= next_restart:
            engine = _restarted(engine, fresh(), events[:position], now)
            next_restart += restart_us * ((now_us - next_restart) // restart_us + 1)
            quiet_until = -math.inf
        disturbed = False
        while position < len(events) and stamps[position] <= now_us:
            engine.record(events[position])
            disturbed = disturbed or engine.last_run_bad
            position += 1
        if not disturbed and now >= quiet_until > -math.inf:
            # The promise ran out, but the good runs since may have renewed it (a journey
            # that reported is not silent): ask again, with the same last evaluation.
            quiet_until = engine.quiet_until()
        if not disturbed and now < quiet_until:
            # Provably nothing to evaluate (see Engine.quiet_until) until the next event
            # arrives, the quiet time ends or a restart is due: jump there rather than step
            # through every tick between (30 days at a 1 ms interval would be 2.6 billion of
            # them). One tick short of the estimate, in case rounding put it one too far.
            wake = min(micros(quiet_until) if quiet_until < math.inf else _NEVER, next_restart)
            if position < len(events):
                wake = min(wake, stamps[position])
            index = max(index + 1, min(-(-(wake - start_us) // step_us), ticks + 1) - 1)
            continue
        yield engine.evaluate(now, figures=False)
        quiet_until = engine.quiet_until()
        index += 1


#: Later than any tick, in microseconds.
_NEVER = 2**62


def _restarted(engine: Engine, fresh: Engine, recorded: list[Event], now: float) -> Engine:
    """`fresh`, resumed from `engine`'s checkpoint and the runs recorded so far: what the
    daemon does at start-up with its state file (every run stored, the snapshot current)."""
    checkpoint = engine.checkpoint()
    # Each snapshot read back as the daemon reads its state file: once, before resuming.
    loaded = {
        journey: fresh.load_timeline(journey, data)
        for journey, data in checkpoint.timelines.items()
        if isinstance(data, bytes)
    }
    checkpoint = replace(checkpoint, timelines=loaded)
    since = fresh.history_since(checkpoint, now)
    fresh.resume(checkpoint, (), (event for event in recorded if event.timestamp > since), now)
    return fresh


def transition_records(tick: Tick) -> Iterator[dict[str, Any]]:
    """DESIGN's replay output lines for one tick's transitions."""
    for transition in tick.transitions:
        labels = dict(transition.labels)
        record: dict[str, Any] = {
            "timestamp": rfc3339(transition.at),
            "alertname": labels.get("alertname"),
            "severity": labels.get("severity"),
        }
        for key in ("slo", "journey", "step"):
            if key in labels:
                record[key] = labels[key]
        record["state"] = transition.state
        for key in ("long_window", "short_window"):
            if key in labels:
                record[key] = labels[key]
        for key in ("burn_rate_long", "burn_rate_short", "value"):
            if key in transition.values:
                record[key] = round(transition.values[key], 4)
        yield record
