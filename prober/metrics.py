"""Prometheus exposition: DESIGN's metric table, names and labels exactly as written.

Label values come only from the config (journey and step names, reasons, phases),
never from responses, so cardinality is bounded by the config. Every label set a config
implies is created at load (counters start at 0), so `rate()` and `increase()` work from
the first scrape; a journey removed by a reload has its series removed.

Histogram buckets fit API latencies: 5 ms … 30 s, with 2 s among them because "p95 < 2s"
is the usual objective. `prober_journey_latency_seconds` comes from in-process sketches
(`prober.sketch`, ≤ 1% relative error) over 5m and 1h, computed at scrape time.

Beyond DESIGN's table: `prober_journey_overruns_total{journey}` (ticks skipped because the
previous run was still going), `prober_event_loop_lag_seconds` (how late the event loop
woke up), `prober_lag_affected_runs_total{journey}` (runs measured while the loop lagged),
and for alert delivery (`prober.notify`) `prober_notification_queue_depth{notifier}`,
`prober_notification_dead_letters{notifier}` (dead-lettered notifications kept in the state
file) and `prober_notification_resends_total{notifier,result}` (Alertmanager re-sends).
"""

from __future__ import annotations

import contextlib
import operator
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from prober.config import ProberConfig
from prober.results import PHASES, REASONS, RunResult, StepResult
from prober.sketch import DEFAULT_TIERS, TieredSketch
from slo.alerting import AlertKey
from slo.engine import Tick, format_window

__all__ = ["LATENCY_BUCKETS", "QUANTILES", "ProberMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUANTILES = (0.5, 0.9, 0.95, 0.99)
#: Percentile windows: name → (width, resolution) seconds.
WINDOWS = DEFAULT_TIERS


class ProberMetrics:
    """Every prober metric, in its own registry; fed with `RunResult`s by the daemon."""

    def __init__(self, version: str, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._monotonic = monotonic
        self.sketches: dict[str, TieredSketch] = {}
        r = self.registry
        self.probe_success = Gauge(
            "probe_success",
            "Last run of the journey succeeded (1) or not (0).",
            ["journey"],
            registry=r,
        )
        self.probe_duration = Gauge(
            "probe_duration_seconds", "Duration of the journey's last run.", ["journey"], registry=r
        )
        self.step_success = Gauge(
            "probe_step_success", "Last run of the step succeeded.", ["journey", "step"], registry=r
        )
        self.status_code = Gauge(
            "probe_http_status_code",
            "HTTP status of the step's last response (0: none).",
            ["journey", "step"],
            registry=r,
        )
        self.phase_duration = Gauge(
            "probe_http_duration_seconds",
            "Duration of each HTTP phase of the step's last request.",
            ["journey", "step", "phase"],
            registry=r,
        )
        self.cert_expiry = Gauge(
            "probe_ssl_earliest_cert_expiry",
            "Expiry of the step's server certificate, unix seconds.",
            ["journey", "step"],
            registry=r,
        )
        self.runs = Counter(
            "prober_journey_runs", "Journey runs by result.", ["journey", "result"], registry=r
        )
        self.journey_duration = Histogram(
            "prober_journey_duration_seconds",
            "Journey run durations.",
            ["journey"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.step_duration = Histogram(
            "prober_step_duration_seconds",
            "Step durations.",
            ["journey", "step"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.step_failures = Counter(
            "prober_step_failures",
            "Step failures by reason.",
            ["journey", "step", "reason"],
            registry=r,
        )
        self.schedule_lag = Histogram(
            "prober_schedule_lag_seconds",
            "Actual minus planned start of journey runs.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.overruns = Counter(
            "prober_journey_overruns",
            "Scheduled runs skipped because the previous run was still going.",
            ["journey"],
            registry=r,
        )
        self.loop_lag = Gauge(
            "prober_event_loop_lag_seconds",
            "How late the event loop last woke up (max over the last second).",
            registry=r,
        )
        self.lag_affected = Counter(
            "prober_lag_affected_runs",
            "Runs measured while the event loop lagged > 50 ms.",
            ["journey"],
            registry=r,
        )
        self.inconclusive = Counter(
            "prober_inconclusive_runs",
            "Failed runs while the connectivity check failed too (kept out of the SLIs).",
            ["journey"],
            registry=r,
        )
        self.state_errors = Counter(
            "prober_state_errors", "State-file writes that failed (probing goes on).", registry=r
        )
        self.reload_ok = Gauge(
            "prober_config_last_reload_successful",
            "The last config (re)load succeeded.",
            registry=r,
        )
        self.build_info = Gauge("prober_build_info", "prober's version.", ["version"], registry=r)
        self.slo_events = Counter(
            "prober_slo_events",
            "SLO events by result (good: the run met the SLI).",
            ["slo", "result"],
            registry=r,
        )
        self.slo_objective = Gauge(
            "prober_slo_objective_ratio", "The SLO's objective.", ["slo"], registry=r
        )
        # Error ratios, burn rates, budgets and exhaustion: from the last tick, at scrape time.
        self._slo_figures = _SloFigures()
        r.register(self._slo_figures)
        self.alert_state = Gauge(
            "prober_alert_state",
            "0 inactive, 1 pending, 2 firing.",
            ["alertname", "severity", "slo", "journey"],
            registry=r,
        )
        self.notifications = Counter(
            "prober_notifications",
            "Notifications by result (sent; retried: a failed attempt to retry; failed:"
            " dead-lettered).",
            ["notifier", "result"],
            registry=r,
        )
        self.notification_queue = Gauge(
            "prober_notification_queue_depth",
            "Notifications waiting in the outbox.",
            ["notifier"],
            registry=r,
        )
        self.notification_dead_letters = Gauge(
            "prober_notification_dead_letters",
            "Dead-lettered notifications kept in the state file (given up on: see the log).",
            ["notifier"],
            registry=r,
        )
        self.notification_resends = Counter(
            "prober_notification_resends",
            "Re-sends of the active alerts to Alertmanager, per POST.",
            ["notifier", "result"],
            registry=r,
        )
        self._notifiers: set[str] = set()
        self._alert_series: set[tuple[str, str, str, str]] = set()
        self._alert_values: dict[tuple[str, str, str, str], int] = {}  # as last set
        self._signal_keys: list[AlertKey] = []  # the last tick's alerts, in its order
        self._series_of: dict[AlertKey, tuple[str, str, str, str]] = {}
        self._no_alerts: dict[tuple[str, str, str, str], int] = {}  # every series at 0
        self._slo_series: set[tuple[str, str]] = set()
        self.build_info.labels(version).set(1)
        self.reload_ok.set(1)
        r.register(_LatencyQuantiles(self))
        self._journeys: dict[str, tuple[str, ...]] = {}
        self._series: dict[str, _JourneySeries] = {}

    def configure(self, config: ProberConfig) -> None:
        """Create every label set the config implies; drop those of removed journeys/steps."""
        wanted = {
            journey.name: tuple(step.name for step in journey.steps) for journey in config.journeys
        }
        for name, steps in self._journeys.items():
            if wanted.get(name) != steps:
                self._forget(name, steps)
        for name, steps in wanted.items():
            if self._journeys.get(name) == steps:
                continue
            self.sketches[name] = TieredSketch(WINDOWS)
            self._series[name] = _JourneySeries(self, name, steps, self.sketches[name])
            for result in ("success", "failure"):
                self.runs.labels(name, result)
            self.journey_duration.labels(name)
            self.overruns.labels(name)
            self.lag_affected.labels(name)
            self.inconclusive.labels(name)
            for step in steps:
                self.step_duration.labels(name, step)
                for reason in REASONS:
                    self.step_failures.labels(name, step, reason)
        self._journeys = wanted

    def _forget(self, journey: str, steps: Iterable[str]) -> None:
        self.sketches.pop(journey, None)
        self._series.pop(journey, None)
        for metric in (
            self.probe_success,
            self.probe_duration,
            self.journey_duration,
            self.overruns,
            self.lag_affected,
            self.inconclusive,
        ):
            _remove(metric, journey)
        for result in ("success", "failure"):
            _remove(self.runs, journey, result)
        for step in steps:
            for metric in (
                self.step_success,
                self.status_code,
                self.cert_expiry,
                self.step_duration,
            ):
                _remove(metric, journey, step)
            for phase in PHASES:
                _remove(self.phase_duration, journey, step, phase)
            for reason in REASONS:
                _remove(self.step_failures, journey, step, reason)

    def observe(self, result: RunResult, *, lag_affected: bool = False) -> None:
        """Record one journey run."""
        series = self._series.get(result.journey)
        if series is None:
            return  # the journey was removed by a reload while it ran
        series.observe(result, lag_affected, self._monotonic())

    def observe_slo_events(self, judged: Iterable[tuple[str, bool]]) -> None:
        for slo, good in judged:
            self.slo_events.labels(slo, "good" if good else "bad").inc()

    def configure_slos(self, slos: Iterable[tuple[str, float]]) -> None:
        """Objectives, and event counters at 0 for every SLO; drop removed SLOs' series."""
        wanted = dict(slos)
        self._slo_figures.slos = frozenset(wanted)
        for slo in {name for name, _ in self._slo_series} - set(wanted):
            _remove(self.slo_objective, slo)
            for result in ("good", "bad"):
                _remove(self.slo_events, slo, result)
        for name, objective in wanted.items():
            self.slo_objective.labels(name).set(objective)
            for result in ("good", "bad"):
                self.slo_events.labels(name, result)
        self._slo_series = {(name, "") for name in wanted}

    def configure_notifiers(self, names: Iterable[str], *, resends: Iterable[str] = ()) -> None:
        """Every notifier's series at 0; drop those of notifiers removed by a reload."""
        wanted, resending = set(names), set(resends)
        for name in self._notifiers - wanted:
            for result in ("sent", "retried", "failed"):
                _remove(self.notifications, name, result)
                _remove(self.notification_resends, name, result)
            _remove(self.notification_queue, name)
            _remove(self.notification_dead_letters, name)
        for name in wanted:
            for result in ("sent", "retried", "failed"):
                self.notifications.labels(name, result)
            self.notification_queue.labels(name)
            self.notification_dead_letters.labels(name)
            if name in resending:
                for result in ("sent", "failed"):
                    self.notification_resends.labels(name, result)
        self._notifiers = wanted

    def observe_tick(self, tick: Tick) -> None:
        """The SLO figures (rendered from the tick at scrape time, when its statuses are
        made: `_SloFigures`) and alert states of one evaluation. Only the alert states that
        changed are set: at a thousand SLOs, setting every one costs more than the tick."""
        self._slo_figures.tick = tick
        signals = tick.signals
        if len(signals) != len(self._signal_keys) or not all(
            map(operator.is_, signals, self._signal_keys)
        ):  # not the same alerts as the last tick (whose keys are the same objects)
            self._signal_keys = list(signals)
            self._series_of = {key: _alert_series(key) for key in signals}
            self._no_alerts = dict.fromkeys(self._series_of.values(), 0)
        phases = {"inactive": 0, "pending": 1, "firing": 2}
        states = dict(self._no_alerts)
        for key, alert in tick.alerts.alerts.items():
            series = self._series_of.get(key)
            if series is not None:
                states[series] = max(states[series], phases[alert.phase])
        for series in self._alert_series - states.keys():
            _remove(self.alert_state, *series)
        last = self._alert_values
        for series, value in states.items():
            if last.get(series) != value:
                self.alert_state.labels(*series).set(value)
        self._alert_values = states
        self._alert_series = set(states)

    def latency_quantiles(self, journey: str) -> dict[str, dict[float, float | None]]:
        sketch = self.sketches.get(journey)
        if sketch is None:
            return {window: dict.fromkeys(QUANTILES) for window in WINDOWS}
        return sketch.quantiles(self._monotonic(), QUANTILES)


class _JourneySeries:
    """One journey's metric children, looked up once: `labels()` per sample is measurable
    CPU at hundreds of runs per second. Gauges are created on first use, so a journey that
    has not run yet shows no `probe_success` rather than a misleading 0."""

    def __init__(
        self, metrics: ProberMetrics, journey: str, steps: Iterable[str], sketch: TieredSketch
    ) -> None:
        self.metrics = metrics
        self.journey = journey
        self.sketch = sketch
        self.gauges: tuple[Any, Any] | None = None  # (probe_success, probe_duration_seconds)
        self.runs = {
            True: metrics.runs.labels(journey, "success"),
            False: metrics.runs.labels(journey, "failure"),
        }
        self.histogram = metrics.journey_duration.labels(journey)
        self.lag_affected = metrics.lag_affected.labels(journey)
        self.steps = {step: _StepSeries(metrics, journey, step) for step in steps}

    def observe(self, result: RunResult, lag_affected: bool, now: float) -> None:
        if self.gauges is None:
            self.gauges = (
                self.metrics.probe_success.labels(self.journey),
                self.metrics.probe_duration.labels(self.journey),
            )
        success, duration = self.gauges
        success.set(1 if result.success else 0)
        duration.set(result.duration_seconds)
        self.runs[result.success].inc()
        if result.success:
            self.histogram.observe(result.duration_seconds)
            self.sketch.add(result.duration_seconds, now)
        if lag_affected:
            self.lag_affected.inc()
        for step in result.steps:
            series = self.steps.get(step.name)
            if series is not None:
                series.observe(step)


class _StepSeries:
    def __init__(self, metrics: ProberMetrics, journey: str, step: str) -> None:
        self.metrics = metrics
        self.labels = (journey, step)
        self.gauges: tuple[Any, Any, dict[str, Any]] | None = None  # success, status, phases
        self.duration = metrics.step_duration.labels(journey, step)
        self.failures = {
            reason: metrics.step_failures.labels(journey, step, reason) for reason in REASONS
        }

    def observe(self, step: StepResult) -> None:
        if self.gauges is None:
            metrics, labels = self.metrics, self.labels
            self.gauges = (
                metrics.step_success.labels(*labels),
                metrics.status_code.labels(*labels),
                {phase: metrics.phase_duration.labels(*labels, phase) for phase in PHASES},
            )
        success, status, phase_gauges = self.gauges
        success.set(1 if step.success else 0)
        status.set(step.status_code or 0)
        self.duration.observe(step.duration_seconds)
        for phase, seconds in step.phases.as_dict().items():
            phase_gauges[phase].set(seconds)
        if step.cert_expiry is not None:
            self.metrics.cert_expiry.labels(*self.labels).set(step.cert_expiry)
        if step.failure is not None:
            self.failures[step.failure.reason].inc()


def _alert_series(key: AlertKey) -> tuple[str, str, str, str]:
    """The `prober_alert_state` series an alert counts in."""
    labels = dict(key)
    return (
        labels.get("alertname", ""),
        labels.get("severity", ""),
        labels.get("slo", ""),
        labels.get("journey", ""),
    )


class _SloFigures(Collector):
    """`prober_slo_error_ratio` and `_burn_rate{slo,window}`, `_error_budget_remaining_ratio`
    and `_budget_exhaustion_seconds{slo}` of the last evaluation, rendered at scrape time
    (absent where there is no data), for the SLOs of the current config."""

    def __init__(self) -> None:
        self.tick: Tick | None = None
        self.slos: frozenset[str] = frozenset()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ratio, burn, budget, exhaustion = families = self._families()
        tick, slos = self.tick, self.slos
        for status in () if tick is None else tick.slos:
            name = status.spec.name
            if name not in slos:
                continue  # removed by a reload since that evaluation
            rates = status.burn_rates
            for window, value in status.error_ratios.items():
                if value is not None:
                    label = format_window(window)
                    ratio.add_metric([name, label], value)
                    burn.add_metric([name, label], rates[window] or 0.0)
            if status.budget_remaining is not None:
                budget.add_metric([name], status.budget_remaining)
            if status.time_to_exhaustion is not None:
                exhaustion.add_metric([name], status.time_to_exhaustion)
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "prober_slo_error_ratio",
                "Bad / total events over the window (absent: no data).",
                labels=["slo", "window"],
            ),
            GaugeMetricFamily(
                "prober_slo_burn_rate",
                "Error ratio / (1 - objective) over the window.",
                labels=["slo", "window"],
            ),
            GaugeMetricFamily(
                "prober_slo_error_budget_remaining_ratio",
                "Error budget left over the SLO window (1: untouched, < 0: overspent).",
                labels=["slo"],
            ),
            GaugeMetricFamily(
                "prober_slo_budget_exhaustion_seconds",
                "Projected time until the budget is spent at the current (1h) burn rate.",
                labels=["slo"],
            ),
        )


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


class _LatencyQuantiles(Collector):
    """`prober_journey_latency_seconds{journey,quantile,window}`, computed at scrape time."""

    def __init__(self, metrics: ProberMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for journey in list(self._metrics.sketches):
            for window, values in self._metrics.latency_quantiles(journey).items():
                for quantile, value in values.items():
                    if value is not None:
                        family.add_metric([journey, f"{quantile:g}", window], value)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "prober_journey_latency_seconds",
            "Percentiles of successful journey run durations over a sliding window (<= 1% error).",
            labels=["journey", "quantile", "window"],
        )
