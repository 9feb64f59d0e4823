"""prober's own faults, grouped by who must act. A failing *target* is never an
exception: it is a field of a `StepResult` (see `prober.results`).

    ProberError                 root of everything prober raises on purpose
    ├── ConfigError             the operator must fix the config (exit code 2)
    ├── StateError              the state file cannot be used (exit code 2 at start-up)
    └── UsageError              the command line is wrong (exit code 2)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigIssue", "ProberError", "StateError", "UsageError"]


class ProberError(Exception):
    """Root of prober's own errors."""


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One problem in a config: where (`journeys[1].steps[0].expect[2]`) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ProberError):
    """A config that cannot be used; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class StateError(ProberError):
    """The state file is corrupt, from a newer prober, not prober's, or unwritable."""


class UsageError(ProberError):
    """A command-line mistake (unknown journey, bad flag value)."""
