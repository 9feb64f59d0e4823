"""prober: synthetic journey probing and SLO evaluation.

The package re-exports the few names a program embedding prober needs; everything
else lives in its own module (see the README's layout section).
"""

from prober.config import ProberConfig, load_config
from prober.errors import ConfigError, ConfigIssue, ProberError, UsageError
from prober.results import Failure, Phases, RunResult, StepResult

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "Failure",
    "Phases",
    "ProberConfig",
    "ProberError",
    "RunResult",
    "StepResult",
    "UsageError",
    "load_config",
]
