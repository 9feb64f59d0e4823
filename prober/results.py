"""What a journey run produced: frozen values that every sink (report, metrics, SLO
store, logs) reads and none can change.

A failing target is data, not an exception: a failed step carries a `Failure` with a
`reason` from `REASONS` (the `reason` label of `prober_step_failures_total`) and a
message written for a person. `template` and `config` (`SETUP_FAULTS`) are the prober's
own setup faults, kept out of the SLIs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PHASES", "REASONS", "SETUP_FAULTS", "Failure", "Phases", "RunResult", "StepResult"]

#: Every failure is classified into exactly one of these.
REASONS = (
    "timeout",
    "dns",
    "connect",
    "tls",
    "auth",
    "status",
    "assertion",
    "capture",
    "template",
    "config",
    "other",
)
#: Reasons that are the prober's own setup faults (an unset `${env.X}`, an unreadable CA
#: file), not the target's: the daemon keeps such runs out of every SLI and rule.
SETUP_FAULTS = frozenset({"template", "config"})
#: HTTP phases, named as blackbox_exporter names them.
PHASES = ("resolve", "connect", "tls", "processing", "transfer")


@dataclass(frozen=True, slots=True)
class Phases:
    """Seconds spent in each phase of one request; a reused connection has no connect/tls."""

    resolve: float = 0.0
    connect: float = 0.0
    tls: float = 0.0
    processing: float = 0.0
    transfer: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in PHASES}

    def __add__(self, other: Phases) -> Phases:
        return Phases(*(getattr(self, name) + getattr(other, name) for name in PHASES))


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str  # one of REASONS
    message: str

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown failure reason {self.reason!r}")

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message}


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    success: bool
    duration_seconds: float
    status_code: int | None = None
    phases: Phases = field(default_factory=Phases)
    failure: Failure | None = None
    request_id: str = ""
    cert_expiry: float | None = None  # unix seconds of the earliest certificate expiry (https)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "success": self.success,
            "status_code": self.status_code,
            "duration_seconds": round(self.duration_seconds, 6),
            "phases": {name: round(value, 6) for name, value in self.phases.as_dict().items()},
            "failure": self.failure.as_dict() if self.failure else None,
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    journey: str
    run_id: str
    started_at: float  # unix seconds (wall clock)
    duration_seconds: float
    steps: tuple[StepResult, ...]
    captures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(step.success for step in self.steps)

    @property
    def failed(self) -> StepResult | None:
        return next((step for step in self.steps if not step.success), None)

    @property
    def failed_step(self) -> str | None:
        failed = self.failed
        return failed.name if failed else None

    @property
    def failure(self) -> Failure | None:
        failed = self.failed
        return failed.failure if failed else None

    def as_dict(self) -> dict[str, Any]:
        """The run as it appears in the `run-once --json` report."""
        return {
            "success": self.success,
            "duration_seconds": round(self.duration_seconds, 6),
            "failed_step": self.failed_step,
            "run_id": self.run_id,
            "steps": [step.as_dict() for step in self.steps],
        }
