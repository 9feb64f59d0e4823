"""What `prober validate` prints about a valid config: each journey as it will run, with
the defaults it inherits resolved, and the SLOs."""

from __future__ import annotations

from prober.config import ProberConfig
from prober.slos import engine_spec
from prober.units import format_duration
from slo.engine import SloSpec
from slo.policies import resolution_table

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
        specs = engine_spec(config).slos  # same order as config.slos
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
            lines.extend(_resolution_lines(config, spec))
    return "\n".join(lines) + "\n"


def _resolution_lines(config: ProberConfig, spec: SloSpec) -> list[str]:
    """Per burn-rate policy: what it takes to trip it at this journey's probe rate."""
    interval = config.journey(spec.journey).interval_or(config.defaults)
    rows = resolution_table(spec.objective, spec.window, spec.policies, interval)
    lines = [
        f"    one run every {format_duration(interval)}: one failed run spends"
        f" {rows[0].budget_per_failure:.3%} of the error budget"
        if rows
        else ""
    ]
    for row in rows:
        policy = row.policy
        windows = f"{format_duration(policy.long_window)}/{format_duration(policy.short_window)}"
        name = f"{policy.severity} {windows}"
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
        lines.append(f"    {name:<22} burn rate > {policy.threshold:g}: {verdict}")
        if row.single_failure_pages:
            lines.append(f"    WARNING: a single failed run fires the {name} policy")
    return [line for line in lines if line]
