"""What `prober validate` prints about a valid config: each journey as it will run, with
the defaults it inherits resolved, and the SLOs."""

from __future__ import annotations

from prober.config import ProberConfig
from prober.units import format_duration

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
        for slo in config.slos:
            kind = (
                f"latency below {format_duration(slo.indicator.latency_below)}"
                if slo.indicator
                else "availability"
            )
            lines.append(
                f"  {slo.name}: {kind} of {slo.journey}, objective {slo.objective:.3%}"
                f" over {format_duration(slo.window)}"
            )
    return "\n".join(lines) + "\n"
