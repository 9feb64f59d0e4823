"""Durations, percentages and byte sizes as written in the config, and back.

Durations are Prometheus-style: an integer or decimal followed by one unit
(`500ms`, `30s`, `5m`, `1h`, `1d`, `4w`), or several concatenated (`1h30m`).
A bare number is seconds. Percentages are written with `%` (`99.5%`) or as a
fraction in [0, 1] (`0.995`); everything inside prober works with fractions.

Every unreadable value raises `ValueError` with a message meant for the operator;
nothing is ever silently read as 0.

Decimal text is read exactly (as a `Fraction`) and rounded to a float once, at the
end, so that every spelling of one duration gives the same float (`9ms`, `0.009s` and
`0.009` are all `0.009`, where `9 * 0.001` would not be) and `format_duration`
round-trips.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

__all__ = ["format_duration", "parse_duration", "parse_percent", "parse_size"]

#: Whole milliseconds per unit: integers, so that a duration is computed without float error.
_DURATION_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60 * 1000,
    "h": 3600 * 1000,
    "d": 86400 * 1000,
    "w": 7 * 86400 * 1000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(value: object) -> float:
    """Seconds from `30s`, `1h30m`, `500ms` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = _to_float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value.strip())
    else:
        raise ValueError(f"invalid duration {value!r}: expected a string like '30s'")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite, non-negative time")
    return seconds


def _parse_duration_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    position, milliseconds = 0, Fraction(0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        milliseconds += Fraction(match.group(1)) * _DURATION_UNITS_MS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d, w), e.g. '30s'"
        )
    return _to_float(milliseconds / 1000)


def _to_float(number: int | float | Fraction) -> float:
    """`float(number)`, rounded once; too large for a float is infinite (refused by callers)."""
    try:
        return float(number)
    except OverflowError:
        return math.inf


def format_duration(seconds: float) -> str:
    """The shortest exact config spelling of a duration: 3600 → `1h`, 0.25 → `250ms`.

    Works on the float's shortest decimal spelling (`repr`), exactly, so that
    `parse_duration(format_duration(x)) == x` for every finite, non-negative `x`.
    """
    if not math.isfinite(seconds):
        return f"{seconds}s"  # not a duration prober accepts; shown as it is
    spelling = repr(float(seconds))
    milliseconds = Fraction(spelling) * 1000
    if milliseconds == 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = _DURATION_UNITS_MS[unit]
        if milliseconds >= size and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    # Not a whole number of milliseconds: plain decimal seconds (the parser takes no exponent).
    return f"{Decimal(spelling):f}s"


def parse_percent(value: object) -> float:
    """A fraction from `99.5%` or `0.995`."""
    if isinstance(value, bool):
        raise ValueError(f"invalid percentage {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                # Decimal, so that '99.9%' is the double nearest 0.999 (float division
                # gives 0.9990000000000001, which shifts thresholds and event minimums).
                fraction = float(Decimal(text[:-1]) / 100)
            except (ValueError, ArithmeticError):
                raise ValueError(f"invalid percentage {value!r}: expected e.g. '99.5%'") from None
        else:
            try:
                fraction = float(text)
            except ValueError:
                raise ValueError(f"invalid percentage {value!r}: expected e.g. '99.5%'") from None
    elif isinstance(value, int | float):
        fraction = _to_float(value)
    else:
        raise ValueError(f"invalid percentage {value!r}: expected e.g. '99.5%'")
    if not math.isfinite(fraction) or not 0 <= fraction <= 1:
        raise ValueError(
            f"invalid percentage {value!r}: must lie between 0% and 100%"
            " (a bare number is a fraction: 0.995 means 99.5%)"
        )
    return fraction


def parse_size(value: object) -> int:
    """Bytes from `1MiB`, `512kb` or a bare integer."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if match is None or match.group(2) not in _SIZE_UNITS:
            raise ValueError(f"invalid size {value!r}: expected e.g. '1MiB', '512KiB' or bytes")
        size = _size_bytes(value, Fraction(match.group(1)), match.group(2))
    else:
        raise ValueError(f"invalid size {value!r}: expected e.g. '1MiB'")
    if size <= 0:
        raise ValueError(f"invalid size {value!r}: must be positive")
    return size


def _size_bytes(value: str, number: Fraction, unit: str) -> int:
    """Whole bytes, computed exactly: `2.01kb` is 2010, not int(2.01 * 1000) == 2009.

    A fraction of a unit rounds to the nearest byte (`0.3KiB` is 307); a fraction of
    a byte cannot be sent, so `1.5` or `1.5b` is refused rather than guessed.
    """
    scale = _SIZE_UNITS[unit]
    if scale == 1 and number.denominator != 1:
        raise ValueError(f"invalid size {value!r}: a number of bytes must be whole")
    return round(number * scale)
