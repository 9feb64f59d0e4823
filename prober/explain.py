"""What `prober validate` prints about a valid config: each journey as it will run, with
the defaults it inherits resolved, and the SLOs."""

from __future__ import annotations

from prober.config import ProberConfig
from prober.slos import engine_spec
from prober.units import format_duration
from slo.engine import SloSpec
from slo.policies import Resolution, resolution_table
from slo.windows import MICROS, Layout, micros

__all__ = ["explain_config"]


def explain_config(config: ProberConfig) -> str:
    defaults = config.defaults
    lines = [
        f"config OK: service {config.service!r}, target {config.target.base_url}, "
        f"{len(config.journeys)} journey(s), {len(config.slos)} SLO(s)",
        "",
        "journeys:",
    ]
    for journey in config.journeys:
        interval = journey.interval_or(defaults)
        deadline = f", deadline {format_duration(journey.timeout)}" if journey.timeout else ""
        jitter = journey.jitter_or(defaults)
        lines.append(
            f"  {journey.name}: every {format_duration(interval)} ± {jitter:.0%}"
            f"{deadline}, {60 / interval:g} run(s)/min"
        )
        for step in journey.steps:
            checks = ", ".join(condition.text for condition in step.expect) or "status 2xx"
            captures = f"; captures {', '.join(step.capture)}" if step.capture else ""
            timeout = format_duration(step.timeout_or(defaults))
            lines.append(
                f"    - {step.name}: {step.method} {step.url.source} (timeout {timeout});"
                f" expects {checks}{captures}"
            )
    if config.slos:
        lines += ["", "slos:"]
        engine = engine_spec(config)
        specs = engine.slos  # same order as config.slos
        for slo, spec in zip(config.slos, specs, strict=True):
            kind = (
                f"latency below {format_duration(slo.indicator.latency_below)}"
                if slo.indicator
                else "availability"
            )
            lines.append(
                f"  {slo.name}: {kind} of {slo.journey}, objective {slo.objective:.3%}"
                f" over {format_duration(slo.window)}"
            )
            lines.append(
                _window_line(engine.layout(spec.journey), spec, config.alerting.evaluation_interval)
            )
            lines.extend(_resolution_lines(config, spec))
    return "\n".join(lines) + "\n"


def _window_line(layout: Layout, spec: SloSpec, evaluation_interval: float) -> str:
    """How the daemon counts this SLO's windows (`slo.windows`): exact at every evaluation,
    or which are rounded and why."""
    slot = format_duration(layout.fine_width / MICROS)
    parts = [f"    windows: {slot} slots"]
    fine = [span for span in spec.windows if micros(span) <= layout.fine_span]
    coarse = [span for span in spec.windows if micros(span) > layout.fine_span]
    ragged = [span for span in fine if micros(span) % layout.fine_width]
    if micros(evaluation_interval) % layout.fine_width == 0 and not ragged:
        parts.append(f", exact at every evaluation up to {_spans(fine[-1:])}")
    if coarse:
        parts.append(
            f"; {_spans(coarse)} in {format_duration(layout.coarse_width / MICROS)} slots"
            " (start rounded down)"
        )
    if micros(evaluation_interval) % layout.fine_width:
        parts.append(
            f"; WARNING: evaluations every {format_duration(evaluation_interval)} fall between"
            f" slots, so windows are exact only at evaluations on the {slot} grid"
        )
    if ragged:
        parts.append(f"; WARNING: {_spans(ragged)} not whole slots (start rounded down)")
    return "".join(parts)


def _spans(spans: list[float]) -> str:
    return ", ".join(format_duration(span) for span in spans)


def _resolution_lines(config: ProberConfig, spec: SloSpec) -> list[str]:
    """Per burn-rate policy: what it takes to trip it at this journey's probe rate, once its
    long window is full and while it fills (a cold start, where `min_events` decides)."""
    interval = config.journey(spec.journey).interval_or(config.defaults)
    rows = resolution_table(spec.objective, spec.window, spec.policies, interval)
    if not rows:
        return []
    lines = [
        f"    one run every {format_duration(interval)}: one failed run spends"
        f" {rows[0].budget_per_failure:.3%} of the error budget",
        "    with a full long window at this rate:",
    ]
    for row in rows:
        policy = row.policy
        if row.silenced:
            verdict = (
                f"SILENT: needs {row.min_events} runs in {format_duration(policy.long_window)},"
                f" this rate gives {row.runs_per_long_window}"
            )
        elif row.failures_to_trip is None:
            verdict = "can never fire at this rate"
        else:
            verdict = (
                f"trips at {row.failures_to_trip} failed of {row.runs_per_long_window} runs"
                f" in {format_duration(policy.long_window)}"
            )
        lines.append(f"    {_name(row):<22} burn rate > {policy.threshold:g}: {verdict}")
    lines += [
        "    while it fills (cold start, no saved state), min_events decides: a policy cannot fire",
        "    until its long window holds min_events runs (time shown from the first run), then:",
    ]
    warnings = []
    for row in rows:
        lines.append(f"    {_name(row):<22} {_cold_start(row)}")
        if row.failures_to_trip == 1:
            warnings.append(f"    WARNING: a single failed run fires the {_name(row)} policy")
        elif row.single_failure_pages:
            warnings.append(
                f"    WARNING: a single failed run fires the {_name(row)} policy on a cold start"
                f" (1 failed of {row.guard_runs} run{'s' if row.guard_runs > 1 else ''})"
            )
    return lines + warnings


def _name(row: Resolution) -> str:
    policy = row.policy
    return (
        f"{policy.severity} {format_duration(policy.long_window)}"
        f"/{format_duration(policy.short_window)}"
    )


def _cold_start(row: Resolution) -> str:
    """When a policy can first fire from empty windows, and on how many failed runs."""
    if row.silenced:
        return "never fires (see above)"
    if row.fill_time is None or row.failures_to_trip_at_min_events is None:
        return "can never fire at this rate"
    runs = row.guard_runs
    failed = row.failures_to_trip_at_min_events
    verb = "trips" if failed == 1 else "trip"
    if row.min_events <= 1:
        start = f"no guard (min_events {row.min_events}): 1 failed of 1 run trips it"
    else:
        start = f"from run {runs} ({_elapsed(row.fill_time)}): {failed} failed of {runs} {verb} it"
    full, full_runs = row.failures_to_trip, row.runs_per_long_window
    if full_runs == runs:
        return start
    return f"{start}, {'rising to ' if full != failed else 'and '}{full} of {full_runs} when full"


def _elapsed(seconds: float) -> str:
    """A time span in mixed units for reading: 1035 → `17m15s`, 3960 → `1h6m`."""
    if not 0 < seconds < 1e12:  # 30 000 years: no reader counts in mixed units beyond
        return format_duration(seconds)
    milliseconds = round(seconds * 1000)
    if milliseconds <= 0 or abs(milliseconds - seconds * 1000) > 1e-6 * milliseconds:
        return format_duration(seconds)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if milliseconds:
        parts.append(f"{milliseconds}ms")
    return "".join(parts)
