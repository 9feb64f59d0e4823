"""`run-once` results for people and for CI: the summary table, the JSON report, JUnit XML,
and the gates.

Gates (`gates: {max_p95: 2s, min_success_ratio: 100%}`, top level or per journey) are
checked over a journey's iterations. Latency gates use the nearest-rank percentile of
the *successful* runs' durations (a fast failure must not make p95 look good); with no
successful run they fail. Without a `min_success_ratio` gate every run must pass, so a
journey passes when all its gates pass and, absent that gate, all its runs passed.

Everything written here goes through `redact` once more, whatever the runner already
scrubbed: reports are where secrets would leave the machine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prober.config import Gates
from prober.redaction import redact
from prober.results import RunResult

__all__ = [
    "GateResult",
    "JourneyReport",
    "Report",
    "evaluate_gates",
    "nearest_rank",
    "render_json",
    "render_summary",
    "write_junit",
]


@dataclass(frozen=True)
class GateResult:
    gate: str  # max_p95, min_success_ratio, …
    threshold: float
    value: float | None
    passed: bool

    def describe(self) -> str:
        if self.gate == "min_success_ratio":
            shown = "n/a" if self.value is None else f"{self.value:.1%}"
            return f"success ratio {shown} (gate >= {self.threshold:.1%})"
        shown = "no successful run" if self.value is None else _ms(self.value)
        return f"{self.gate[len('max_') :]} {shown} (gate <= {_ms(self.threshold)})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "threshold": self.threshold,
            "value": self.value,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class JourneyReport:
    name: str
    runs: tuple[RunResult, ...]
    gates: tuple[GateResult, ...] = ()

    @property
    def success(self) -> bool:
        if any(gate.gate == "min_success_ratio" for gate in self.gates):
            return all(gate.passed for gate in self.gates)
        return all(run.success for run in self.runs) and all(gate.passed for gate in self.gates)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "success": self.success,
            "runs": [run.as_dict() for run in self.runs],
            "gates": [gate.as_dict() for gate in self.gates],
        }


@dataclass(frozen=True)
class Report:
    journeys: tuple[JourneyReport, ...]

    @property
    def success(self) -> bool:
        return all(journey.success for journey in self.journeys)

    def as_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "journeys": [journey.as_dict() for journey in self.journeys],
        }


def nearest_rank(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile: the smallest value with `quantile` of all values at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(quantile * len(ordered)))
    return ordered[rank - 1]


def evaluate_gates(gates: Gates | None, runs: Sequence[RunResult]) -> tuple[GateResult, ...]:
    if gates is None:
        return ()
    results = []
    durations = [run.duration_seconds for run in runs if run.success]
    for quantile in ("p50", "p90", "p95", "p99"):
        threshold = getattr(gates, f"max_{quantile}")
        if threshold is None:
            continue
        value = nearest_rank(durations, int(quantile[1:]) / 100) if durations else None
        results.append(
            GateResult(
                f"max_{quantile}", threshold, value, value is not None and value <= threshold
            )
        )
    if gates.min_success_ratio is not None:
        ratio = sum(run.success for run in runs) / len(runs) if runs else None
        passed = ratio is not None and ratio >= gates.min_success_ratio - 1e-12
        results.append(GateResult("min_success_ratio", gates.min_success_ratio, ratio, passed))
    return tuple(results)


def render_json(report: Report) -> str:
    return redact(json.dumps(report.as_dict(), indent=2)) + "\n"


def render_summary(report: Report) -> str:
    """A table a person reads in a CI log: one row per step of every run."""
    header = ("JOURNEY", "RUN", "STEP", "STATUS", "LATENCY", "RESULT", "FAILURE")
    rows: list[tuple[str, ...]] = []
    for journey in report.journeys:
        for number, run in enumerate(journey.runs, start=1):
            for step in run.steps:
                failure = f"{step.failure.reason}: {step.failure.message}" if step.failure else ""
                rows.append(
                    (
                        journey.name,
                        str(number),
                        step.name,
                        str(step.status_code) if step.status_code is not None else "-",
                        _ms(step.duration_seconds),
                        "ok" if step.success else "FAIL",
                        failure,
                    )
                )
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in [header, *rows]
    ]
    lines = [line.rstrip() for line in lines]
    lines.append("")
    for journey in report.journeys:
        passed = sum(run.success for run in journey.runs)
        verdict = "PASS" if journey.success else "FAIL"
        lines.append(
            f"{verdict}  {journey.name}: {passed}/{len(journey.runs)} runs passed"
            + _latency_summary(journey.runs)
        )
        for gate in journey.gates:
            lines.append(f"      gate {'ok  ' if gate.passed else 'MISS'} {gate.describe()}")
    failed = [journey.name for journey in report.journeys if not journey.success]
    lines.append("")
    lines.append(f"FAILED: {', '.join(failed)}" if failed else "OK: all journeys passed")
    return redact("\n".join(lines)) + "\n"


def _latency_summary(runs: Sequence[RunResult]) -> str:
    durations = [run.duration_seconds for run in runs if run.success]
    if not durations:
        return ""
    if len(durations) == 1:
        return f", latency {_ms(durations[0])}"
    return "".join(
        f", {name} {_ms(nearest_rank(durations, quantile))}"
        for name, quantile in (("p50", 0.5), ("p95", 0.95), ("max", 1.0))
    )


def write_junit(report: Report, path: str | Path) -> None:
    """One testcase per journey run (classname = journey); gates as a testcase of their own."""
    from junitparser import Failure as JUnitFailure  # only for --junit: ~8 ms to import
    from junitparser import JUnitXml, TestCase, TestSuite

    suites = JUnitXml()
    for journey in report.journeys:
        suite = TestSuite(journey.name)
        for number, run in enumerate(journey.runs, start=1):
            case = TestCase(
                f"{journey.name} run {number}",
                classname=journey.name,
                time=round(run.duration_seconds, 6),
            )
            failed = run.failed
            if failed is not None and failed.failure is not None:
                case.result = [
                    JUnitFailure(
                        f"step {failed.name}: {failed.failure.message}", type_=failed.failure.reason
                    )
                ]
            suite.add_testcase(case)
        if journey.gates:
            case = TestCase(f"{journey.name} gates", classname=journey.name)
            missed = [gate.describe() for gate in journey.gates if not gate.passed]
            if missed:
                case.result = [JUnitFailure("gate missed: " + "; ".join(missed), type_="gate")]
            suite.add_testcase(case)
        suites.add_testsuite(suite)
    target = Path(path)
    suites.write(str(target), pretty=True)
    target.write_text(redact(target.read_text(encoding="utf-8")), encoding="utf-8")


def _ms(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f}s"
    if seconds >= 1:
        return f"{seconds:.2f}s"
    return f"{seconds * 1000:.1f}ms"
