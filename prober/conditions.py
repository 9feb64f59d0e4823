"""The `expect` condition language and `capture` subjects (pure: no I/O).

A condition is `SUBJECT OP VALUE`, `SUBJECT exists` or `SUBJECT not exists`:

    status == 200              latency < 500ms           body contains "ok"
    header.content-type matches "json"                   json.data.items[0].id exists
    json.status in ["ok", "degraded"]                    json.reply != ""

Subjects: `status`, `latency` (this step), `body` (text), `header.NAME`
(case-insensitive), `json.PATH` (RFC 9535 JSONPath `$.PATH`) and `json` (the whole
body). Values are JSON/YAML literals; `latency` takes durations.

Conditions are parsed once, at config load (`parse_condition` raises
`ConditionSyntaxError` naming what is wrong), and evaluated per response as a pure
function of (condition, response). A failed evaluation is data: a `Check` with the
resolved value in its message (`expected status == 200, got 503`) — what a person
reading a failure needs. A value that cannot be read (invalid JSON, a header that is
not a number) fails the condition and says so; it is never read as 0.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jsonpath_rfc9535
import yaml

from prober.units import parse_duration

__all__ = [
    "OPERATORS",
    "Check",
    "Condition",
    "ConditionSyntaxError",
    "Observed",
    "Subject",
    "parse_condition",
    "parse_subject",
]

#: Longest first, so that `not contains` wins over a subject ending in `not`.
OPERATORS = (
    "not contains",
    "not in",
    "contains",
    "matches",
    "==",
    "!=",
    "<=",
    ">=",
    "<",
    ">",
    "in",
)
_ORDERING = {"<", "<=", ">", ">="}
_VALUE_SHOWN_CHARS = 120


class ConditionSyntaxError(ValueError):
    """A condition or subject that cannot be parsed; the message is for the operator."""


class Observed(Protocol):
    """What a condition can look at: one HTTP response and the step's latency."""

    @property
    def status_code(self) -> int: ...

    @property
    def latency(self) -> float: ...

    def text(self) -> str: ...

    def header(self, name: str) -> str | None: ...

    def json(self) -> Any:
        """The parsed body; raises `ValueError` when it is not JSON."""


class _Missing:
    """A subject that has no value in this response, and why."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


@dataclass(frozen=True)
class Subject:
    """What a condition or a capture reads from a response: `status`, `json.a.b`, …"""

    text: str
    kind: str  # status | latency | body | header | json
    name: str = ""  # the header name, lower-cased
    query: jsonpath_rfc9535.JSONPathQuery | None = None

    def extract(self, observed: Observed) -> Any:
        """The subject's value, or a `_Missing` saying why there is none."""
        if self.kind == "status":
            return observed.status_code
        if self.kind == "latency":
            return observed.latency
        if self.kind == "body":
            return observed.text()
        if self.kind == "header":
            value = observed.header(self.name)
            return _Missing(f"no header {self.name!r}") if value is None else value
        try:
            document = observed.json()
        except ValueError:
            return _Missing("body is not valid JSON")
        if self.query is None:
            return document
        nodes = self.query.find(document)
        if not nodes:
            return _Missing("not found")
        if len(nodes) == 1:
            return nodes[0].value
        return [node.value for node in nodes]

    def extract_value(self, observed: Observed) -> tuple[bool, Any]:
        """`(True, value)`, or `(False, why)` when the response has no such value."""
        value = self.extract(observed)
        if isinstance(value, _Missing):
            return False, value.why
        return True, value


def parse_subject(text: str) -> Subject:
    """Parse `status`, `latency`, `body`, `header.NAME`, `json` or `json.PATH`."""
    text = text.strip()
    if text in ("status", "latency", "body", "json"):
        return Subject(text=text, kind=text)
    if text.startswith("header."):
        name = text[len("header.") :]
        if not name or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
            raise ConditionSyntaxError(f"invalid header name in {text!r}")
        return Subject(text=text, kind="header", name=name.lower())
    if text.startswith(("json.", "json[")):
        path = text[len("json") :]
        try:
            query = jsonpath_rfc9535.compile("$" + path)
        except jsonpath_rfc9535.JSONPathError as error:
            raise ConditionSyntaxError(f"invalid JSONPath {'$' + path!r}: {error}") from None
        return Subject(text=text, kind="json", query=query)
    raise ConditionSyntaxError(
        f"unknown subject {text!r}: expected status, latency, body, header.NAME, json or json.PATH"
    )


@dataclass(frozen=True)
class Check:
    """The outcome of one condition against one response."""

    ok: bool
    message: str  # `status (503) == 200`-style detail: the resolved value is always shown


@dataclass(frozen=True)
class Condition:
    """One parsed `expect` line."""

    text: str
    subject: Subject
    operator: str  # one of OPERATORS, or `exists` / `not exists`
    expected: Any = None

    def evaluate(self, observed: Observed) -> Check:
        """Check this condition against a response."""
        actual = self.subject.extract(observed)
        if self.operator == "exists":
            if isinstance(actual, _Missing):
                return self._fail(f"nothing ({actual.why})")
            return Check(True, self.text)
        if self.operator == "not exists":
            if isinstance(actual, _Missing):
                return Check(True, self.text)
            return self._fail(_show(actual, self.subject.kind))
        if isinstance(actual, _Missing):
            return self._fail(f"nothing ({actual.why})")
        try:
            ok = _COMPARE[self.operator](actual, self.expected)
        except _Incomparable as why:
            return self._fail(f"{_show(actual, self.subject.kind)} ({why})")
        if ok:
            return Check(True, self.text)
        return self._fail(_show(actual, self.subject.kind))

    def _fail(self, got: str) -> Check:
        return Check(False, f"expected {self.text}, got {got}")


def parse_condition(text: object) -> Condition:
    """Parse one `expect` line; raises `ConditionSyntaxError` naming the problem."""
    if not isinstance(text, str):
        raise ConditionSyntaxError(
            f"a condition must be a string like 'status == 200', got {text!r}"
        )
    text = " ".join(text.split()) if "\n" in text else text.strip()
    if not text:
        raise ConditionSyntaxError("empty condition")
    subject_text, rest = _split_subject(text)
    subject = parse_subject(subject_text)
    rest = rest.strip()
    if rest in ("exists", "not exists"):
        return Condition(text=text, subject=subject, operator=rest)
    if not rest:
        raise ConditionSyntaxError(f"missing operator after {subject_text!r}")
    operator = next((op for op in OPERATORS if rest == op or rest.startswith(op + " ")), None)
    if operator is None:
        word = rest.split()[0]
        raise ConditionSyntaxError(
            f"unknown operator {word!r}: expected one of {', '.join(OPERATORS)}, exists, not exists"
        )
    value_text = rest[len(operator) :].strip()
    if not value_text:
        raise ConditionSyntaxError(f"missing value after {operator!r}")
    expected = _parse_value(value_text, subject, operator)
    return Condition(text=text, subject=subject, operator=operator, expected=expected)


def _split_subject(text: str) -> tuple[str, str]:
    """Split at the first space outside brackets and quotes (JSONPath filters contain both)."""
    depth, quote = 0, ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == " " and depth == 0:
            return text[:index], text[index + 1 :]
    return text, ""


def _parse_value(value_text: str, subject: Subject, operator: str) -> Any:
    if subject.kind == "latency":
        if operator not in _ORDERING and operator not in ("==", "!="):
            raise ConditionSyntaxError(f"latency takes < <= > >= == !=, not {operator!r}")
        try:
            return parse_duration(value_text)
        except ValueError as error:
            raise ConditionSyntaxError(str(error)) from None
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError:
        raise ConditionSyntaxError(
            f"invalid value {value_text!r}: not a JSON/YAML literal"
        ) from None
    if operator in ("in", "not in") and not isinstance(value, list):
        raise ConditionSyntaxError(
            f"{operator!r} needs a list, e.g. [200, 201], got {value_text!r}"
        )
    if operator == "matches":
        if not isinstance(value, str):
            raise ConditionSyntaxError(
                f"'matches' needs a regular expression string, got {value_text!r}"
            )
        try:
            return re.compile(value)
        except re.error as error:
            raise ConditionSyntaxError(f"invalid regular expression {value!r}: {error}") from None
    if operator in _ORDERING and not _is_number(value):
        raise ConditionSyntaxError(f"{operator!r} needs a number, got {value_text!r}")
    if subject.kind == "status":
        wanted = value if isinstance(value, list) else [value]
        if not all(isinstance(code, int) and not isinstance(code, bool) for code in wanted):
            raise ConditionSyntaxError(f"status is compared with integers, got {value_text!r}")
    return value


class _Incomparable(Exception):
    """The actual value cannot be compared the way the condition asks."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(actual: Any) -> float:
    """Numbers compare as numbers; a header or body text that holds one is read as one."""
    if _is_number(actual):
        return float(actual)
    if isinstance(actual, str):
        try:
            number = float(actual.strip())
        except ValueError:
            raise _Incomparable("not a number") from None
        if math.isfinite(number):
            return number
    raise _Incomparable("not a number")


def _equal(actual: Any, expected: Any) -> bool:
    if _is_number(expected) and isinstance(actual, str):
        return bool(_number(actual) == expected)
    if isinstance(expected, str) and _is_number(actual):
        return str(actual) == expected
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False  # JSON true is not 1
    return bool(actual == expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return (expected if isinstance(expected, str) else json.dumps(expected)) in actual
    if isinstance(actual, list):
        return any(_equal(item, expected) for item in actual)
    if isinstance(actual, dict):
        return expected in actual
    raise _Incomparable("neither text, list nor object")


def _matches(actual: Any, expected: re.Pattern[str]) -> bool:
    text = actual if isinstance(actual, str) else json.dumps(actual)
    return expected.search(text) is not None


_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = {
    "==": _equal,
    "!=": lambda actual, expected: not _equal(actual, expected),
    "<": lambda actual, expected: _number(actual) < expected,
    "<=": lambda actual, expected: _number(actual) <= expected,
    ">": lambda actual, expected: _number(actual) > expected,
    ">=": lambda actual, expected: _number(actual) >= expected,
    "contains": _contains,
    "not contains": lambda actual, expected: not _contains(actual, expected),
    "matches": _matches,
    "in": lambda actual, expected: any(_equal(actual, item) for item in expected),
    "not in": lambda actual, expected: not any(_equal(actual, item) for item in expected),
}


def _show(value: Any, kind: str) -> str:
    """A short rendering of an actual value for a failure message."""
    if kind == "latency":
        return f"{value:.3f}s" if value >= 1 else f"{value * 1000:.1f}ms"
    text = value if kind in ("body", "header") and isinstance(value, str) else None
    if text is not None:
        shown = json.dumps(text)
    else:
        try:
            shown = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            shown = repr(value)
    if len(shown) > _VALUE_SHOWN_CHARS:
        shown = shown[: _VALUE_SHOWN_CHARS - 1] + "…"
    return shown
