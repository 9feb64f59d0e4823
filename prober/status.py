"""What `/api/status` and the status page show: an immutable view of the latest results.

The event loop publishes a new frozen `JourneyStatus` per run by replacing one dict item
(atomic under the GIL); the HTTP server threads copy the dict (also atomic) and read only
frozen values — never the loop's live objects.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from prober.redaction import redact
from prober.results import RunResult
from slo.engine import SloStatus, Tick, format_window

__all__ = ["JourneyStatus", "StatusBoard", "render_page"]


@dataclass(frozen=True, slots=True)
class JourneyStatus:
    name: str
    interval: float
    runs: int = 0
    successes: int = 0
    last: RunResult | None = None
    last_lag_affected: bool = False

    @property
    def success_ratio(self) -> float | None:
        return self.successes / self.runs if self.runs else None


@dataclass
class StatusBoard:
    service: str
    started_at: float = field(default_factory=time.time)
    journeys: dict[str, JourneyStatus] = field(default_factory=dict)
    config_loaded: bool = False
    config_path: str = ""
    #: the last evaluation, swapped whole at each; its JSON is made when first read
    published: _Published | None = None
    notifiers: tuple[dict[str, Any], ...] = ()  # replaced whole by `prober.notify`

    def configure(self, service: str, intervals: Mapping[str, float]) -> None:
        self.service = service
        current = dict(self.journeys)
        self.journeys = {
            name: (
                JourneyStatus(
                    name,
                    interval,
                    current[name].runs,
                    current[name].successes,
                    current[name].last,
                    current[name].last_lag_affected,
                )
                if name in current
                else JourneyStatus(name, interval)
            )
            for name, interval in intervals.items()
        }
        self.config_loaded = True

    def record(self, result: RunResult, *, lag_affected: bool = False) -> None:
        previous = self.journeys.get(result.journey)
        if previous is None:
            return  # removed by a reload while it ran
        self.journeys[result.journey] = JourneyStatus(
            previous.name,
            previous.interval,
            previous.runs + 1,
            previous.successes + int(result.success),
            result,
            lag_affected,
        )

    def record_tick(self, tick: Tick, annotations: Mapping[Any, Mapping[str, str]]) -> None:
        """Publish one evaluation's SLO figures and active alerts (one atomic swap; the
        JSON is made at the first `/api/status` after it, not at every tick)."""
        self.published = _Published(tick, annotations)

    @property
    def slos(self) -> tuple[dict[str, Any], ...]:
        published = self.published
        return () if published is None else published.slos

    @property
    def alerts(self) -> tuple[dict[str, Any], ...]:
        published = self.published
        return () if published is None else published.alerts

    def record_notifiers(self, notifiers: tuple[dict[str, Any], ...]) -> None:
        """Publish every notifier's delivery state: name, type, queued, dead letters, last
        delivery and last error (already redacted)."""
        self.notifiers = tuple(dict(entry) for entry in notifiers)

    @property
    def ready(self) -> bool:
        """Config loaded and every journey has run at least once."""
        journeys = dict(self.journeys)
        return self.config_loaded and all(status.last is not None for status in journeys.values())

    def snapshot(
        self, quantiles: Callable[[str], Mapping[str, Mapping[float, float | None]]]
    ) -> dict[str, Any]:
        """The `/api/status` document."""
        journeys = dict(self.journeys)
        return {
            "service": self.service,
            "ready": self.ready,
            "started_at": _rfc3339(self.started_at),
            "journeys": [
                _journey_json(status, quantiles(status.name)) for status in journeys.values()
            ],
            "slos": list(self.slos),
            "alerts": list(self.alerts),
            "notifiers": list(self.notifiers),
        }


class _Published:
    """One evaluation as `/api/status` shows it, made on first read (server threads may
    race to make it: each makes the same tuples)."""

    def __init__(self, tick: Tick, annotations: Mapping[Any, Mapping[str, str]]) -> None:
        self._tick = tick
        self._annotations = annotations

    @cached_property
    def slos(self) -> tuple[dict[str, Any], ...]:
        return tuple(_slo_json(status) for status in self._tick.slos)

    @cached_property
    def alerts(self) -> tuple[dict[str, Any], ...]:
        return tuple(
            {
                **dict(key),
                "state": alert.phase,
                "active_since": _rfc3339(alert.active_since),
                **{name: round(value, 4) for name, value in alert.values.items()},
                "annotations": dict(self._annotations.get(key, {})),
            }
            for key, alert in self._tick.alerts.alerts.items()
        )


def _journey_json(
    status: JourneyStatus, quantiles: Mapping[str, Mapping[float, float | None]]
) -> dict[str, Any]:
    last = status.last
    return {
        "name": status.name,
        "interval_seconds": status.interval,
        "runs": status.runs,
        "success_ratio": status.success_ratio,
        "latency_seconds": {
            window: {f"p{round(q * 100):d}": value for q, value in values.items()}
            for window, values in quantiles.items()
        },
        "last_run": None
        if last is None
        else {
            "timestamp": _rfc3339(last.started_at),
            "run_id": last.run_id,
            "lag_affected": status.last_lag_affected,
            **last.as_dict(),
        },
    }


def _slo_json(status: SloStatus) -> dict[str, Any]:
    spec = status.spec
    return {
        "name": spec.name,
        "journey": spec.journey,
        "objective": spec.objective,
        "window": format_window(spec.window),
        "indicator": "availability"
        if spec.latency_below is None
        else f"latency < {spec.latency_below:g}s",
        "events": {"good": status.window_counts.good, "bad": status.window_counts.bad},
        "error_budget_remaining": status.budget_remaining,
        "time_to_exhaustion_seconds": status.time_to_exhaustion,
        "error_ratio": {format_window(w): r for w, r in status.error_ratios.items()},
        "burn_rate": {format_window(w): r for w, r in status.burn_rates.items()},
        "policies": [
            {
                "severity": policy.policy.severity,
                "long_window": format_window(policy.policy.long_window),
                "short_window": format_window(policy.policy.short_window),
                "threshold": policy.policy.threshold,
                "firing": policy.evaluation.firing,
                "reason": str(policy.evaluation.reason),
            }
            for policy in status.policies
        ],
    }


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def render_page(status: Mapping[str, Any]) -> str:
    """A small server-rendered status page: one row per journey, failures spelled out."""
    rows = []
    for journey in status["journeys"]:
        last = journey["last_run"]
        state = "pending" if last is None else ("ok" if last["success"] else "failing")
        ratio = journey["success_ratio"]
        p = journey["latency_seconds"].get("5m", {})
        failure = ""
        if last is not None and not last["success"]:
            failed = next(step for step in last["steps"] if not step["success"])
            failure = (
                f"{failed['name']}: {failed['failure']['reason']}: {failed['failure']['message']}"
            )
        rows.append(
            "<tr class='{state}'><td>{name}</td><td>{state}</td><td>{ratio}</td><td>{p50}</td>"
            "<td>{p95}</td><td>{p99}</td><td>{when}</td><td>{failure}</td></tr>".format(
                state=state,
                name=html.escape(journey["name"]),
                ratio="–" if ratio is None else f"{ratio:.2%}",
                p50=_ms(p.get("p50")),
                p95=_ms(p.get("p95")),
                p99=_ms(p.get("p99")),
                when=html.escape(last["timestamp"]) if last else "–",
                failure=html.escape(failure),
            )
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>prober · {html.escape(status["service"])}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .3em .8em; border-bottom: 1px solid #ddd; text-align: left; }}
tr.ok td:nth-child(2) {{ color: #1a7f37; font-weight: 600; }}
tr.failing td {{ background: #ffebe9; }} tr.failing td:nth-child(2) {{ color: #cf222e; font-weight: 600; }}
tr.pending td:nth-child(2) {{ color: #888; }}
.bar {{ display: inline-block; width: 8em; height: .8em; background: #eee; vertical-align: middle; }}
.bar div {{ height: 100%; }} li.critical {{ color: #cf222e; }} li.warning {{ color: #bf8700; }}
</style></head><body>
<h1>prober · {html.escape(status["service"])}</h1>
<p>{"ready" if status["ready"] else "starting: not every journey has run yet"} ·
<a href="/metrics">/metrics</a> · <a href="/api/status">/api/status</a></p>
<table><tr><th>journey</th><th>state</th><th>success</th><th>p50 (5m)</th><th>p95 (5m)</th><th>p99 (5m)</th><th>last run</th><th>failure</th></tr>
{"".join(rows)}
</table>
{_slo_section(status)}
{_notifier_section(status)}
</body></html>
"""
    return redact(page)


def _slo_section(status: Mapping[str, Any]) -> str:
    if not status.get("slos"):
        return ""
    rows = []
    for slo in status["slos"]:
        remaining = slo["error_budget_remaining"]
        width = 0 if remaining is None else max(0.0, min(1.0, remaining)) * 100
        colour = (
            "#1a7f37"
            if remaining is None or remaining > 0.5
            else "#bf8700"
            if remaining > 0.2
            else "#cf222e"
        )
        budget = "no data" if remaining is None else f"{remaining:.1%}"
        burns = (
            " · ".join(
                f"{window} {rate:.2f}"
                for window, rate in slo["burn_rate"].items()
                if rate is not None
            )
            or "no data"
        )
        exhaustion = slo["time_to_exhaustion_seconds"]
        eta = "–" if exhaustion is None else _duration(exhaustion)
        firing = [p for p in slo["policies"] if p["firing"]]
        rows.append(
            f"<tr><td>{html.escape(slo['name'])}</td><td>{slo['objective']:.3%} / {slo['window']}</td>"
            f"<td><div class='bar'><div style='width:{width:.0f}%;background:{colour}'></div></div> {budget}</td>"
            f"<td>{html.escape(burns)}</td><td>{eta}</td>"
            f"<td>{html.escape(', '.join(p['severity'] + ' ' + p['long_window'] + '/' + p['short_window'] for p in firing))}</td></tr>"
        )
    alerts = (
        "".join(
            f"<li class='{html.escape(str(a.get('severity', '')))}'>{html.escape(str(a.get('alertname')))} "
            f"({html.escape(str(a.get('severity')))}, {html.escape(str(a.get('slo') or a.get('journey') or ''))}): "
            f"{html.escape(str(a['state']))} since {html.escape(str(a['active_since']))}"
            f" — {html.escape(str(a.get('annotations', {}).get('summary', '')))}</li>"
            for a in status.get("alerts", ())
        )
        or "<li>none</li>"
    )
    return (
        "<h2>SLOs</h2><table><tr><th>SLO</th><th>objective</th><th>error budget left</th>"
        "<th>burn rate</th><th>budget gone in</th><th>burning</th></tr>"
        + "".join(rows)
        + "</table>"
        f"<h2>Alerts</h2><ul>{alerts}</ul>"
    )


def _notifier_section(status: Mapping[str, Any]) -> str:
    notifiers = status.get("notifiers") or ()
    if not notifiers:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(str(n['name']))}</td><td>{html.escape(str(n['type']))}</td>"
        f"<td>{n['queued']}</td><td>{n['dead_letters']}</td>"
        f"<td>{html.escape(str(n['last_sent'] or '–'))}</td>"
        f"<td>{html.escape(str(n['last_error'] or ''))}</td></tr>"
        for n in notifiers
    )
    return (
        "<h2>Notifications</h2><table><tr><th>notifier</th><th>type</th><th>queued</th>"
        "<th>dead letters</th><th>last delivery</th><th>last error</th></tr>"
        f"{rows}</table>"
    )


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f} ms"
