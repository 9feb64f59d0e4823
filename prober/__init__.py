"""prober: synthetic journey probing and SLO evaluation.

The package re-exports the few names a program embedding prober needs; everything
else lives in its own module (see the README's layout section). The re-exports are
resolved lazily, so `python -m prober.demo` or `prober --help` do not pay for
importing pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "ProberConfig": "prober.config",
    "load_config": "prober.config",
    "ConfigError": "prober.errors",
    "ConfigIssue": "prober.errors",
    "ProberError": "prober.errors",
    "UsageError": "prober.errors",
    "Failure": "prober.results",
    "Phases": "prober.results",
    "RunResult": "prober.results",
    "StepResult": "prober.results",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'prober' has no attribute {name!r}")
