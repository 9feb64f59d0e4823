"""run-once reports: percentiles, gates, and the JSON / JUnit / summary outputs (golden)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prober.config import Gates
from prober.redaction import register_secret
from prober.report import (
    JourneyReport,
    Report,
    evaluate_gates,
    nearest_rank,
    render_json,
    render_summary,
    write_junit,
)
from prober.results import Failure, Phases, RunResult, StepResult


def run(duration: float, *, ok: bool = True, number: int = 0) -> RunResult:
    step = StepResult(
        name="login",
        success=ok,
        duration_seconds=duration,
        status_code=200 if ok else 503,
        phases=Phases(0.0, 0.001, 0.0, duration - 0.0015, 0.0005),
        failure=None if ok else Failure("status", "expected status == 200, got 503"),
    )
    return RunResult("chat", f"{number:032x}", 1_700_000_000.0 + number, duration, (step,))


@pytest.mark.parametrize(
    ("values", "quantile", "expected"),
    [
        ([5.0], 0.95, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 0.75, 3.0),
        ([float(v) for v in range(1, 101)], 0.95, 95.0),
        ([float(v) for v in range(1, 101)], 0.99, 99.0),
        ([3.0, 1.0, 2.0], 1.0, 3.0),
    ],
    ids=["single", "median-even", "p75", "p95-of-100", "p99-of-100", "max-unsorted"],
)
def test_nearest_rank(values: list[float], quantile: float, expected: float) -> None:
    """Nearest-rank percentiles match hand-computed values."""
    assert nearest_rank(values, quantile) == expected


@pytest.mark.parametrize(
    ("gates", "runs", "expected"),
    [
        (Gates(max_p95=0.5), [run(0.1), run(0.2), run(0.4)], [("max_p95", 0.4, True)]),
        (Gates(max_p95=0.3), [run(0.1), run(0.2), run(0.4)], [("max_p95", 0.4, False)]),
        (Gates(max_p95=0.3), [run(0.1), run(0.9, ok=False)], [("max_p95", 0.1, True)]),
        (Gates(max_p50=1.0), [run(0.1, ok=False)], [("max_p50", None, False)]),
        (
            Gates(min_success_ratio=0.5),
            [run(0.1), run(0.1, ok=False)],
            [("min_success_ratio", 0.5, True)],
        ),
        (
            Gates(min_success_ratio=1.0),
            [run(0.1), run(0.1, ok=False)],
            [("min_success_ratio", 0.5, False)],
        ),
    ],
    ids=[
        "p95-within",
        "p95-missed",
        "p95-ignores-failed-runs",
        "no-successful-run",
        "ratio-met",
        "ratio-missed",
    ],
)
def test_gates(
    gates: Gates, runs: list[RunResult], expected: list[tuple[str, float | None, bool]]
) -> None:
    """Gates compute the right value and verdict."""
    assert [
        (gate.gate, gate.value, gate.passed) for gate in evaluate_gates(gates, runs)
    ] == expected


def test_success_ratio_gate_replaces_all_runs_must_pass() -> None:
    """With min_success_ratio set, a journey may pass although a run failed; without, it may not."""
    runs = (run(0.1), run(0.1, ok=False))
    lenient = JourneyReport("chat", runs, evaluate_gates(Gates(min_success_ratio=0.5), runs))
    strict = JourneyReport("chat", runs, evaluate_gates(Gates(max_p95=1.0), runs))
    assert (lenient.success, strict.success) == (True, False)


def sample_report() -> Report:
    runs = (run(0.25, number=1), run(0.5, ok=False, number=2))
    return Report(
        (
            JourneyReport(
                "chat", runs, evaluate_gates(Gates(max_p95=0.3, min_success_ratio=1.0), runs)
            ),
        )
    )


def test_json_report_golden(golden) -> None:  # type: ignore[no-untyped-def]
    """The JSON report keeps DESIGN's shape."""
    golden("report/run-once.json", render_json(sample_report()))


def test_summary_golden(golden) -> None:  # type: ignore[no-untyped-def]
    """The summary table a person reads in CI."""
    golden("report/summary.txt", render_summary(sample_report()))


def test_junit_golden(golden, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One testcase per run, classname = journey, failure with step and message; gates as a case."""
    path = tmp_path / "junit.xml"
    write_junit(sample_report(), path)
    golden("report/junit.xml", path.read_text())


def test_outputs_redact_secrets(tmp_path: Path) -> None:
    """A secret that slipped into a failure message is masked in every output."""
    register_secret("s3cr3t-value")
    step = StepResult("login", False, 0.1, failure=Failure("assertion", "got 's3cr3t-value'"))
    report = Report(
        (JourneyReport("chat", (RunResult("chat", "0" * 31 + "1", 0.0, 0.1, (step,)),)),)
    )
    path = tmp_path / "junit.xml"
    write_junit(report, path)
    for text in (render_json(report), render_summary(report), path.read_text()):
        assert "s3cr3t-value" not in text
        assert "***" in text
