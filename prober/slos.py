"""The config's SLOs, policies and rules as the pure engine's specs (`slo.engine`), and
journey results as its events. The one place that knows both sides."""

from __future__ import annotations

from prober.config import ProberConfig
from prober.results import RunResult
from slo.engine import DEFAULT_ALERT_NAME, EngineSpec, Event, RuleSpec, SloSpec
from slo.policies import resolve_policies

__all__ = ["engine_spec", "event_from_run"]


def engine_spec(config: ProberConfig, *, journeys: set[str] | None = None) -> EngineSpec:
    """`journeys` limits `ProberNoData` to these (replay: the journeys the events mention)."""
    specs = tuple(policy.spec() for policy in config.alerting.burn_rate_policies)
    slos = tuple(
        SloSpec(
            name=slo.name,
            journey=slo.journey,
            objective=slo.objective,
            window=slo.window,
            policies=resolve_policies(slo.window, specs),
            latency_below=slo.indicator.latency_below if slo.indicator else None,
            alert_name=slo.alert_name or DEFAULT_ALERT_NAME,
            annotations=_annotations(slo.description, slo.runbook_url),
        )
        for slo in config.slos
    )
    rules = tuple(
        RuleSpec(
            name=rule.name,
            severity=rule.severity,
            journey=rule.journey,
            expression=rule.when,
            window=rule.window_or_default,
            step=rule.step,
            for_seconds=rule.for_ or 0.0,
            annotations=_annotations(rule.description, rule.runbook_url, rule.summary),
        )
        for rule in config.alerting.rules
    )
    intervals = {
        journey.name: journey.interval_or(config.defaults)
        for journey in config.journeys
        if journeys is None or journey.name in journeys
    }
    return EngineSpec(
        service=config.service,
        slos=slos,
        rules=rules,
        intervals=intervals,
        evaluation_interval=config.alerting.evaluation_interval,
    )


def _annotations(
    description: str | None, runbook_url: str | None, summary: str | None = None
) -> dict[str, str]:
    values = {"summary": summary, "description": description, "runbook_url": runbook_url}
    return {key: value for key, value in values.items() if value}


def event_from_run(result: RunResult, *, inconclusive: bool = False) -> Event:
    """A run as the SLO engine sees it (and as `export` writes it)."""
    failure = result.failure
    return Event(
        timestamp=result.started_at,
        journey=result.journey,
        success=result.success,
        duration_seconds=result.duration_seconds,
        failed_step=result.failed_step,
        reason=failure.reason if failure else None,
        status_codes={
            step.name: step.status_code for step in result.steps if step.status_code is not None
        },
        captures=dict(result.captures),
        inconclusive=inconclusive,
    )
