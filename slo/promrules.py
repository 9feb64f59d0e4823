"""Prometheus recording and alerting rules from an `EngineSpec`: the daemon's SLO math, in
PromQL, so that Prometheus (or Thanos/Mimir above it) can aggregate several prober replicas.

Pure: the spec in, plain data (`RuleSet`) out, and text from `render_rules`. What comes out,
per SLO (one rule group, so that every rule sees the others' results of the same evaluation):

- `slo:sli_error:ratio_rate<W>` for every window the daemon reports (`SloSpec.windows`: the
  policies' windows, the usual dashboard set and the SLO window), summed across replicas:
  bad events / events, `prober_slo_events_total{slo,result}`. No events in a window is no
  sample, never a NaN (the daemon's "no data").
- Long windows (over `DIRECT_MAX_WINDOW`) are built from two 5-minute recordings instead of
  the raw counters, the way Sloth's optimized period rule is, but event-weighted and safe
  against empty slices: Sloth averages the 5m *ratios* (`sum_over_time(ratio_rate5m[30d]) /
  count_over_time(...)`), which weighs a quiet night like a busy day (Sloth issue #241), and a
  5m slice without traffic records 0/0 = NaN, which poisons every `sum_over_time` that covers
  it for the whole 30 days (Sloth issue #531). Here the 5m recordings are the *counts*
  (`slo:sli_bad_events:increase5m`, `slo:sli_events:increase5m`; an empty slice is 0 and 0)
  and a long window is `sum_over_time(bad) / sum_over_time(events)`: every event counts the
  same, and an empty slice adds nothing to either sum. The ratio is exact up to the window's
  edges (the last and the first 5 minutes are weighed in by a ramp). A ratio does not care
  how many slices each event is in, nor whether the range holds one slice more or less.
- Sloth's meta recordings: `slo:objective:ratio`, `slo:error_budget:ratio`,
  `slo:time_period:days`, `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio`,
  `slo:period_error_budget_remaining:ratio` and `sloth_slo_info`, labelled `sloth_id`,
  `sloth_service`, `sloth_slo` (and `sloth_window` on the ratios), so Sloth's public Grafana
  dashboards work unchanged.
- One burn-rate alert per policy, with the daemon's thresholds (`threshold × (1 - objective)`
  on both windows, written so Prometheus computes the same float), its low-traffic guard
  (`min_events` in the long window, below), its labels (`severity`, `slo`, `service`,
  `journey`, `long_window`, `short_window`, `burnrate_tier`) and annotations, and no `for`.

The low-traffic guard. The daemon lets a policy fire only while its long window holds at
least `min_events` runs. Here that count is `sum(increase(prober_slo_events_total{slo}[W]))`
for every long window `W`, and where the window's ratio is made of the 5m slices, a check
that the slices cover the window (below). It used to be counted from the slices,
`sum_over_time(events5m[W]) / count_over_time(events5m[5m])`: their sum over the window
divided by the samples of a 5m range, the slices each run is in. That divisor depends on the
range semantics. Prometheus 2.x ranges are closed, `[t-5m, t]`: a rule evaluated every `i`
has `5m/i + 1` samples in one, while a run is in `5m/i` slices, so the count came out
`(5m/i) / (5m/i + 1)` of the runs: a 99.9% SLO probed every 2 minutes has 180 runs in 6h,
counted as 164 at `i` = 30s and 150 at 1m, under the 6h/30m page's 167, so that page never
fired where the daemon's did. Prometheus 3.x ranges are left-open, `(t-5m, t]`, with `5m/i`
samples, and the same rule counted right but for the slices' ramp (the runs of the last 5
minutes weigh less: from a cold start, the count reached 167 some 4 minutes after the 167th
run). A count of samples is also off when `i` does not divide 5 minutes, or an evaluation
is skipped.

`increase()` counts no samples. Over `[W]` it is the counter's rise from the first to the
last sample in the range (resets corrected), extended to each end of the range at the
average rate when that sample lies within 1.1 average sample intervals of it (else by half
an interval), and never back past the counter's zero. Against the daemon's count of the runs
in `(t-W, t]` (a run counts at the first scrape that sees it):

- Scrapes and evaluations at independent offsets (the usual case): no scrape lies on `t-W`,
  2.x and 3.x compute the same, and both ends are extrapolated: the runs of the stretch
  before the first and after the last scrape of the window are estimated at the window's
  average rate, so the guard is off by less than the runs of one scrape interval at each end
  (none at a steady cadence).
- A scrape on `t-W` (an evaluation on a scrape, `W` a multiple of the scrape interval, as in
  promtool): 2.x takes it as the start and counts the runs of `(t-W, t]` exactly; 3.x leaves
  it out and extrapolates the window's first scrape interval instead (180 runs in 6h at one
  per 2 minutes, scraped every minute: 179.5 or 180.5).
- A new prober's counters start at 0 (it exports them for every SLO when it starts) and are
  not extrapolated past 0: the guard is the runs since the first scrape, the daemon's cold
  start. A restart resets the counters, which `increase()` corrects (the runs between the
  last scrape and the restart are lost, as for any rate).

tests/test_rules_promtool.py feeds the same runs to the daemon's engine and to Prometheus
2.42's promtool, at evaluation intervals of 30s and 1m, with the ranges as written and 1 ms
shorter (on samples at whole seconds, 3.x's left-open range): the burn-rate alerts agree at
every evaluation but within one evaluation interval and one scrape interval of a change.

The check that the slices cover the window: the guard counts the counters, a long window's
ratio only what the 5m slices recorded. Where the slices miss a stretch that the counters
have (the rules loaded onto a prober with history, an SLO whose `sloth_id` changed,
evaluations that stopped while the scrapes went on), the ratio is over fewer runs than the
guard counts, and one failed run can page: 1 of the 20 runs since the rules came is 5%, where
the daemon's 6h holds 1 of 180 (0.56%, under 0.6%). So an alert whose long window is made of
slices also needs `absent_over_time((counters offset 10m unless on () present_over_time(
events5m[10m]))[W:S])`: no step of the window (`S` = W/24, at least 5m: 15m for 6h, 1h for
1d, 3h for 3d) at which the counters had a sample 10 minutes before and the slices none in
those 10 minutes. Once the rules are loaded onto a prober with history, such a policy waits
about one long window (6h for the 6h/30m page, 3 days for the 3d/6h ticket; the slice count
waited for `min_events` recorded runs). A stretch shorter than `S` + 10m can go unnoticed
(the ratio then holds that many runs fewer than the guard counts); a hole of 10 minutes at
a step holds the policy back until it leaves the window. An outage of Prometheus itself (no
scrapes, no evaluations) is no hole: the guard then counts the runs the counters rose by
across it, which no slice holds.

The cost: the guard reads the raw counters over the long windows, which the slices spare the
ratios, and the check loads them again for its steps. `bench/rule_eval_cost.py`'s setup
(100 SLOs, 2 replicas, a day of 15 s history, every 20 s), on one 2-core machine: 1.1 s of
rule-group time and 1.4 CPU-s per round, against 0.6 s and 0.9 CPU-s with the slice count
(the check is 0.15 s of it) and 1.6 s and 2.0 CPU-s reading the raw counters for every window.

Besides the SLOs: the threshold rules (`alerting.rules`) that the exported metrics can express
(`error_ratio`, a journey's `p50..p99` from the duration histogram); the others are listed in
`RuleSet.skipped` with the reason. And `ProberAbsent`, a dead man's switch, because a dead
prober cannot alert by itself: a prober target that is down, or a journey without a counted
run for 3 intervals (at least `MIN_ABSENT_RANGE`, so that the range holds two scrapes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import yaml

from slo.alerting import alert_key
from slo.engine import Engine, EngineSpec, RuleSpec, SloSpec, format_window
from slo.policies import BurnRatePolicy, min_events_for

__all__ = [
    "BASE_WINDOW",
    "DIRECT_MAX_WINDOW",
    "MIN_ABSENT_RANGE",
    "RuleFormat",
    "RuleSet",
    "SkippedRule",
    "generate_rules",
    "inhibit_rules",
    "prometheus_duration",
    "render_inhibit_rules",
    "render_rules",
]

RuleFormat = Literal["prometheus", "prometheusrule"]

#: The slice the long windows are built from (and the shortest window every SLO reports).
BASE_WINDOW: Final = 300.0
#: Windows up to this long read the counters directly; longer ones sum the 5m slices.
DIRECT_MAX_WINDOW: Final = 3600.0
#: How many steps the check that the 5m slices cover a long window takes over it.
SLICES_CHECK_STEPS: Final = 24
#: The shortest range `ProberAbsent` looks back over: two scrapes at a 1-minute interval.
MIN_ABSENT_RANGE: Final = 120.0
#: How far back a target counts as a prober of this config (it ran one of its journeys).
ABSENT_MEMORY: Final = 86400.0
ABSENT_ALERT: Final = "ProberAbsent"

EVENTS_METRIC: Final = "prober_slo_events_total"
RUNS_METRIC: Final = "prober_journey_runs_total"
INCONCLUSIVE_METRIC: Final = "prober_inconclusive_runs_total"
DURATION_BUCKETS: Final = "prober_journey_duration_seconds_bucket"
STEP_FAILURES_METRIC: Final = "prober_step_failures_total"
STEP_RUNS_METRIC: Final = "prober_step_duration_seconds_count"

SLI_ERROR: Final = "slo:sli_error:ratio_rate{window}"
BAD_EVENTS: Final = "slo:sli_bad_events:increase5m"
ALL_EVENTS: Final = "slo:sli_events:increase5m"
OBJECTIVE: Final = "slo:objective:ratio"
ERROR_BUDGET: Final = "slo:error_budget:ratio"
TIME_PERIOD_DAYS: Final = "slo:time_period:days"
CURRENT_BURN_RATE: Final = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE: Final = "slo:period_burn_rate:ratio"
PERIOD_BUDGET_REMAINING: Final = "slo:period_error_budget_remaining:ratio"
SLO_INFO: Final = "sloth_slo_info"
WINDOW_LABEL: Final = "sloth_window"
ID_LABELS: Final = ("sloth_id", "sloth_service", "sloth_slo")

_DURATION_UNITS: Final = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True)
class SkippedRule:
    """A threshold rule the exported metrics cannot express, and why."""

    name: str
    expression: str
    reason: str


@dataclass(frozen=True)
class RuleSet:
    """Rule groups as Prometheus' rule-file format has them (`{"name", "rules"}` dicts)."""

    service: str
    groups: tuple[Mapping[str, Any], ...]
    skipped: tuple[SkippedRule, ...] = ()


def prometheus_duration(seconds: float) -> str:
    """A Prometheus duration: `5m`, `1h`, `30d`, `1h30m`, `1500ms`."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a window must be a positive number of seconds, got {seconds!r}")
    milliseconds = round(seconds * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    whole = milliseconds // 1000
    for unit, size in _DURATION_UNITS[:-1]:  # one unit when one fits exactly: 30d, not 4w2d
        if whole % size == 0:
            return f"{whole // size}{unit}"
    parts = []
    for unit, size in _DURATION_UNITS:
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)


def generate_rules(spec: EngineSpec, *, optimize_long_windows: bool = True) -> RuleSet:
    """Every rule group for `spec` (see the module docstring).

    `optimize_long_windows=False` reads the raw counters for every window instead (what the
    benchmark compares with; the figures are the same, the cost is not).
    """
    annotations = Engine(spec).annotations
    groups: list[Mapping[str, Any]] = [
        _slo_group(spec, slo, annotations, optimize_long_windows) for slo in spec.slos
    ]
    threshold_rules, skipped = _threshold_rules(spec, annotations)
    if threshold_rules:
        groups.append({"name": f"prober-{spec.service}-rules", "rules": threshold_rules})
    if spec.intervals:
        groups.append({"name": f"prober-{spec.service}-absent", "rules": _absent_rules(spec)})
    return RuleSet(spec.service, tuple(groups), tuple(skipped))


# ------------------------------------------------------------------------------- SLOs


def _slo_group(
    spec: EngineSpec, slo: SloSpec, annotations: Mapping[Any, Mapping[str, str]], optimize: bool
) -> Mapping[str, Any]:
    ids = _id_labels(spec.service, slo)
    selector = _selector(ids)
    rules: list[dict[str, Any]] = []
    base = _duration(BASE_WINDOW)
    if optimize:
        for record, matchers in ((BAD_EVENTS, {"result": "bad"}), (ALL_EVENTS, {})):
            rules.append(
                _record(
                    record,
                    f"sum(increase({_events(slo, matchers)}[{base}]))",
                    {**ids, WINDOW_LABEL: base},
                )
            )
    for window in slo.windows:
        rules.append(
            _record(
                _sli_error(window),
                _error_ratio_expr(slo, window, selector, optimize),
                {**ids, WINDOW_LABEL: _duration(window)},
            )
        )
    rules.extend(_meta_rules(slo, ids, selector))
    for policy in slo.policies:
        rules.append(_burn_rate_alert(spec, slo, policy, ids, annotations, optimize))
    return {"name": f"prober-{spec.service}-slo-{slo.name}", "rules": rules}


def _error_ratio_expr(slo: SloSpec, window: float, selector: str, optimize: bool) -> str:
    if optimize and window == BASE_WINDOW:
        return f"{BAD_EVENTS}{selector}\n/\n({ALL_EVENTS}{selector} > 0)"
    if optimize and window > DIRECT_MAX_WINDOW:
        span = _duration(window)
        return (
            f"sum_over_time({BAD_EVENTS}{selector}[{span}])\n"
            f"/\n(sum_over_time({ALL_EVENTS}{selector}[{span}]) > 0)"
        )
    span = _duration(window)
    bad = _events(slo, {"result": "bad"})
    return f"sum(rate({bad}[{span}]))\n/\n(sum(rate({_events(slo, {})}[{span}])) > 0)"


def _events_in(slo: SloSpec, window: float) -> str:
    """The number of events in `window`, for the low-traffic guard: from the counters, the
    same under Prometheus 2.x's closed and 3.x's left-open ranges (see the module docstring)."""
    return f"sum(increase({_events(slo, {})}[{_duration(window)}]))"


def _slices_cover(slo: SloSpec, window: float, selector: str) -> str:
    """A sample when the 5m slices cover the window where the counters do: no step of the
    window (every `window / SLICES_CHECK_STEPS`, at least 5m) at which the counters had a
    sample 10 minutes before and the slices none in those 10 minutes."""
    hole = _duration(2 * BASE_WINDOW)
    step = _duration(max(BASE_WINDOW, window / SLICES_CHECK_STEPS))
    return (
        "absent_over_time(\n  (\n"
        f"    {_events(slo, {})} offset {hole}\n"
        "    unless on ()\n"
        f"    present_over_time({ALL_EVENTS}{selector}[{hole}])\n"
        f"  )[{_duration(window)}:{step}]\n)"
    )


def _meta_rules(slo: SloSpec, ids: Mapping[str, str], selector: str) -> list[dict[str, Any]]:
    objective = _number(slo.objective)
    current = _sli_error(_current_window(slo))
    period = _sli_error(slo.window)
    # One-to-one on the SLO's ids: the result carries only them (no `sloth_window`).
    burn = f"/ on ({', '.join(ID_LABELS)})\n{ERROR_BUDGET}{selector}"
    info = {**ids, "sloth_mode": "cli-gen-prom", "sloth_objective": _number(slo.objective * 100)}
    return [
        _record(OBJECTIVE, f"vector({objective})", ids),
        _record(ERROR_BUDGET, f"vector(1 - {objective})", ids),
        _record(TIME_PERIOD_DAYS, f"vector({_number(slo.window / 86400)})", ids),
        _record(CURRENT_BURN_RATE, f"{current}{selector}\n{burn}", ids),
        _record(PERIOD_BURN_RATE, f"{period}{selector}\n{burn}", ids),
        _record(PERIOD_BUDGET_REMAINING, f"1 - {PERIOD_BURN_RATE}{selector}", ids),
        _record(SLO_INFO, "vector(1)", info),
    ]


def _current_window(slo: SloSpec) -> float:
    """Sloth's "current" burn rate is the fastest page's short window (5m by default)."""
    shorts = [policy.short_window for policy in slo.policies if policy.severity == "critical"]
    window = min(shorts, default=BASE_WINDOW)
    return window if window in slo.windows else BASE_WINDOW


def _burn_rate_alert(
    spec: EngineSpec,
    slo: SloSpec,
    policy: BurnRatePolicy,
    ids: Mapping[str, str],
    annotations: Mapping[Any, Mapping[str, str]],
    optimize: bool,
) -> dict[str, Any]:
    selector = _selector(ids)
    tier = "page" if policy.severity == "critical" else "ticket"
    labels = {
        "alertname": slo.alert_name,
        "severity": policy.severity,
        "slo": slo.name,
        "journey": slo.journey,
        "service": spec.service,
        "long_window": format_window(policy.long_window),
        "short_window": format_window(policy.short_window),
        "burnrate_tier": tier,
    }
    # The daemon compares error ratios with threshold × (1 - objective): the same operations.
    limit = f"({_number(policy.threshold)} * (1 - {_number(slo.objective)}))"
    expr = (
        f"(\n  {_sli_error(policy.long_window)}{selector} > {limit}\n"
        f"and ignoring ({WINDOW_LABEL})\n"
        f"  {_sli_error(policy.short_window)}{selector} > {limit}\n)"
    )
    min_events = min_events_for(policy, slo.objective)
    if min_events > 0:
        if optimize and policy.long_window > DIRECT_MAX_WINDOW:
            expr += f"\nand on ()\n{_slices_cover(slo, policy.long_window, selector)}"
        events = _events_in(slo, policy.long_window)
        expr += f"\nand on ()\n(\n  {events}\n) >= {min_events}"
    rule_labels = {k: v for k, v in labels.items() if k != "alertname"}
    rule_labels["sloth_severity"] = tier
    return {
        "alert": slo.alert_name,
        "expr": expr,
        "labels": rule_labels,
        "annotations": dict(annotations[alert_key(labels)]),
    }


# ---------------------------------------------------------------------- threshold rules


def _threshold_rules(
    spec: EngineSpec, annotations: Mapping[Any, Mapping[str, str]]
) -> tuple[list[dict[str, Any]], list[SkippedRule]]:
    rules: list[dict[str, Any]] = []
    skipped: list[SkippedRule] = []
    for rule in spec.rules:
        measure, reason = _rule_measure(rule)
        if measure is None:
            skipped.append(SkippedRule(rule.name, rule.expression.text, reason))
            continue
        expression = rule.expression
        assert expression.comparator is not None
        assert expression.threshold is not None
        labels = {
            "alertname": rule.name,
            "severity": rule.severity,
            "journey": rule.journey,
            "step": rule.step or "",
            "service": spec.service,
        }
        entry: dict[str, Any] = {
            "alert": rule.name,
            "expr": f"(\n{_indent(measure)}\n) {expression.comparator} "
            f"{_number(expression.threshold)}",
        }
        if rule.for_seconds > 0:
            entry["for"] = _duration(rule.for_seconds)
        entry["labels"] = {k: v for k, v in labels.items() if v and k != "alertname"}
        entry["annotations"] = dict(annotations[alert_key(labels)])
        rules.append(entry)
    return rules, skipped


def _rule_measure(rule: RuleSpec) -> tuple[str | None, str]:
    """The PromQL for the rule's subject over its window, or None and why not."""
    expression, span = rule.expression, _duration(rule.window)
    journey = {"journey": rule.journey}
    if expression.kind == "error_ratio" and rule.step is None:
        failed = (
            f"sum(increase({_selector_for(RUNS_METRIC, {**journey, 'result': 'failure'})}[{span}]))"
        )
        runs = f"sum(increase({_selector_for(RUNS_METRIC, journey)}[{span}]))"
        # Inconclusive runs (the prober's own network was down) count as failures in the
        # runs counter; the daemon keeps them out of every rule, and so does this.
        inconclusive = f"sum(increase({_selector_for(INCONCLUSIVE_METRIC, journey)}[{span}]))"
        return (
            f"({failed} - {inconclusive})\n/\n(({runs} - {inconclusive}) > 0)",
            "",
        )
    if expression.kind == "error_ratio":
        step = {**journey, "step": rule.step or ""}
        failed = f"sum(increase({_selector_for(STEP_FAILURES_METRIC, step)}[{span}]))"
        reached = f"sum(increase({_selector_for(STEP_RUNS_METRIC, step)}[{span}]))"
        return f"{failed}\n/\n({reached} > 0)", ""
    if expression.kind == "quantile" and rule.step is None:
        assert isinstance(expression.argument, int)
        quantile = _number(expression.argument / 100)
        buckets = _selector_for(DURATION_BUCKETS, journey)
        return (
            f"histogram_quantile({quantile}, sum by (le) (rate({buckets}[{span}])))",
            "",
        )
    if expression.kind == "quantile":
        return None, "a step's percentile over the runs that passed it is not exported"
    if expression.kind == "status_ratio":
        return None, "only the last status code of each step is exported, not per-run counts"
    if expression.kind == "aggregate":
        return None, "captured values are not exported as metrics"
    return None, "captured values are not exported as metrics (the daemon announces changes)"


# ------------------------------------------------------------------ dead man's switch


def _absent_rules(spec: EngineSpec) -> list[dict[str, Any]]:
    journeys = sorted(spec.intervals)
    memory = _duration(ABSENT_MEMORY)
    # A target is one of this config's probers when it counted runs of its first journey:
    # one series per replica to look back over (every replica runs every journey).
    known = _selector_for(RUNS_METRIC, {"journey": journeys[0], "result": "success"})
    ranges = {
        journey: _duration(max(3 * spec.intervals[journey], MIN_ABSENT_RANGE))
        for journey in journeys
    }
    down_for = _duration(max(3 * max(spec.intervals.values()), MIN_ABSENT_RANGE))
    rules: list[dict[str, Any]] = [
        {
            "alert": ABSENT_ALERT,
            "expr": (
                "up == 0\nand on (job, instance)\n"
                f"group by (job, instance) (max_over_time({known}[{memory}]))"
            ),
            "for": down_for,
            "labels": {"severity": "critical", "service": spec.service, "cause": "target_down"},
            "annotations": {
                "summary": "prober {{ $labels.instance }} is down",
                "description": (
                    f"The prober target {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}),"
                    f" which ran journeys of {spec.service} in the last"
                    f" {format_window(ABSENT_MEMORY)}, cannot be scraped: its SLOs and alerts"
                    " are blind, and a dead prober cannot alert by itself."
                ),
            },
        }
    ]
    for journey in journeys:
        runs = f"{RUNS_METRIC}{{journey={_quote(journey)}}}"
        span = ranges[journey]
        rules.append(
            {
                "alert": ABSENT_ALERT,
                "expr": (
                    f"(\n  sum by (job, instance, journey) (increase({runs}[{span}])) == 0\n"
                    "  unless on (job, instance) up == 0\n)\n"
                    f"or\nabsent_over_time({runs}[{span}])"
                ),
                "labels": {
                    "severity": "critical",
                    "service": spec.service,
                    "journey": journey,
                    "cause": "no_runs",
                },
                "annotations": {
                    "summary": f"{journey}: no runs counted for {span}",
                    "description": (
                        f"No run of journey {journey} was counted for {span} (3 intervals of"
                        f" {format_window(spec.intervals[journey])}, at least"
                        f" {format_window(MIN_ABSENT_RANGE)}) on"
                        " {{ with $labels.instance }}{{ . }}{{ else }}any prober{{ end }}:"
                        " the prober is stuck or gone, so its SLOs see no data."
                    ),
                },
            }
        )
    return rules


# ---------------------------------------------------------------------- inhibit rules


def inhibit_rules(spec: EngineSpec) -> Mapping[str, Any]:
    """An Alertmanager `inhibit_rules` snippet: a page (critical) of an SLO suppresses its
    tickets (warning), matched on the alert name, the service and the SLO."""
    return {
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"', 'burnrate_tier="page"'],
                "target_matchers": ['severity="warning"', 'burnrate_tier="ticket"'],
                "equal": ["alertname", "service", "slo"],
            }
        ]
    }


def render_inhibit_rules(spec: EngineSpec) -> str:
    header = (
        f"# Generated by `prober rules --inhibit-rules` for service {spec.service}.\n"
        "# Merge into alertmanager.yml: a burn-rate page suppresses the same SLO's tickets.\n"
    )
    return header + _dump(inhibit_rules(spec))


# ---------------------------------------------------------------------------- output


def render_rules(rules: RuleSet, fmt: RuleFormat = "prometheus") -> str:
    """The rule file (`prometheus`) or a Prometheus Operator `PrometheusRule` resource."""
    header = [
        f"# Generated by `prober rules` for service {rules.service}: do not edit, regenerate",
        "# from the config. Recording rules use Sloth's names and labels, so Sloth's",
        "# dashboards work; alerts carry the daemon's labels and thresholds.",
    ]
    if rules.skipped:
        header.append("# Not translated (the exported metrics cannot express them):")
        header.extend(
            f"#   {rule.name} ({rule.expression}): {rule.reason}" for rule in rules.skipped
        )
    groups = [dict(group) for group in rules.groups]
    document: Mapping[str, Any]
    if fmt == "prometheus":
        document = {"groups": groups}
    elif fmt == "prometheusrule":
        document = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {
                "name": _resource_name(f"prober-{rules.service}"),
                "labels": {
                    "app.kubernetes.io/name": "prober",
                    "app.kubernetes.io/managed-by": "prober",
                },
            },
            "spec": {"groups": groups},
        }
    else:
        raise ValueError(f"unknown rule format {fmt!r}: expected prometheus or prometheusrule")
    return "\n".join(header) + "\n" + _dump(document)


def _resource_name(text: str) -> str:
    """A Kubernetes object name (RFC 1123 subdomain) from a service name."""
    name = re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.")
    return name[:253].rstrip("-.") or "prober"


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (PromQL), so the file reads like hand-written."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(document: Mapping[str, Any]) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000, indent=2
    )


# --------------------------------------------------------------------------- helpers


def _id_labels(service: str, slo: SloSpec) -> dict[str, str]:
    return {"sloth_id": f"{service}-{slo.name}", "sloth_service": service, "sloth_slo": slo.name}


def _record(name: str, expr: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": dict(labels)}


def _sli_error(window: float) -> str:
    return SLI_ERROR.format(window=_duration(window))


def _events(slo: SloSpec, matchers: Mapping[str, str]) -> str:
    return _selector_for(EVENTS_METRIC, {"slo": slo.name, **matchers})


def _selector_for(metric: str, matchers: Mapping[str, str]) -> str:
    return metric + _selector(matchers)


def _selector(matchers: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key}={_quote(value)}" for key, value in matchers.items()) + "}"


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _duration(seconds: float) -> str:
    return prometheus_duration(seconds)


def _number(value: float) -> str:
    """A number as a person writes it (12 significant digits: `0.999`, not the
    `0.9990000000000001` that parsing `99.9%` leaves behind)."""
    return format(value, ".12g")


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
