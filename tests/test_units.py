"""Durations, percentages and sizes as written in the config (`prober.units`)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from prober.units import format_duration, parse_duration, parse_percent, parse_size
from tests.conftest import PROPERTY_SETTINGS

DURATIONS = [
    ("milliseconds", "500ms", 0.5),
    ("seconds", "30s", 30.0),
    ("minutes", "5m", 300.0),
    ("hours", "1h", 3600.0),
    ("days", "1d", 86400.0),
    ("weeks", "4w", 4 * 7 * 86400.0),
    ("compound", "1h30m", 5400.0),
    ("compound-three", "1m30s500ms", 90.5),
    ("compound-days", "1d12h", 129600.0),
    ("decimal-unit", "1.5h", 5400.0),
    ("decimal-ms", "2.5ms", 0.0025),
    ("zero-with-unit", "0s", 0.0),
    ("bare-zero", "0", 0.0),
    ("bare-number-is-seconds", "2", 2.0),
    ("bare-decimal", "0.25", 0.25),
    ("surrounding-space", " 30s\n", 30.0),
    ("int", 2, 2.0),
    ("float", 1.5, 1.5),
    ("int-zero", 0, 0.0),
]


@pytest.mark.parametrize(
    ("value", "seconds"), [d[1:] for d in DURATIONS], ids=[d[0] for d in DURATIONS]
)
def test_parse_duration(value: object, seconds: float) -> None:
    """Prometheus-style durations, and bare numbers, read as seconds."""
    assert parse_duration(value) == pytest.approx(seconds, rel=1e-12, abs=0)


BAD_DURATIONS = [
    ("empty", ""),
    ("blank", "   "),
    ("unit-only", "ms"),
    ("unknown-unit", "5x"),
    ("upper-case-unit", "5M"),
    ("space-before-unit", "5 m"),
    ("space-between-parts", "1h 30m"),
    ("unit-first", "s5"),
    ("trailing-junk", "30s ok"),
    ("negative-text", "-1s"),
    ("negative-bare", "-5"),
    ("negative-part", "1h-30m"),
    ("plus-sign-with-unit", "+5s"),
    ("leading-dot", ".5s"),
    ("trailing-dot", "5.s"),
    ("nan-text", "nan"),
    ("inf-text", "inf"),
    ("overflow-text", "1e999"),
    ("overflow-unit", "9" * 400 + "w"),
    ("negative-int", -1),
    ("nan-float", float("nan")),
    ("inf-float", float("inf")),
    ("bool-true", True),
    ("bool-false", False),
    ("none", None),
    ("list", [1]),
]


@pytest.mark.parametrize("value", [b[1] for b in BAD_DURATIONS], ids=[b[0] for b in BAD_DURATIONS])
def test_parse_duration_invalid(value: object) -> None:
    """An unreadable duration raises ValueError; nothing is read as 0."""
    with pytest.raises(ValueError, match=r"^invalid duration"):
        parse_duration(value)


def test_parse_duration_message_shows_an_example() -> None:
    """The message for an unreadable duration tells the operator what to write."""
    message = (
        "invalid duration '5 minutes': use a number and a unit (ms, s, m, h, d, w), e.g. '30s'"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_duration("5 minutes")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(10**400, id="huge-int"),
        pytest.param(10**30, id="large-int"),
    ],
)
def test_parse_duration_huge_int(value: int) -> None:
    """A huge integer is a finite duration or a ValueError, never another exception."""
    try:
        outcome: object = parse_duration(value)
    except ValueError as error:
        outcome = error
    assert isinstance(outcome, float | ValueError)


@pytest.mark.parametrize(
    ("spellings"),
    [
        pytest.param(("9ms", "0.009s", "0.009"), id="9ms"),
        pytest.param(("250ms", "0.25s", "0.25"), id="250ms"),
    ],
)
def test_spellings_of_one_duration_are_equal(spellings: tuple[str, ...]) -> None:
    """Every spelling of the same duration parses to the same float."""
    assert len({parse_duration(spelling) for spelling in spellings}) == 1


FORMATTED = [
    ("zero", 0, "0s"),
    ("seconds", 30, "30s"),
    ("seconds-not-whole-minutes", 90, "90s"),
    ("minutes", 120, "2m"),
    ("minutes-not-whole-hours", 5400, "90m"),
    ("hour", 3600, "1h"),
    ("day", 86400, "1d"),
    ("days", 172800, "2d"),
    ("week", 604800, "1w"),
    ("weeks", 1209600, "2w"),
    ("milliseconds", 0.25, "250ms"),
    ("milliseconds-over-a-second", 1.5, "1500ms"),
    ("sub-millisecond", 0.0015, "0.0015s"),
    ("tiny-without-exponent", 1e-7, "0.0000001s"),
]


@pytest.mark.parametrize(
    ("seconds", "text"), [f[1:] for f in FORMATTED], ids=[f[0] for f in FORMATTED]
)
def test_format_duration(seconds: float, text: str) -> None:
    """A duration formats as one whole number of the largest unit that fits exactly."""
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(1234.5671, id="six-significant-digits"),
        pytest.param(0.0015, id="sub-millisecond"),
    ],
)
def test_format_duration_is_exact(seconds: float) -> None:
    """format_duration spells the exact value: parsing it back gives the same float."""
    assert parse_duration(format_duration(seconds)) == seconds


@PROPERTY_SETTINGS
@given(st.text(max_size=40))
def test_parse_duration_arbitrary_text(text: str) -> None:
    """Arbitrary text is a float of seconds or a ValueError, nothing else."""
    try:
        outcome: object = parse_duration(text)
    except ValueError as error:
        outcome = error
    assert isinstance(outcome, float | ValueError)


@PROPERTY_SETTINGS
@given(st.text(alphabet="0123456789.mshdw -+e_", max_size=20))
def test_parse_duration_duration_like_text(text: str) -> None:
    """Text made of duration characters is a non-negative float or a ValueError."""
    try:
        outcome: object = parse_duration(text)
    except ValueError as error:
        outcome = error
    assert isinstance(outcome, ValueError) or (isinstance(outcome, float) and outcome >= 0)


@PROPERTY_SETTINGS
@given(st.integers(min_value=0, max_value=10**9))
def test_duration_round_trip_whole_seconds(seconds: int) -> None:
    """parse_duration(format_duration(x)) == x for whole seconds."""
    assert parse_duration(format_duration(float(seconds))) == seconds


@PROPERTY_SETTINGS
@example(9)
@given(st.integers(min_value=0, max_value=10**9))
def test_duration_round_trip_milliseconds(milliseconds: int) -> None:
    """parse_duration(format_duration(x)) == x for every whole number of milliseconds."""
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@PROPERTY_SETTINGS
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_duration_round_trip_any_float(seconds: float) -> None:
    """parse_duration(format_duration(x)) == x for every finite, non-negative float."""
    assert parse_duration(format_duration(seconds)) == seconds


PERCENTS = [
    ("percent", "99.5%", 0.995),
    ("percent-whole", "10%", 0.1),
    ("hundred-percent", "100%", 1.0),
    ("zero-percent", "0%", 0.0),
    ("space-before-sign", "50 %", 0.5),
    ("fraction-text", "0.995", 0.995),
    ("fraction-float", 0.995, 0.995),
    ("one-is-everything", 1, 1.0),
    ("zero", 0, 0.0),
    ("surrounding-space", " 99.9% ", 0.999),
]

#: Percentages that float division gets one ulp off (99.9 / 100 == 0.9990000000000001):
#: they must be the double nearest the fraction, exactly, or thresholds drift.
EXACT_PERCENTS = ["99.9%", "99.99%", "0.1%", "99.5%", "95%", "0.3%", "33.3%"]


@pytest.mark.parametrize("text", EXACT_PERCENTS)
def test_parse_percent_is_the_nearest_double(text: str) -> None:
    """`99.9%` is exactly 0.999 (the double nearest it), not 0.9990000000000001."""
    assert parse_percent(text) == float(text[:-1] + "e-2")


@pytest.mark.parametrize(
    ("value", "fraction"), [p[1:] for p in PERCENTS], ids=[p[0] for p in PERCENTS]
)
def test_parse_percent(value: object, fraction: float) -> None:
    """`99.5%` and `0.995` both read as the fraction 0.995."""
    assert parse_percent(value) == pytest.approx(fraction, rel=1e-12, abs=0)


BAD_PERCENTS = [
    ("over-hundred", "101%", "must lie between 0% and 100%"),
    ("negative-percent", "-1%", "must lie between 0% and 100%"),
    ("bare-number-over-one", "5", "a bare number is a fraction: 0.995 means 99.5%"),
    ("bare-int-over-one", 99, "a bare number is a fraction"),
    ("bare-float-over-one", 1.01, "must lie between 0% and 100%"),
    ("negative-fraction", -0.1, "must lie between 0% and 100%"),
    ("sign-only", "%", "expected e.g. '99.5%'"),
    ("text", "abc", "expected e.g. '99.5%'"),
    ("text-percent", "abc%", "expected e.g. '99.5%'"),
    ("nan-percent", "nan%", "must lie between"),
    ("nan-float", float("nan"), "must lie between"),
    ("inf-text", "inf", "must lie between"),
    ("empty", "", "expected e.g. '99.5%'"),
    ("bool", True, "invalid percentage True"),
    ("none", None, "expected e.g. '99.5%'"),
    ("list", [0.5], "expected e.g. '99.5%'"),
]


@pytest.mark.parametrize(
    ("value", "message"), [b[1:] for b in BAD_PERCENTS], ids=[b[0] for b in BAD_PERCENTS]
)
def test_parse_percent_invalid(value: object, message: str) -> None:
    """An unreadable or out-of-range percentage raises ValueError saying why."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_percent(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(10**400, id="huge-int"),
        pytest.param(10**30, id="large-int"),
    ],
)
def test_parse_percent_huge_int(value: int) -> None:
    """A huge integer is refused with ValueError, never another exception."""
    with pytest.raises(ValueError, match="must lie between"):
        parse_percent(value)


SIZES = [
    ("mebibytes", "1MiB", 1024**2),
    ("kilobytes", "512kb", 512_000),
    ("kibibytes", "512KiB", 512 * 1024),
    ("gigabytes", "1GB", 10**9),
    ("gibibytes", "2gib", 2 * 1024**3),
    ("megabytes", "3MB", 3_000_000),
    ("bytes-unit", "100b", 100),
    ("bare-text", "100", 100),
    ("int", 4096, 4096),
    ("space-before-unit", "1 MiB", 1024**2),
    ("surrounding-space", " 2mb ", 2_000_000),
    ("decimal", "1.5kb", 1500),
    ("decimal-binary", "0.5KiB", 512),
]


@pytest.mark.parametrize(("value", "size"), [s[1:] for s in SIZES], ids=[s[0] for s in SIZES])
def test_parse_size(value: object, size: int) -> None:
    """Sizes read as whole bytes, decimal and binary units alike."""
    assert parse_size(value) == size


BAD_SIZES = [
    ("zero", "0", "must be positive"),
    ("zero-int", 0, "must be positive"),
    ("negative-int", -1, "must be positive"),
    ("rounds-to-zero", "0.0001kb", "must be positive"),
    ("negative-text", "-1kb", "expected e.g. '1MiB'"),
    ("terabytes-unsupported", "1tb", "expected e.g. '1MiB'"),
    ("single-letter-unit", "1k", "expected e.g. '1MiB'"),
    ("mega-letter", "1m", "expected e.g. '1MiB'"),
    ("exponent", "1e3", "expected e.g. '1MiB'"),
    ("text", "abc", "expected e.g. '1MiB'"),
    ("empty", "", "expected e.g. '1MiB'"),
    ("unit-only", "kb", "expected e.g. '1MiB'"),
    ("float", 1.5, "expected e.g. '1MiB'"),
    ("fractional-bytes", "1.5", "a number of bytes must be whole"),
    ("fractional-bytes-unit", "1.5b", "a number of bytes must be whole"),
    ("bool", True, "invalid size True"),
    ("none", None, "expected e.g. '1MiB'"),
]


@pytest.mark.parametrize(
    ("value", "message"), [b[1:] for b in BAD_SIZES], ids=[b[0] for b in BAD_SIZES]
)
def test_parse_size_invalid(value: object, message: str) -> None:
    """An unreadable or non-positive size raises ValueError saying why."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_size(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        pytest.param("2.01kb", 2010, id="2.01kb"),
        pytest.param("8.03kb", 8030, id="8.03kb"),
        pytest.param("2.5kb", 2500, id="2.5kb"),
    ],
)
def test_parse_size_decimal_is_exact(value: str, size: int) -> None:
    """A decimal size that is a whole number of bytes reads as exactly that number."""
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("9" * 400, id="huge-text"),
        pytest.param("1" + "0" * 30, id="large-text"),
    ],
)
def test_parse_size_huge(value: str) -> None:
    """A huge size is a number of bytes or a ValueError, never another exception."""
    try:
        outcome: object = parse_size(value)
    except ValueError as error:
        outcome = error
    assert isinstance(outcome, int | ValueError)
