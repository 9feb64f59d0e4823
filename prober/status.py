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
from typing import Any

from prober.redaction import redact
from prober.results import RunResult

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
        }


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
</style></head><body>
<h1>prober · {html.escape(status["service"])}</h1>
<p>{"ready" if status["ready"] else "starting: not every journey has run yet"} ·
<a href="/metrics">/metrics</a> · <a href="/api/status">/api/status</a></p>
<table><tr><th>journey</th><th>state</th><th>success</th><th>p50 (5m)</th><th>p95 (5m)</th><th>p99 (5m)</th><th>last run</th><th>failure</th></tr>
{"".join(rows)}
</table></body></html>
"""
    return redact(page)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f} ms"
