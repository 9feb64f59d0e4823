"""Durations, percentages and byte sizes as written in the config, and back.

Durations are Prometheus-style: an integer or decimal followed by one unit
(`500ms`, `30s`, `5m`, `1h`, `1d`, `4w`), or several concatenated (`1h30m`).
A bare number is seconds. Percentages are written with `%` (`99.5%`) or as a
fraction in [0, 1] (`0.995`); everything inside prober works with fractions.

Every unreadable value raises `ValueError` with a message meant for the operator;
nothing is ever silently read as 0.
"""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration", "parse_percent", "parse_size"]

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
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
        seconds = float(value)
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
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d, w), e.g. '30s'"
        )
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact config spelling of a duration: 3600 → `1h`, 0.25 → `250ms`."""
    if seconds == 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    milliseconds = seconds * 1000
    if milliseconds.is_integer():
        return f"{int(milliseconds)}ms"
    return f"{seconds:g}s"


def parse_percent(value: object) -> float:
    """A fraction from `99.5%` or `0.995`."""
    if isinstance(value, bool):
        raise ValueError(f"invalid percentage {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                fraction = float(text[:-1]) / 100
            except ValueError:
                raise ValueError(f"invalid percentage {value!r}: expected e.g. '99.5%'") from None
        else:
            try:
                fraction = float(text)
            except ValueError:
                raise ValueError(f"invalid percentage {value!r}: expected e.g. '99.5%'") from None
    elif isinstance(value, int | float):
        fraction = float(value)
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
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    else:
        raise ValueError(f"invalid size {value!r}: expected e.g. '1MiB'")
    if size <= 0:
        raise ValueError(f"invalid size {value!r}: must be positive")
    return size
