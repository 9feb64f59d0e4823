"""Threshold-rule expressions (`alerting.rules[].when`), parsed once, evaluated purely.

    error_ratio > 90%          p95 > 2s                 status_ratio(429) > 0
    avg(tokens_used) > 500     max(queue_depth) >= 10   sum(retries) > 3
    changed(version)

A windowed expression is `SUBJECT COMPARATOR VALUE`, comparators `>`, `>=`, `<`, `<=`,
evaluated over the runs inside the rule's window (`WindowData`, filled by the caller
for the journey, or the step, that the rule names):

- `error_ratio`: failed runs / runs. Compared with a ratio: `5%` or a fraction `0.05`.
- `p50`, `p90`, `p95`, `p99`: nearest-rank percentile of the durations of the
  *successful* runs, because a failed run's duration is the time it took to fail (a 10s
  timeout, a 5ms refused connection) and would drag the percentile either way; failures
  are `error_ratio`'s business. Compared with a duration (`500ms`, `2s`, `1m`, bare
  seconds). No successful run in the window: no data.
- `status_ratio(CODE)`: the fraction of runs in which any step got HTTP status CODE
  (a run that met 429 twice counts once). Compared with a ratio.
- `avg|max|sum(CAPTURE)`: over the numeric values a capture took in the window.
  Compared with a plain number: a capture's unit is unknown to prober, so `5%` or `2s`
  would be a guess and is refused. Values that are not numbers are skipped
  (`capture_number`); no numeric value in the window is no data.

No data (no runs, or nothing to aggregate) is never active, and its value is `None`.

`changed(CAPTURE)` is not a threshold and has no window and no comparator: it is active
when the caller saw the capture take a new value (`is_changed`) since the previous
evaluation, which it reports in `WindowData.changed_captures`; the alert it drives is a
one-shot (see `slo.alerting`).

Every unreadable expression raises `RuleSyntaxError` with a message meant for the
operator; the config loader prefixes the path (`alerting.rules[3].when: ...`).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Literal

__all__ = [
    "COMPARATORS",
    "QUANTILES",
    "Comparator",
    "RuleExpression",
    "RuleKind",
    "RuleSyntaxError",
    "RuleValue",
    "RunSample",
    "WindowData",
    "capture_number",
    "is_changed",
    "nearest_rank",
    "parse_rule_expression",
    "summarize",
]

RuleKind = Literal["error_ratio", "quantile", "status_ratio", "aggregate", "changed"]
Comparator = Literal[">", ">=", "<", "<="]

COMPARATORS: Mapping[str, Callable[[float, float], bool]] = MappingProxyType(
    {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
)
#: The percentiles a rule may name, as in `prober_journey_latency_seconds`.
QUANTILES = (50, 90, 95, 99)
_AGGREGATES = ("avg", "max", "sum")
_MIN_STATUS, _MAX_STATUS = 100, 599
_EXAMPLE = "e.g. 'error_ratio > 5%'"
_SUBJECTS_HINT = (
    "expected error_ratio, p50, p90, p95, p99, status_ratio(CODE), avg(CAPTURE),"
    " max(CAPTURE), sum(CAPTURE) or changed(CAPTURE)"
)
_FUNCTIONS_HINT = (
    "expected status_ratio(CODE), avg(CAPTURE), max(CAPTURE), sum(CAPTURE) or changed(CAPTURE)"
)
_COMPARATORS_HINT = "use >, >=, < or <="

#: A subject: a name, optionally called with one argument.
_SUBJECT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\((?P<argument>[^()]*)\))?")
#: The run of comparison characters that starts the comparator (`>=`, and mistakes like `==`).
_COMPARATOR = re.compile(r"[<>=!]+")
#: The same names the config accepts as capture keys.
_CAPTURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_STATUS_CODE = re.compile(r"\d{3}")
_QUANTILE_NAME = re.compile(r"p(\d+)")
_UNSIGNED = r"(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER = re.compile(rf"[+-]?{_UNSIGNED}(?:[eE][+-]?\d+)?")
_PERCENT = re.compile(rf"({_UNSIGNED})%")
_RATIO = re.compile(_UNSIGNED)
#: Whole milliseconds per unit, as in the config's durations, so `2s` here is `2s` there.
_DURATION_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


class RuleSyntaxError(ValueError):
    """A `when` expression that cannot be parsed; the message is for the operator."""


@dataclass(frozen=True)
class RuleValue:
    """One evaluation: whether the rule holds, and the value it compared (`None`: no data)."""

    active: bool
    value: float | None


@dataclass(frozen=True)
class WindowData:
    """What a rule looks at: the runs inside its window, already aggregated by the caller.

    `durations` are those of successful runs (see the module docstring for why);
    `status_counts[code]` is the number of runs in which some step got `code`;
    `captures[name]` the finite numeric values of that capture, one per run that had one;
    `changed_captures` the captures whose value changed since the previous evaluation.
    `summarize` builds one from per-run samples.
    """

    runs: int
    failures: int = 0
    durations: Sequence[float] = ()
    status_counts: Mapping[int, int] = field(default_factory=dict)
    captures: Mapping[str, Sequence[float]] = field(default_factory=dict)
    changed_captures: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0 <= self.failures <= self.runs:
            raise ValueError(f"need 0 <= failures <= runs, got {self.failures} of {self.runs}")
        # Copies, so that a caller reusing its lists cannot change a value already built.
        object.__setattr__(self, "durations", tuple(self.durations))
        object.__setattr__(self, "status_counts", MappingProxyType(dict(self.status_counts)))
        captures = {name: tuple(values) for name, values in self.captures.items()}
        object.__setattr__(self, "captures", MappingProxyType(captures))
        object.__setattr__(self, "changed_captures", frozenset(self.changed_captures))


@dataclass(frozen=True)
class RunSample:
    """One journey run as a rule sees it (the fields of a replay event that rules read):
    `status_codes` are its steps' statuses (a replay event's `status_codes.values()`),
    `captures` its raw captured values, numeric or not."""

    success: bool
    duration_seconds: float | None = None
    status_codes: Collection[int] = ()
    captures: Mapping[str, object] = field(default_factory=dict)


def summarize(samples: Iterable[RunSample]) -> WindowData:
    """The `WindowData` of a window's runs: the one place the definitions above are applied."""
    runs = failures = 0
    durations: list[float] = []
    status_counts: dict[int, int] = {}
    captures: dict[str, list[float]] = {}
    for sample in samples:
        runs += 1
        if not sample.success:
            failures += 1
        elif sample.duration_seconds is not None:
            durations.append(sample.duration_seconds)
        for code in set(sample.status_codes):
            status_counts[code] = status_counts.get(code, 0) + 1
        for name, raw in sample.captures.items():
            number = capture_number(raw)
            if number is not None:
                captures.setdefault(name, []).append(number)
    return WindowData(runs, failures, durations, status_counts, captures)


def capture_number(value: object) -> float | None:
    """A captured value as a finite number, or `None` when it is not one (then skipped).

    JSON numbers count, and so does text spelling a number (a header such as
    `x-tokens: 512`), as in `expect` conditions; `true` is not `1`, and NaN or an
    infinity is no measurement, nor is a JSON integer too large for a float.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        return None
    return number if math.isfinite(number) else None


def is_changed(previous: object, current: object) -> bool:
    """Whether a capture's new value is a change, for `changed(CAPTURE)`.

    The first value ever seen (`previous` is `None`) is not a change: a restart must not
    announce a deployment. A missing value (`current` is `None`, e.g. the run failed
    before capturing it) is not a change either, and the caller should keep the last
    value it saw rather than the `None`, so that `1.0`, (missing), `1.1` is one change.
    `true` and `1` differ, as in `expect` conditions.
    """
    if previous is None or current is None:
        return False
    if isinstance(previous, bool) != isinstance(current, bool):
        return True
    return bool(previous != current)


@dataclass(frozen=True)
class RuleExpression:
    """A parsed `when`. `function` is what was written before the comparator (`p95`,
    `status_ratio`, `avg`); `argument` the percentile (95), status code (429) or capture
    name; `comparator` and `threshold` are `None` only for `changed`. `text` is the
    expression as written, kept for messages."""

    kind: RuleKind
    function: str
    argument: int | str | None
    comparator: Comparator | None
    threshold: float | None
    text: str = field(default="", compare=False)

    @property
    def windowed(self) -> bool:
        """Whether the rule needs a `window` (everything but `changed`)."""
        return self.kind != "changed"

    @property
    def one_shot(self) -> bool:
        """Whether its alert fires once per occurrence instead of while a condition holds."""
        return self.kind == "changed"

    @property
    def capture(self) -> str | None:
        """The capture the expression reads, for checking that the journey captures it."""
        if self.kind in ("aggregate", "changed"):
            return str(self.argument)
        return None

    @property
    def subject(self) -> str:
        """The left-hand side as written: `p95`, `status_ratio(429)`, `avg(tokens_used)`."""
        if self.kind in ("status_ratio", "aggregate", "changed"):
            return f"{self.function}({self.argument})"
        return self.function

    def evaluate(self, data: WindowData) -> RuleValue:
        """Whether the rule holds over `data`, with the value it compared."""
        if self.kind == "changed":
            changed = self.argument in data.changed_captures
            return RuleValue(changed, 1.0 if changed else 0.0)
        value = self._measure(data) if data.runs else None
        if value is None or self.comparator is None or self.threshold is None:
            return RuleValue(False, None)
        return RuleValue(COMPARATORS[self.comparator](value, self.threshold), value)

    def explain(self, result: RuleValue) -> str:
        """The expression with the resolved value inline: `p95 (2.4s) > 2s`."""
        if self.kind == "changed":
            return f"{self.subject} ({'changed' if result.active else 'unchanged'})"
        shown = "no data" if result.value is None else self._format(result.value)
        threshold = "" if self.threshold is None else self._format(self.threshold)
        return f"{self.subject} ({shown}) {self.comparator} {threshold}"

    def _measure(self, data: WindowData) -> float | None:
        if self.kind == "error_ratio":
            return data.failures / data.runs
        if self.kind == "status_ratio":
            assert isinstance(self.argument, int)
            return data.status_counts.get(self.argument, 0) / data.runs
        if self.kind == "quantile":
            assert isinstance(self.argument, int)
            return nearest_rank(data.durations, self.argument)
        assert isinstance(self.argument, str)
        return _aggregate(self.function, data.captures.get(self.argument, ()))

    def _format(self, value: float) -> str:
        if self.kind in ("error_ratio", "status_ratio"):
            return f"{value * 100:.4g}%"
        if self.kind == "quantile":
            return f"{value:.4g}s"
        return f"{value:.6g}"


def nearest_rank(durations: Sequence[float], percentile: int) -> float | None:
    """The nearest-rank percentile: the smallest value with at least `percentile`% of the
    values at or below it. Integer arithmetic, so p95 of 20 values is exactly the 19th."""
    if not durations:
        return None
    ordered = sorted(durations)
    rank = -(-percentile * len(ordered) // 100)  # ceil without float error
    return ordered[max(rank, 1) - 1]


def _aggregate(function: str, values: Sequence[float]) -> float | None:
    if not values:
        return None
    if function == "avg":
        return math.fsum(values) / len(values)
    if function == "max":
        return max(values)
    return math.fsum(values)


def parse_rule_expression(text: object) -> RuleExpression:
    """Parse a `when` expression, or raise `RuleSyntaxError` saying what is wrong."""
    if not isinstance(text, str):
        raise RuleSyntaxError(f"expected an expression such as 'error_ratio > 5%', got {text!r}")
    source = text.strip()
    if not source:
        raise RuleSyntaxError(f"empty expression: {_EXAMPLE}")
    found = _COMPARATOR.search(source)
    if found is None:
        return _parse_without_comparator(source)
    subject_text, comparator = source[: found.start()].strip(), found.group()
    value_text = source[found.end() :].strip()
    if not subject_text:
        raise RuleSyntaxError(f"missing subject before '{comparator}': {_EXAMPLE}")
    kind, function, argument = _parse_subject(subject_text)
    if kind == "changed":
        raise RuleSyntaxError(
            f"{function}({argument}) takes no comparator: it fires once when the captured value"
            " differs from the previous run's"
        )
    checked = _as_comparator(comparator)
    if not value_text:
        raise RuleSyntaxError(f"missing value after '{comparator}': {_EXAMPLE}")
    threshold = _parse_threshold(kind, function, argument, value_text)
    return RuleExpression(kind, function, argument, checked, threshold, source)


def _parse_without_comparator(source: str) -> RuleExpression:
    """`changed(CAPTURE)`, or an expression whose comparator is missing: say which."""
    match = _SUBJECT.match(source)
    if match is None:
        raise RuleSyntaxError(f"cannot read {source!r}: {_SUBJECTS_HINT}")
    subject, rest = match.group().strip(), source[match.end() :].strip()
    kind, function, argument = _parse_subject(subject)  # an unknown subject is named first
    # Quoted with repr: what was written may hold a line break, and a message is one line.
    if rest:
        raise RuleSyntaxError(
            f"missing comparator between {subject!r} and {rest!r}: {_COMPARATORS_HINT}"
        )
    if kind != "changed":
        raise RuleSyntaxError(
            f"missing comparator after {subject!r}: {_COMPARATORS_HINT}, {_EXAMPLE}"
        )
    return RuleExpression(kind, function, argument, None, None, source)


def _parse_subject(text: str) -> tuple[RuleKind, str, int | str | None]:
    match = _SUBJECT.fullmatch(text)
    if match is None:
        raise RuleSyntaxError(f"cannot read {text!r}: {_SUBJECTS_HINT}")
    name, argument = match.group("name"), match.group("argument")
    quantile = _QUANTILE_NAME.fullmatch(name)
    if name == "error_ratio" or quantile:
        if argument is not None:
            raise RuleSyntaxError(f"{name} takes no argument: write '{name} > ...'")
        if name == "error_ratio":
            return "error_ratio", name, None
        assert quantile is not None
        percentile = int(quantile.group(1))
        if percentile not in QUANTILES or quantile.group(1) != str(percentile):
            raise RuleSyntaxError(f"unknown quantile '{name}': use p50, p90, p95 or p99")
        return "quantile", name, percentile
    if name == "status_ratio" or name in _AGGREGATES or name == "changed":
        if argument is None:
            placeholder = "CODE" if name == "status_ratio" else "CAPTURE"
            raise RuleSyntaxError(f"{name} needs an argument: {name}({placeholder})")
        if name == "status_ratio":
            return "status_ratio", name, _parse_status(argument.strip())
        capture = argument.strip()
        if not _CAPTURE_NAME.fullmatch(capture):
            raise RuleSyntaxError(
                f"{name} needs a capture name (letters, digits, '_', '.', ':', '-'),"
                f" got {capture!r}"
            )
        return ("changed" if name == "changed" else "aggregate"), name, capture
    if argument is not None:
        raise RuleSyntaxError(f"unknown function '{name}': {_FUNCTIONS_HINT}")
    raise RuleSyntaxError(f"unknown metric '{name}': {_SUBJECTS_HINT}")


def _parse_status(text: str) -> int:
    code = int(text) if _STATUS_CODE.fullmatch(text) else None
    if code is None or not _MIN_STATUS <= code <= _MAX_STATUS:
        raise RuleSyntaxError(
            f"status_ratio needs an HTTP status code from {_MIN_STATUS} to {_MAX_STATUS},"
            f" got {text!r}"
        )
    return code


def _parse_threshold(kind: RuleKind, function: str, argument: object, text: str) -> float:
    if kind in ("error_ratio", "status_ratio"):
        return _parse_ratio(text)
    if kind == "quantile":
        return _parse_duration(text)
    if not _NUMBER.fullmatch(text):
        raise RuleSyntaxError(
            f"invalid number {text!r} for {function}({argument}): a capture is compared"
            " with a plain number such as 500"
        )
    number = float(text)
    if not math.isfinite(number):
        raise RuleSyntaxError(f"invalid number {text!r}: too large")
    return number


def _parse_ratio(text: str) -> float:
    """`5%` or a fraction `0.05`; a ratio outside [0, 1] can never be met, so it is refused."""
    percent = _PERCENT.fullmatch(text)
    if percent:
        ratio = _exact(percent.group(1)) / 100
    elif _RATIO.fullmatch(text):
        ratio = _exact(text)
    else:
        raise RuleSyntaxError(
            f"invalid percentage {text!r}: expected e.g. '5%' or a fraction such as 0.05"
        )
    if ratio > 1:
        raise RuleSyntaxError(
            f"invalid percentage {text!r}: must lie between 0% and 100%"
            " (a bare number is a fraction: 0.05 means 5%)"
        )
    return float(ratio)


def _parse_duration(text: str) -> float:
    """Seconds from `500ms`, `2s`, `1m30s` or bare seconds, read exactly as the config does."""
    if _RATIO.fullmatch(text):
        return _finite(text, _exact(text))
    position, milliseconds = 0, Fraction(0)
    for part in _DURATION_PART.finditer(text):
        if part.start() != position:
            break
        milliseconds += _exact(part.group(1)) * _DURATION_UNITS_MS[part.group(2)]
        position = part.end()
    if position == 0 or position != len(text):
        raise RuleSyntaxError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d, w), e.g. '2s'"
        )
    return _finite(text, milliseconds / 1000)


def _exact(digits: str) -> Fraction:
    """The decimal `digits` exactly; more digits than Python converts is an error, not a
    ValueError of `int`'s."""
    try:
        return Fraction(digits)
    except ValueError:
        raise RuleSyntaxError(f"invalid number {_shorten(digits)}: too many digits") from None


def _finite(text: str, exact: Fraction) -> float:
    """`exact` as a float; one too large for a float is an error, not an OverflowError."""
    try:
        return float(exact)
    except OverflowError:
        raise RuleSyntaxError(f"invalid duration {_shorten(text)}: too large") from None


def _shorten(text: str) -> str:
    """`text` quoted, cut to a readable length."""
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


def _as_comparator(text: str) -> Comparator:
    for comparator in (">", ">=", "<", "<="):
        if text == comparator:
            return comparator
    raise RuleSyntaxError(f"unsupported comparator '{text}': {_COMPARATORS_HINT}")
