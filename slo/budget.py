"""Error-budget arithmetic: error ratio, burn rate, budget remaining, time to exhaustion.

Everything here is a function of counts (how many runs were good, how many bad) and of the
SLO's parameters; nothing reads a clock. The indicator (which run is good) is decided by the
caller: this module only counts.

    SLOError            root of everything `slo` raises on purpose: a caller's mistake
                        (an objective of 100%, a negative count, a window the store was not
                        sized for), never a failing target

`objective` is a ratio in (0, 1): 99.9% is `0.999`. Windows and durations are seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Counts",
    "SLOError",
    "budget_remaining",
    "burn_rate",
    "error_budget",
    "error_ratio",
    "time_to_exhaustion",
]


class SLOError(Exception):
    """Root of the errors `slo` raises: the caller passed something the math cannot use."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Good and bad events over one window. `total == 0` means no data, not a perfect window."""

    good: int
    bad: int

    def __post_init__(self) -> None:
        # A negative count can only come from a bug upstream; carrying it on would turn into
        # a ratio outside [0, 1] far from where it started.
        if self.good < 0 or self.bad < 0:
            raise SLOError(f"counts cannot be negative: good={self.good}, bad={self.bad}")

    @property
    def total(self) -> int:
        return self.good + self.bad

    @property
    def error_ratio(self) -> float | None:
        """bad / total, or None when the window holds no events (no data never fires)."""
        total = self.good + self.bad
        return self.bad / total if total else None


def error_budget(objective: float) -> float:
    """The allowed error ratio, `1 - objective`; rejects objectives that leave no budget.

    An objective of 1 (100%) would make every burn rate a division by zero, and one of 0 or
    less, or a NaN, is a typo; both are the caller's mistake, not data.
    """
    if not 0.0 < objective < 1.0:  # also false for NaN
        raise SLOError(f"objective must be a ratio strictly between 0 and 1, got {objective!r}")
    return 1.0 - objective


def error_ratio(counts: Counts) -> float | None:
    """bad / total over a window; None when there were no events."""
    return counts.error_ratio


def burn_rate(objective: float, counts: Counts) -> float | None:
    """How fast the window spends the budget: `error_ratio / (1 - objective)`.

    1.0 spends exactly the whole budget over the SLO window; 14.4 spends a 30-day budget in
    50 hours. None when the window holds no events.
    """
    allowance = error_budget(objective)
    ratio = counts.error_ratio
    return None if ratio is None else ratio / allowance


def budget_remaining(objective: float, counts: Counts) -> float | None:
    """The fraction of the error budget left over the SLO window: `1 - burn rate`.

    1.0 is untouched, 0.0 exactly spent, and it goes *negative* when the window failed more
    than the objective allows (-1.0: overspent by a whole budget) — clamping at 0 would hide
    how far out of SLO the service is. It can never exceed 1 (an error ratio is never
    negative); the `min` only guards the float arithmetic. None when there were no events.
    """
    rate = burn_rate(objective, counts)
    return None if rate is None else min(1.0, 1.0 - rate)


def time_to_exhaustion(remaining: float, rate: float, window: float) -> float | None:
    """Seconds until the budget is gone if the current burn rate holds: `remaining × window / rate`.

    A burn rate of 1 spends a whole budget in one SLO `window`, so `remaining` of it lasts
    `remaining × window / rate`. This is a projection that ignores old failures ageing out of
    the window, which is what an operator asks ("at this pace, when are we out?").
    An exhausted budget (`remaining <= 0`) gives 0 whatever the rate; a budget that is not
    being spent (`rate <= 0`) never runs out: None.
    """
    if window <= 0 or not math.isfinite(window):
        raise SLOError(f"window must be a positive number of seconds, got {window!r}")
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return None
    return remaining * window / rate
