"""The `expect` condition language and `capture` subjects (pure: no I/O).

A condition is `SUBJECT OP VALUE`, `SUBJECT exists` or `SUBJECT not exists`:

    status == 200              latency < 500ms           body contains "ok"
    header.content-type matches "json"                   json.data.items[0].id exists
    json.status in ["ok", "degraded"]                    json.reply != ""

Subjects: `status`, `latency` (this step), `body` (text), `header.NAME`
(case-insensitive), `json.PATH` (RFC 9535 JSONPath `$.PATH`) and `json` (the whole
body). A path that asks for every item — a wildcard (`json.items[*].id`), a slice
(`json.items[0:2]`) or several selectors (`json.items[0, 1]`) — always gives a list,
even of one match, so that `contains` means the same however many items the response
holds. Any other path (names, indexes, a filter `[?@.id == 7]` or a descendant search
`json..token`, which look for one node) gives the value when one node matches and the
list of values when several do.

Values are JSON/YAML literals; `latency` takes durations. Only JSON's types are read,
and a YAML reading that cannot mean what was written is refused at load with a hint to
quote the value, never guessed: an unquoted date (`2024-01-01`, which YAML reads as a
date that no JSON value equals; also `!!timestamp` and `!!binary`), and a `#` at the
start of a value or after a space, which YAML reads as a comment
(`json.color == #fff` would silently mean `== null`). `!!set`, `!!omap` and `!!pairs`
read as the plain mapping or list they are written as.

Equality is JSON's: `true` is not `1` at any depth. Text and numbers meet only through
the text's spelling (`header.x-count == 42`); text that is not a number never equals
one, so `!=`, `in`, `not in` and `contains` simply compare, and only the ordering
operators (and `==`, to explain a failure) say "not a number".

Conditions are parsed once, at config load (`parse_condition` raises
`ConditionSyntaxError` naming what is wrong), and evaluated per response as a pure
function of (condition, response) — the one impurity being that a shown value is
masked (`prober.redaction`) before it is cut to `_VALUE_SHOWN_CHARS`, so that no secret
straddles the cut. A failed evaluation is data: a `Check` with the
resolved value in its message (`expected status == 200, got 503`) — what a person
reading a failure needs. A value that cannot be read (invalid JSON, a header that is
not a number) fails the condition and says so; it is never read as 0 — nor as absent:
`json.x not exists` fails on a body that is not JSON. `evaluate` never raises.
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
from jsonpath_rfc9535.selectors import SliceSelector, WildcardSelector

from prober.redaction import redact
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
#: What reading a value can raise besides the reader's own error type: PyYAML's
#: constructors, `re.compile` and the JSONPath compiler let these escape for some inputs.
_UNREADABLE = (ValueError, TypeError, AttributeError, OverflowError, RecursionError)
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


class _Unreadable(_Missing):
    """The response cannot be read as the subject needs (not JSON): nothing can be said
    about the value, so neither `exists` nor `not exists` holds."""

    __slots__ = ()


@dataclass(frozen=True)
class Subject:
    """What a condition or a capture reads from a response: `status`, `json.a.b`, …"""

    text: str
    kind: str  # status | latency | body | header | json
    name: str = ""  # the header name, lower-cased
    query: jsonpath_rfc9535.JSONPathQuery | None = None
    every_item: bool = False  # the query asks for every item: its value is always a list

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
            return _Unreadable("body is not valid JSON")
        if self.query is None:
            return document
        try:
            nodes = self.query.find(document)
        except jsonpath_rfc9535.JSONPathError as error:  # e.g. `..` through a very deep body
            return _Unreadable(f"body cannot be searched: {error}")
        if not nodes:
            return _Missing("not found")
        if len(nodes) == 1 and not self.every_item:
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
        except (jsonpath_rfc9535.JSONPathError, *_UNREADABLE) as error:
            # The library's own error, or e.g. OverflowError for a literal like 1e999.
            raise ConditionSyntaxError(f"invalid JSONPath {'$' + path!r}: {error}") from None
        return Subject(text=text, kind="json", query=query, every_item=_asks_for_every_item(query))
    raise ConditionSyntaxError(
        f"unknown subject {text!r}: expected status, latency, body, header.NAME, json or json.PATH"
    )


def _asks_for_every_item(query: jsonpath_rfc9535.JSONPathQuery) -> bool:
    """A wildcard, a slice or several selectors in one segment: the path names a list of
    nodes, not one, so its value must stay a list when only one node happens to match
    (else `items[*].name contains "an"` would turn into a substring test)."""
    return any(
        len(segment.selectors) > 1 or isinstance(selector, WildcardSelector | SliceSelector)
        for segment in query.segments
        for selector in segment.selectors
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
        """Check this condition against a response; never raises (a failing target is data)."""
        try:
            return self._evaluate(observed)
        except Exception as error:  # a response shape no rule foresaw: still a result
            return self._fail(f"a value that cannot be compared ({type(error).__name__}: {error})")

    def _evaluate(self, observed: Observed) -> Check:
        actual = self.subject.extract(observed)
        if self.operator == "exists":
            if isinstance(actual, _Missing):
                return self._fail(f"nothing ({actual.why})")
            return Check(True, self.text)
        if self.operator == "not exists":
            if isinstance(actual, _Unreadable):
                return self._fail(f"nothing ({actual.why})")  # unreadable is not absent
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
    value = _load_literal(value_text)
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
        except (re.error, *_UNREADABLE) as error:  # OverflowError: a{99999999999}
            raise ConditionSyntaxError(f"invalid regular expression {value!r}: {error}") from None
    if operator in _ORDERING and not _is_number(value):
        raise ConditionSyntaxError(f"{operator!r} needs a number, got {value_text!r}")
    if subject.kind == "status":
        wanted = value if isinstance(value, list) else [value]
        if not all(isinstance(code, int) and not isinstance(code, bool) for code in wanted):
            raise ConditionSyntaxError(f"status is compared with integers, got {value_text!r}")
    return value


_YAML = "tag:yaml.org,2002:"


class _LiteralLoader(yaml.SafeLoader):
    """SafeLoader reading JSON's types only: no dates, sets, ordered maps or bytes; JSON's
    numbers (`1e3` is a number, where YAML 1.1 reads text); no aliases (`*a`), which
    would let a one-line value expand exponentially when it is shown or compared."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) and event.anchor in self.anchors:
            raise _NotJson("a YAML alias (*name) is not a JSON value")  # undefined: YAML says
        return super().compose_node(parent, index)


class _NotJson(yaml.YAMLError):
    """YAML reads the value as a type JSON lacks, so no response could ever equal it."""


_NOT_JSON_TYPES = {_YAML + "timestamp": "a date", _YAML + "binary": "bytes"}


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise _NotJson(f"YAML reads it as {_NOT_JSON_TYPES[node.tag]}, which JSON has no type for")


def _construct_plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """A set or ordered map: read as the plain mapping or list it is written as."""
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    raise yaml.constructor.ConstructorError(
        None, None, f"{node.tag} needs a mapping or a list", node.start_mark
    )


#: A JSON number with an exponent and no dot (`1e3`, `-2E-5`): YAML 1.1 reads it as text.
_JSON_EXPONENT_NUMBER = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?[eE][-+]?[0-9]+$")
_LiteralLoader.add_implicit_resolver(_YAML + "float", _JSON_EXPONENT_NUMBER, list("-0123456789"))
_LiteralLoader.add_constructor(_YAML + "timestamp", _refuse_tag)
_LiteralLoader.add_constructor(_YAML + "binary", _refuse_tag)
_LiteralLoader.add_constructor(_YAML + "set", _construct_plain)
_LiteralLoader.add_constructor(_YAML + "omap", _construct_plain)
_LiteralLoader.add_constructor(_YAML + "pairs", _construct_plain)


def _load_literal(value_text: str) -> Any:
    """The JSON/YAML literal `value_text`; refuses what is not one, or is only partly one."""
    try:
        loader = _LiteralLoader(value_text)  # refuses unprintable characters already
        try:
            node = loader.get_single_node()
            value = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except _NotJson as error:
        raise ConditionSyntaxError(
            f"invalid value {value_text!r}: {error}; quote it to compare text"
        ) from None
    except (yaml.YAMLError, *_UNREADABLE):
        raise ConditionSyntaxError(
            f"invalid value {value_text!r}: not a JSON/YAML literal"
        ) from None
    if _ignores_text(node, value_text):
        hint = ""
        if "#" in value_text:
            quoted = json.dumps(value_text)
            hint = f"; YAML reads '#' here as a comment: quote text holding one, e.g. {quoted}"
        raise ConditionSyntaxError(f"invalid value {value_text!r}: not a JSON/YAML literal{hint}")
    if not _finite(value):  # `.nan`, `.inf`, or `1e999`, too large for a float
        raise ConditionSyntaxError(
            f"invalid value {value_text!r}: not a finite number (JSON has no NaN or infinity)"
        )
    return value


def _finite(value: Any) -> bool:
    """Whether every number in a literal (at any depth) is finite."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
    return True


def _ignores_text(node: yaml.Node | None, value_text: str) -> bool:
    """Whether YAML read less than the whole text: a `#` comment, after a space or at the
    start (`#fff` is no value at all), or a document marker (`--- # x`), leaving null."""
    if node is None or node.end_mark.index < len(value_text):
        return True
    empty = isinstance(node, yaml.ScalarNode) and node.style is None and node.value == ""
    return empty and not value_text.startswith("!")  # `!!str` and `!!null` mean what they say


class _Incomparable(Exception):
    """The actual value cannot be compared the way the condition asks."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_number(text: str) -> float | None:
    """The finite number a header or body text holds, or None (never 0 for "abc")."""
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _number(actual: Any) -> int | float:
    """Numbers compare as numbers; a header or body text that holds one is read as one."""
    if _is_number(actual):
        number: int | float = actual  # an int stays one: a huge JSON integer has no float
        return number
    text_number = _text_number(actual) if isinstance(actual, str) else None
    if text_number is None:
        raise _Incomparable("not a number")
    return text_number


def _equal(actual: Any, expected: Any) -> bool:
    """JSON equality, at every depth: true is not 1; text equals a number it spells."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and bool(actual == expected)
    if _is_number(expected) and isinstance(actual, str):
        return bool(_text_number(actual) == expected)
    if isinstance(expected, str) and _is_number(actual):
        return str(actual) == expected
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(map(_equal, actual, expected))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            _equal(actual[key], expected[key]) for key in actual
        )
    return bool(actual == expected)


def _equal_explained(actual: Any, expected: Any) -> bool:
    """`==`: `_equal`, but text that is no number is called so in the failure message."""
    if _is_number(expected) and isinstance(actual, str) and _text_number(actual) is None:
        raise _Incomparable("not a number")
    return _equal(actual, expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return (expected if isinstance(expected, str) else json.dumps(expected)) in actual
    if isinstance(actual, list):
        return any(_equal(item, expected) for item in actual)
    if isinstance(actual, dict):
        return any(_equal(key, expected) for key in actual)  # JSON keys are text
    raise _Incomparable("neither text, list nor object")


def _matches(actual: Any, expected: re.Pattern[str]) -> bool:
    text = actual if isinstance(actual, str) else json.dumps(actual)
    return expected.search(text) is not None


_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = {
    "==": _equal_explained,
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
    shown = redact(shown)  # before the cut: a secret straddling it would keep its start
    if len(shown) > _VALUE_SHOWN_CHARS:
        shown = shown[: _VALUE_SHOWN_CHARS - 1] + "…"
    return shown
