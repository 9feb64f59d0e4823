"""The `expect` condition language (`prober.conditions`): a long table of named cases.

Every row evaluates one condition against one fake response and pins the whole `Check`:
passing rows carry the condition text, failing rows the message a person reads, with the
resolved value inline (`expected status == 200, got 503`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prober.conditions import (
    OPERATORS,
    Check,
    Condition,
    ConditionSyntaxError,
    parse_condition,
    parse_subject,
)
from prober.redaction import register_secret

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run: a property either holds or it does not
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@dataclass(frozen=True)
class FakeResponse:
    """The `Observed` protocol: a response and the step's latency, nothing else."""

    status_code: int = 200
    latency: float = 0.25
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        return self.body

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)  # json.JSONDecodeError is a ValueError


def response(
    status: int = 200,
    latency: float = 0.25,
    body: str = "",
    json_body: object = None,
    headers: dict[str, str] | None = None,
) -> FakeResponse:
    """A fake response; `json_body` is serialised into the body."""
    text = body if json_body is None else json.dumps(json_body)
    return FakeResponse(status, latency, text, tuple((headers or {}).items()))


DOCUMENT = {
    "status": "ok",
    "reply": "hello world",
    "count": 3,
    "one": 1,
    "ratio": 0.5,
    "enabled": True,
    "nothing": None,
    "tags": ["x", "y"],
    "flags": [True],
    "version": "1.4.2",
    "a b": 1,
    "data": {
        "items": [
            {"id": 7, "price": 5, "name": "a"},
            {"id": 8, "price": 15, "name": "b"},
            {"id": 9, "price": 25, "name": "c"},
        ],
        "session": {"accessToken": "tok"},
    },
}
HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "X-Count": "42",
    "X-Text": "abc",
    "X-Nan": "NaN",
    "X-Env": "prod",
}
OK = response(json_body=DOCUMENT, headers=HEADERS)
HTML = response(status=502, body="<html><body>Bad gateway</body></html>")


class Case(NamedTuple):
    name: str
    condition: str
    response: FakeResponse
    failure: str | None  # None: the condition passes; otherwise the whole failure message


CASES = [
    # status
    Case("status-eq-pass", "status == 200", OK, None),
    Case("status-eq-fail", "status == 200", response(503), "expected status == 200, got 503"),
    Case("status-ne-pass", "status != 500", OK, None),
    Case("status-ne-fail", "status != 200", OK, "expected status != 200, got 200"),
    Case("status-lt-pass", "status < 300", OK, None),
    Case("status-lt-fail", "status < 300", response(503), "expected status < 300, got 503"),
    Case("status-le-pass-boundary", "status <= 200", OK, None),
    Case("status-le-fail", "status <= 199", OK, "expected status <= 199, got 200"),
    Case("status-gt-pass", "status > 199", OK, None),
    Case("status-gt-fail-boundary", "status > 200", OK, "expected status > 200, got 200"),
    Case("status-ge-pass-boundary", "status >= 200", OK, None),
    Case("status-ge-fail", "status >= 201", OK, "expected status >= 201, got 200"),
    Case("status-in-pass", "status in [200, 201]", response(201), None),
    Case(
        "status-in-fail",
        "status in [200, 201]",
        response(404),
        "expected status in [200, 201], got 404",
    ),
    Case("status-not-in-pass", "status not in [500, 503]", OK, None),
    Case(
        "status-not-in-fail",
        "status not in [500, 503]",
        response(503),
        "expected status not in [500, 503], got 503",
    ),
    Case("status-matches-pass", "status matches '^2'", OK, None),
    Case(
        "status-matches-fail",
        "status matches '^2'",
        response(503),
        "expected status matches '^2', got 503",
    ),
    Case("status-exists-pass", "status exists", OK, None),
    Case("status-not-exists-fail", "status not exists", OK, "expected status not exists, got 200"),
    # latency: durations in the condition, milliseconds below 1s and seconds above in messages
    Case("latency-lt-ms-pass", "latency < 500ms", OK, None),
    Case(
        "latency-lt-ms-fail",
        "latency < 500ms",
        response(latency=0.75),
        "expected latency < 500ms, got 750.0ms",
    ),
    Case("latency-lt-seconds-pass", "latency < 2s", response(latency=1.5), None),
    Case(
        "latency-lt-seconds-fail",
        "latency < 2s",
        response(latency=2.5),
        "expected latency < 2s, got 2.500s",
    ),
    Case("latency-le-pass-boundary", "latency <= 500ms", response(latency=0.5), None),
    Case("latency-le-fail", "latency <= 100ms", OK, "expected latency <= 100ms, got 250.0ms"),
    Case("latency-gt-pass", "latency > 100ms", OK, None),
    Case("latency-gt-fail", "latency > 1s", OK, "expected latency > 1s, got 250.0ms"),
    Case("latency-ge-pass", "latency >= 250ms", OK, None),
    Case(
        "latency-ge-fail",
        "latency >= 1m",
        response(latency=59.0),
        "expected latency >= 1m, got 59.000s",
    ),
    Case("latency-eq-pass", "latency == 500ms", response(latency=0.5), None),
    Case(
        "latency-ne-fail",
        "latency != 500ms",
        response(latency=0.5),
        "expected latency != 500ms, got 500.0ms",
    ),
    Case("latency-bare-number-is-seconds", "latency < 1", response(latency=0.9), None),
    Case("latency-compound-duration", "latency < 1m30s", response(latency=89.0), None),
    Case("latency-exists", "latency exists", OK, None),
    # body: the text, shown quoted
    Case("body-eq-pass", 'body == "ok"', response(body="ok"), None),
    Case(
        "body-eq-fail", 'body == "ok"', response(body="nope"), 'expected body == "ok", got "nope"'
    ),
    Case("body-ne-pass", 'body != ""', response(body="x"), None),
    Case("body-ne-fail-empty", 'body != ""', response(body=""), 'expected body != "", got ""'),
    Case("body-contains-pass", 'body contains "world"', response(body="hello world"), None),
    Case(
        "body-contains-fail",
        'body contains "ok"',
        response(body="hello world"),
        'expected body contains "ok", got "hello world"',
    ),
    Case("body-not-contains-pass", 'body not contains "error"', response(body="fine"), None),
    Case(
        "body-not-contains-fail",
        'body not contains "error"',
        response(body="an error"),
        'expected body not contains "error", got "an error"',
    ),
    Case(
        "body-matches-pass", r"body matches '^hello\s+world$'", response(body="hello   world"), None
    ),
    Case(
        "body-matches-fail",
        r"body matches '^\d+$'",
        response(body="12a"),
        "expected body matches '^\\d+$', got \"12a\"",
    ),
    Case(
        "body-matches-searches-anywhere", "body matches 'wor'", response(body="hello world"), None
    ),
    Case("body-contains-number-as-text", "body contains 42", response(body="answer: 42"), None),
    Case("body-contains-true-as-text", "body contains true", response(body='{"ok": true}'), None),
    Case("body-number-text-eq", "body == 42", response(body=" 42\n"), None),
    Case(
        "body-number-text-gt-fail",
        "body > 100",
        response(body="42"),
        'expected body > 100, got "42"',
    ),
    Case(
        "body-not-a-number-is-not-zero",
        "body == 0",
        response(body="abc"),
        'expected body == 0, got "abc" (not a number)',
    ),
    Case(
        "body-ordering-not-a-number",
        "body < 1",
        response(body=""),
        'expected body < 1, got "" (not a number)',
    ),
    Case("body-exists-even-when-empty", "body exists", response(body=""), None),
    Case(
        "body-long-value-truncated",
        'body == "b"',
        response(body="a" * 300),
        'expected body == "b", got "' + "a" * 118 + "…",
    ),
    # header.NAME: case-insensitive names, text that may hold a number
    Case("header-eq-pass", 'header.x-env == "prod"', OK, None),
    Case("header-name-case-insensitive", 'header.X-ENV == "prod"', OK, None),
    Case(
        "header-eq-fail",
        'header.x-env == "staging"',
        OK,
        'expected header.x-env == "staging", got "prod"',
    ),
    Case("header-ne-pass", 'header.x-env != "staging"', OK, None),
    Case(
        "header-ne-fail",
        'header.x-env != "prod"',
        OK,
        'expected header.x-env != "prod", got "prod"',
    ),
    Case("header-contains-pass", 'header.content-type contains "json"', OK, None),
    Case(
        "header-contains-fail",
        'header.content-type contains "html"',
        OK,
        'expected header.content-type contains "html", got "application/json; charset=utf-8"',
    ),
    Case("header-not-contains-pass", 'header.content-type not contains "html"', OK, None),
    Case(
        "header-not-contains-fail",
        'header.content-type not contains "json"',
        OK,
        'expected header.content-type not contains "json", got "application/json; charset=utf-8"',
    ),
    Case(
        "header-matches-pass", "header.Content-Type matches '^application/(.+\\+)?json'", OK, None
    ),
    Case(
        "header-matches-fail",
        "header.content-type matches '^text/'",
        OK,
        "expected header.content-type matches '^text/', got \"application/json; charset=utf-8\"",
    ),
    Case("header-in-pass", 'header.x-env in ["prod", "staging"]', OK, None),
    Case(
        "header-in-fail",
        'header.x-env in ["dev"]',
        OK,
        'expected header.x-env in ["dev"], got "prod"',
    ),
    Case("header-not-in-pass", 'header.x-env not in ["dev"]', OK, None),
    Case(
        "header-not-in-fail",
        'header.x-env not in ["prod"]',
        OK,
        'expected header.x-env not in ["prod"], got "prod"',
    ),
    Case("header-number-text-eq", "header.x-count == 42", OK, None),
    Case("header-number-text-eq-float", "header.x-count == 42.0", OK, None),
    Case("header-number-text-eq-string", 'header.x-count == "42"', OK, None),
    Case("header-number-text-lt", "header.x-count < 100", OK, None),
    Case("header-number-text-ge-float", "header.x-count >= 41.5", OK, None),
    Case(
        "header-number-text-gt-fail",
        "header.x-count > 100",
        OK,
        'expected header.x-count > 100, got "42"',
    ),
    Case("header-number-text-in", "header.x-count in [41, 42]", OK, None),
    Case(
        "header-not-a-number-ordering",
        "header.x-text > 1",
        OK,
        'expected header.x-text > 1, got "abc" (not a number)',
    ),
    Case(
        "header-not-a-number-is-not-zero",
        "header.x-text == 0",
        OK,
        'expected header.x-text == 0, got "abc" (not a number)',
    ),
    Case(
        "header-nan-is-not-a-number",
        "header.x-nan < 1",
        OK,
        'expected header.x-nan < 1, got "NaN" (not a number)',
    ),
    Case("header-exists-pass", "header.content-type exists", OK, None),
    Case(
        "header-missing-exists-fail",
        "header.x-missing exists",
        OK,
        "expected header.x-missing exists, got nothing (no header 'x-missing')",
    ),
    Case(
        "header-missing-eq-fail",
        "header.X-Missing == 1",
        OK,
        "expected header.X-Missing == 1, got nothing (no header 'x-missing')",
    ),
    Case(
        "header-missing-ordering-fail",
        "header.x-missing < 1",
        OK,
        "expected header.x-missing < 1, got nothing (no header 'x-missing')",
    ),
    Case("header-missing-not-exists-pass", "header.x-missing not exists", OK, None),
    Case(
        "header-present-not-exists-fail",
        "header.x-env not exists",
        OK,
        'expected header.x-env not exists, got "prod"',
    ),
    # json.PATH (RFC 9535), including arrays and filters
    Case("json-eq-string-pass", 'json.status == "ok"', OK, None),
    Case(
        "json-eq-string-fail",
        'json.status == "ok"',
        response(json_body={"status": "degraded"}),
        'expected json.status == "ok", got "degraded"',
    ),
    Case("json-eq-unquoted-string", "json.status == ok", OK, None),
    Case("json-array-index", "json.data.items[0].id == 7", OK, None),
    Case(
        "json-array-index-fail",
        "json.data.items[1].id == 7",
        OK,
        "expected json.data.items[1].id == 7, got 8",
    ),
    Case("json-array-negative-index", "json.data.items[-1].id == 9", OK, None),
    Case(
        "json-array-out-of-range",
        "json.data.items[5].id exists",
        OK,
        "expected json.data.items[5].id exists, got nothing (not found)",
    ),
    Case("json-bracket-root", "json[0] == 1", response(json_body=[1, 2]), None),
    Case("json-bracket-quoted-name-with-space", 'json["a b"] == 1', OK, None),
    Case("json-descendant", 'json..accessToken == "tok"', OK, None),
    Case(
        "json-filter-with-spaces-single-node",
        'json.data.items[?@.price > 20].name == "c"',
        OK,
        None,
    ),
    Case(
        "json-filter-with-spaces-many-nodes",
        'json.data.items[?@.price > 10].name == ["b", "c"]',
        OK,
        None,
    ),
    Case("json-filter-contains", 'json.data.items[?@.price > 10].name contains "c"', OK, None),
    Case(
        "json-filter-not-contains-fail",
        'json.data.items[?@.price > 10].name not contains "b"',
        OK,
        'expected json.data.items[?@.price > 10].name not contains "b", got ["b","c"]',
    ),
    Case("json-filter-spaces-in-string", 'json.data.items[?@.name == "a"].id == 7', OK, None),
    Case(
        "json-filter-no-match-exists-fail",
        "json.data.items[?@.price > 100].name exists",
        OK,
        "expected json.data.items[?@.price > 100].name exists, got nothing (not found)",
    ),
    Case(
        "json-filter-no-match-not-exists",
        "json.data.items[?@.price > 100].name not exists",
        OK,
        None,
    ),
    Case("json-wildcard-many-nodes", "json.data.items[*].id == [7, 8, 9]", OK, None),
    Case("json-ne-empty-pass", 'json.reply != ""', OK, None),
    Case(
        "json-ne-empty-fail",
        'json.reply != ""',
        response(json_body={"reply": ""}),
        'expected json.reply != "", got ""',
    ),
    Case("json-lt-pass", "json.count < 5", OK, None),
    Case("json-gt-fail", "json.count > 5", OK, "expected json.count > 5, got 3"),
    Case("json-le-float-boundary", "json.ratio <= 0.5", OK, None),
    Case("json-ge-fail", "json.ratio >= 0.75", OK, "expected json.ratio >= 0.75, got 0.5"),
    Case(
        "json-ordering-bool-not-a-number",
        "json.enabled > 0",
        OK,
        "expected json.enabled > 0, got true (not a number)",
    ),
    Case(
        "json-ordering-null-not-a-number",
        "json.nothing < 1",
        OK,
        "expected json.nothing < 1, got null (not a number)",
    ),
    Case(
        "json-ordering-list-not-a-number",
        "json.tags < 1",
        OK,
        'expected json.tags < 1, got ["x","y"] (not a number)',
    ),
    Case("json-list-contains-pass", 'json.tags contains "x"', OK, None),
    Case(
        "json-list-contains-fail",
        'json.tags contains "z"',
        OK,
        'expected json.tags contains "z", got ["x","y"]',
    ),
    Case("json-list-not-contains-pass", 'json.tags not contains "z"', OK, None),
    Case(
        "json-list-not-contains-fail",
        'json.tags not contains "x"',
        OK,
        'expected json.tags not contains "x", got ["x","y"]',
    ),
    Case("json-string-contains", 'json.reply contains "world"', OK, None),
    Case("json-object-contains-key", 'json.data contains "session"', OK, None),
    Case(
        "json-object-contains-missing-key",
        'json.data.session contains "refreshToken"',
        OK,
        'expected json.data.session contains "refreshToken", got {"accessToken":"tok"}',
    ),
    Case(
        "json-number-contains-fails",
        "json.count contains 3",
        OK,
        "expected json.count contains 3, got 3 (neither text, list nor object)",
    ),
    Case("json-in-pass", 'json.status in ["ok", "degraded"]', OK, None),
    Case(
        "json-in-fail",
        'json.status in ["degraded", "down"]',
        OK,
        'expected json.status in ["degraded", "down"], got "ok"',
    ),
    Case("json-not-in-pass", 'json.status not in ["down"]', OK, None),
    Case(
        "json-not-in-fail",
        'json.status not in ["ok"]',
        OK,
        'expected json.status not in ["ok"], got "ok"',
    ),
    Case("json-matches-string", r"json.version matches '^1\.4\.'", OK, None),
    Case("json-matches-number-as-json", "json.count matches '^3$'", OK, None),
    Case(
        "json-matches-fail",
        "json.version matches '^2'",
        OK,
        "expected json.version matches '^2', got \"1.4.2\"",
    ),
    Case("json-eq-null", "json.nothing == null", OK, None),
    Case("json-null-exists", "json.nothing exists", OK, None),
    Case(
        "json-missing-exists-fail",
        "json.absent exists",
        OK,
        "expected json.absent exists, got nothing (not found)",
    ),
    Case(
        "json-missing-eq-fail",
        "json.absent == 1",
        OK,
        "expected json.absent == 1, got nothing (not found)",
    ),
    Case("json-missing-not-exists-pass", "json.absent not exists", OK, None),
    Case(
        "json-present-not-exists-fail",
        "json.status not exists",
        OK,
        'expected json.status not exists, got "ok"',
    ),
    Case(
        "json-path-into-scalar-not-found",
        "json.count.value exists",
        OK,
        "expected json.count.value exists, got nothing (not found)",
    ),
    # JSON true is not 1, and numbers and text meet only through their spelling
    Case("json-true-eq-true", "json.enabled == true", OK, None),
    Case("json-true-is-not-1", "json.enabled == 1", OK, "expected json.enabled == 1, got true"),
    Case("json-1-is-not-true", "json.one == true", OK, "expected json.one == true, got 1"),
    Case("json-true-ne-1", "json.enabled != 1", OK, None),
    Case(
        "json-true-not-in-[1]", "json.enabled in [1]", OK, "expected json.enabled in [1], got true"
    ),
    Case(
        "json-[true]-does-not-contain-1",
        "json.flags contains 1",
        OK,
        "expected json.flags contains 1, got [true]",
    ),
    Case(
        "json-true-is-not-string-true",
        'json.enabled == "true"',
        OK,
        'expected json.enabled == "true", got true',
    ),
    Case("json-int-equals-float", "json.one == 1.0", OK, None),
    Case("json-number-equals-its-spelling", 'json.count == "3"', OK, None),
    # json: the whole body
    Case("json-whole-eq-object", 'json == {"a": 1}', response(json_body={"a": 1}), None),
    Case(
        "json-whole-eq-fail",
        'json == {"a": 2}',
        response(json_body={"a": 1}),
        'expected json == {"a": 2}, got {"a":1}',
    ),
    Case("json-whole-contains-key", 'json contains "a"', response(json_body={"a": 1}), None),
    Case("json-whole-array-contains", "json contains 2", response(json_body=[1, 2]), None),
    Case("json-whole-exists", "json exists", OK, None),
    Case("json-whole-scalar", "json == 5", response(body="5"), None),
    # a body that is not JSON fails every json condition and says so; never 0, never a crash
    Case(
        "json-invalid-exists",
        "json exists",
        HTML,
        "expected json exists, got nothing (body is not valid JSON)",
    ),
    Case(
        "json-invalid-path-eq",
        "json.count == 0",
        HTML,
        "expected json.count == 0, got nothing (body is not valid JSON)",
    ),
    Case(
        "json-invalid-path-lt",
        "json.count < 1",
        HTML,
        "expected json.count < 1, got nothing (body is not valid JSON)",
    ),
    Case(
        "json-invalid-path-exists",
        "json.count exists",
        HTML,
        "expected json.count exists, got nothing (body is not valid JSON)",
    ),
    Case(
        "json-invalid-ne",
        'json.reply != ""',
        HTML,
        'expected json.reply != "", got nothing (body is not valid JSON)',
    ),
    Case(
        "json-empty-body",
        'json.status == "ok"',
        response(body=""),
        'expected json.status == "ok", got nothing (body is not valid JSON)',
    ),
    # the text of the condition as written
    Case(
        "condition-text-stripped",
        "  status == 200  ",
        response(503),
        "expected status == 200, got 503",
    ),
    Case(
        "condition-extra-spaces-kept",
        "status  ==  200",
        response(503),
        "expected status  ==  200, got 503",
    ),
    Case(
        "condition-multiline-folded",
        "status\n  == 200",
        response(503),
        "expected status == 200, got 503",
    ),
]


@pytest.mark.parametrize(
    ("condition", "observed", "failure"), [c[1:] for c in CASES], ids=[c.name for c in CASES]
)
def test_evaluate(condition: str, observed: FakeResponse, failure: str | None) -> None:
    """A condition evaluates to a pass, or to a failure that shows the resolved value."""
    expected = Check(True, condition.strip()) if failure is None else Check(False, failure)
    assert parse_condition(condition).evaluate(observed) == expected


def test_every_operator_has_passing_and_failing_rows() -> None:
    """The table exercises every operator, and exists/not exists, both ways."""
    seen: dict[str, set[bool]] = {}
    for case in CASES:
        operator = parse_condition(case.condition).operator
        seen.setdefault(operator, set()).add(case.failure is None)
    assert {op: seen.get(op) for op in (*OPERATORS, "exists", "not exists")} == {
        op: {True, False} for op in (*OPERATORS, "exists", "not exists")
    }


PARSED = [
    ("status", "status == 200", "status", "==", 200),
    ("latency-ms", "latency < 500ms", "latency", "<", 0.5),
    ("latency-seconds", "latency <= 2s", "latency", "<=", 2.0),
    ("latency-compound", "latency > 1m30s", "latency", ">", 90.0),
    ("body", 'body contains "ok"', "body", "contains", "ok"),
    ("header", "header.X-Count >= 1", "header", ">=", 1),
    ("json-path", "json.a.b != null", "json", "!=", None),
    ("json-whole", "json == []", "json", "==", []),
    ("list", 'json.s in ["ok", 1, true]', "json", "in", ["ok", 1, True]),
    ("not-in", "status not in [500]", "status", "not in", [500]),
    ("not-contains", 'body not contains "x"', "body", "not contains", "x"),
    ("exists", "json.a exists", "json", "exists", None),
    ("not-exists", "header.x not exists", "header", "not exists", None),
    ("float", "json.r > 0.5", "json", ">", 0.5),
    ("negative", "json.r > -1", "json", ">", -1),
]


@pytest.mark.parametrize(
    ("text", "kind", "operator", "expected"), [p[1:] for p in PARSED], ids=[p[0] for p in PARSED]
)
def test_parse_condition(text: str, kind: str, operator: str, expected: object) -> None:
    """Parsing yields the subject kind, the operator and the expected value."""
    condition = parse_condition(text)
    assert (condition.text, condition.subject.kind, condition.operator, condition.expected) == (
        text,
        kind,
        operator,
        expected,
    )


def test_parse_condition_compiles_regex() -> None:
    """`matches` compiles its regular expression at parse time."""
    assert parse_condition(r"body matches '^\d+$'").expected == re.compile(r"^\d+$")


SUBJECTS = [
    ("status", "status", "status", ""),
    ("latency", "latency", "latency", ""),
    ("body", "body", "body", ""),
    ("json-whole", "json", "json", ""),
    ("json-path", "json.data.items[0].id", "json", ""),
    ("json-bracket", "json['a b']", "json", ""),
    ("header-lowercased", "header.Content-Type", "header", "content-type"),
    ("header-token-chars", "header.X-Request_ID.v2", "header", "x-request_id.v2"),
    ("surrounding-space", "  status  ", "status", ""),
]


@pytest.mark.parametrize(
    ("text", "kind", "name"), [s[1:] for s in SUBJECTS], ids=[s[0] for s in SUBJECTS]
)
def test_parse_subject(text: str, kind: str, name: str) -> None:
    """Subjects parse to their kind; header names are lower-cased."""
    subject = parse_subject(text)
    assert (subject.kind, subject.name) == (kind, name)


def test_subject_extract_value() -> None:
    """`extract_value` gives (True, value) or (False, why) for captures."""
    assert [
        parse_subject("json.data.session.accessToken").extract_value(OK),
        parse_subject("json.absent").extract_value(OK),
        parse_subject("header.x-missing").extract_value(OK),
        parse_subject("json.count").extract_value(HTML),
        parse_subject("status").extract_value(HTML),
    ] == [
        (True, "tok"),
        (False, "not found"),
        (False, "no header 'x-missing'"),
        (False, "body is not valid JSON"),
        (True, 502),
    ]


SYNTAX_ERRORS: list[tuple[str, object, str]] = [
    ("unknown-operator", "status =~ 200", "unknown operator '=~'"),
    ("unknown-operator-word", "status is 200", "unknown operator 'is'"),
    ("operator-glued-to-value", "status ==200", "unknown operator '==200'"),
    ("missing-operator", "status", "missing operator after 'status'"),
    ("missing-value", "status ==", "missing value after '=='"),
    ("missing-list", "status not in", "missing value after 'not in'"),
    ("unknown-subject", "statuscode == 200", "unknown subject 'statuscode'"),
    ("unknown-subject-headers", "headers.x == 1", "unknown subject 'headers.x'"),
    ("unknown-subject-glued", "status==200", "unknown subject 'status==200'"),
    ("header-without-name", "header. exists", "invalid header name in 'header.'"),
    ("header-bad-name", "header.a(b) exists", "invalid header name in 'header.a(b)'"),
    ("jsonpath-unclosed-bracket", "json.items[0 == 1", "invalid JSONPath"),
    ("jsonpath-dash-shorthand", "json.a-b == 1", "invalid JSONPath '$.a-b'"),
    ("jsonpath-trailing-dot", "json. exists", "invalid JSONPath '$.'"),
    ("jsonpath-bad-filter", "json.items[?@.price >] exists", "invalid JSONPath"),
    ("bad-regex", 'body matches "("', "invalid regular expression '('"),
    (
        "regex-not-a-string",
        "body matches 5",
        "'matches' needs a regular expression string, got '5'",
    ),
    ("regex-double-quoted-backslash", r'body matches "\d+"', "not a JSON/YAML literal"),
    ("in-without-list", "status in 200", "'in' needs a list, e.g. [200, 201], got '200'"),
    ("not-in-without-list", 'json.s not in "ok"', "'not in' needs a list"),
    ("ordering-with-string", 'json.count > "5"', "'>' needs a number, got '\"5\"'"),
    ("ordering-with-bool", "json.count <= true", "'<=' needs a number, got 'true'"),
    ("ordering-with-null", "header.x < null", "'<' needs a number, got 'null'"),
    ("ordering-with-list", "json.count >= [1]", "'>=' needs a number, got '[1]'"),
    ("status-with-string", 'status == "200"', "status is compared with integers, got '\"200\"'"),
    ("status-with-float", "status == 200.0", "status is compared with integers, got '200.0'"),
    ("status-with-bool", "status != true", "status is compared with integers, got 'true'"),
    ("status-list-with-string", 'status in [200, "x"]', "status is compared with integers"),
    ("status-contains-string", 'status contains "2"', "status is compared with integers"),
    ("latency-bad-duration", "latency < fast", "invalid duration 'fast'"),
    ("latency-negative", "latency < -1s", "invalid duration '-1s'"),
    ("latency-unit-with-space", "latency < 500 ms", "invalid duration '500 ms'"),
    ("latency-contains", "latency contains 5", "latency takes < <= > >= == !=, not 'contains'"),
    ("latency-in", "latency in [1s]", "latency takes < <= > >= == !=, not 'in'"),
    ("latency-matches", "latency matches '1'", "latency takes < <= > >= == !=, not 'matches'"),
    ("invalid-yaml-value", "json.x == [1,", "invalid value '[1,': not a JSON/YAML literal"),
    ("invalid-yaml-alias", "json.x == *a", "not a JSON/YAML literal"),
    ("yaml-python-tag-refused", "json.x == !!python/name:os.system", "not a JSON/YAML literal"),
    ("empty", "", "empty condition"),
    ("blank", "   ", "empty condition"),
    ("only-newlines", "\n\n", "empty condition"),
    ("not-a-string-int", 200, "a condition must be a string like 'status == 200', got 200"),
    ("not-a-string-none", None, "a condition must be a string"),
    ("not-a-string-list", ["status == 200"], "a condition must be a string"),
    ("not-a-string-bytes", b"status == 200", "a condition must be a string"),
    ("not-a-string-dict", {"status": 200}, "a condition must be a string"),
]


@pytest.mark.parametrize(
    ("text", "message"), [e[1:] for e in SYNTAX_ERRORS], ids=[e[0] for e in SYNTAX_ERRORS]
)
def test_syntax_error(text: object, message: str) -> None:
    """A malformed condition raises ConditionSyntaxError naming what is wrong."""
    with pytest.raises(ConditionSyntaxError, match=re.escape(message)):
        parse_condition(text)


def test_unknown_operator_lists_the_operators() -> None:
    """The unknown-operator message lists every operator, as the design's example shows."""
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition("status =~ 200")
    assert str(info.value) == (
        "unknown operator '=~': expected one of not contains, not in, contains, matches,"
        " ==, !=, <=, >=, <, >, in, exists, not exists"
    )


SUBJECT_ERRORS = [
    ("unknown", "statuses", "unknown subject 'statuses'"),
    ("empty", "", "unknown subject ''"),
    ("header-empty", "header.", "invalid header name"),
    ("header-space", "header.content type", "invalid header name"),
    ("json-bad-path", "json.[", "invalid JSONPath"),
    ("json-no-separator", "jsonx", "unknown subject 'jsonx'"),
]


@pytest.mark.parametrize(
    ("text", "message"), [e[1:] for e in SUBJECT_ERRORS], ids=[e[0] for e in SUBJECT_ERRORS]
)
def test_parse_subject_error(text: str, message: str) -> None:
    """A malformed capture subject raises ConditionSyntaxError."""
    with pytest.raises(ConditionSyntaxError, match=re.escape(message)):
        parse_subject(text)


# --- regressions: bugs found and fixed -------------------------------------------------

PARSE_RAISES_WRONG_TYPE = [
    pytest.param(
        "json.day == 2024-13-01", id="yaml-impossible-date"
    ),  # the date constructor's ValueError
    pytest.param(
        "json.x == !!float abc", id="yaml-float-tag"
    ),  # the float constructor's ValueError
    pytest.param("json.x == !!timestamp soon", id="yaml-timestamp-tag"),  # AttributeError
    pytest.param('body matches "a{99999999999}"', id="regex-huge-repeat"),  # OverflowError
    pytest.param("json[?@ == 1e999] exists", id="jsonpath-literal-overflow"),  # OverflowError
    pytest.param("json.x == \x1b", id="unprintable-value"),  # yaml ReaderError at construction
]


@pytest.mark.parametrize("text", PARSE_RAISES_WRONG_TYPE)
def test_syntax_error_is_always_condition_syntax_error(text: str) -> None:
    """Any unparseable value raises ConditionSyntaxError, never another exception."""
    with pytest.raises(ConditionSyntaxError):
        parse_condition(text)


EVALUATE_RAISES = [
    pytest.param("json contains [1]", response(json_body={"a": 1}), id="object-contains-list"),
    pytest.param("json contains {a: 1}", response(json_body={"a": 1}), id="object-contains-object"),
    pytest.param(
        "json.x contains !!set {a}", response(json_body={"x": "a"}), id="text-contains-yaml-set"
    ),
    pytest.param(
        "json.tags contains [1]", response(json_body={"tags": [[1]]}), id="list-contains-list"
    ),
    pytest.param(
        "json..a exists", response(body='{"a":' * 900 + "1" + "}" * 900), id="descendant-too-deep"
    ),
]


@pytest.mark.parametrize(("condition", "observed"), EVALUATE_RAISES)
def test_evaluate_never_raises(condition: str, observed: FakeResponse) -> None:
    """Evaluating a parsed condition returns a Check; a failing target is data."""
    assert isinstance(parse_condition(condition).evaluate(observed), Check)


def test_capture_of_unsearchable_body() -> None:
    """A body too deeply nested to search is (False, why) for a capture, not an exception."""
    deep = response(body='{"a":' * 900 + "1" + "}" * 900)
    found, why = parse_subject("json..a").extract_value(deep)
    assert (found, why.startswith("body cannot be searched")) == (False, True)


WRONG_VERDICTS = [
    pytest.param("json.x != 5", response(json_body={"x": "abc"}), True, id="text-ne-number"),
    pytest.param(
        "json.s not in [500, 503]", response(json_body={"s": "ok"}), True, id="text-not-in-numbers"
    ),
    pytest.param('header.x-text in [200, "abc"]', OK, True, id="text-in-mixed-list"),
    pytest.param(
        "json.tags contains 5",
        response(json_body={"tags": ["x", 5]}),
        True,
        id="mixed-list-contains-number",
    ),
    pytest.param(
        "json.tags not contains 5",
        response(json_body={"tags": ["x"]}),
        True,
        id="text-list-not-contains-number",
    ),
    pytest.param(
        "json.flags == [1, 0]",
        response(json_body={"flags": [True, False]}),
        False,
        id="nested-true-is-not-1",
    ),
    pytest.param(
        "json == {a: 1}", response(json_body={"a": True}), False, id="nested-object-true-is-not-1"
    ),
    pytest.param(
        "json == {a: [true]}", response(json_body={"a": [True]}), True, id="nested-true-is-true"
    ),
    pytest.param("json.error not exists", HTML, False, id="invalid-json-not-exists"),
    pytest.param("json not exists", HTML, False, id="invalid-json-whole-not-exists"),
    pytest.param(
        "json.data.items[*].id contains 7",
        response(json_body={"data": {"items": [{"id": 7}]}}),
        True,
        id="wildcard-one-node-contains",
    ),
    pytest.param(
        'json.data.items[*].name contains "an"',
        response(json_body={"data": {"items": [{"name": "banana"}]}}),
        False,
        id="wildcard-one-node-substring",
    ),
    pytest.param(
        "json.data.items[*].id contains 7",
        response(json_body={"data": {"items": [{"id": 7}, {"id": 8}]}}),
        True,
        id="wildcard-two-nodes-contains",
    ),
    pytest.param(
        'json.data.items[0:5].name contains "an"',
        response(json_body={"data": {"items": [{"name": "banana"}]}}),
        False,
        id="slice-one-node-substring",
    ),
    pytest.param(
        'json.data.items[0, 5].name == ["banana"]',
        response(json_body={"data": {"items": [{"name": "banana"}]}}),
        True,
        id="selector-list-one-node-is-a-list",
    ),
]


@pytest.mark.parametrize(("condition", "observed", "ok"), WRONG_VERDICTS)
def test_verdict(condition: str, observed: FakeResponse, ok: bool) -> None:
    """Comparisons that must not be cut short or coerced give the right verdict."""
    assert parse_condition(condition).evaluate(observed).ok is ok


def _verdict(condition: str, observed: FakeResponse) -> str:
    """'syntax error' when the condition is refused at load, else 'pass' or 'fail'."""
    try:
        parsed = parse_condition(condition)
    except ConditionSyntaxError:
        return "syntax error"
    return "pass" if parsed.evaluate(observed).ok else "fail"


YAML_TRAPS = [
    pytest.param(
        "json.day == 2024-01-01",
        response(json_body={"day": "2024-01-01"}),
        {"syntax error", "pass"},
        id="unquoted-date",
    ),
    pytest.param(
        "json.color == #fff",
        response(json_body={"color": None}),
        {"syntax error", "fail"},
        id="hash-value-is-a-comment",
    ),
    pytest.param(
        "body contains #error",
        response(body="null"),
        {"syntax error", "fail"},
        id="hash-value-contains",
    ),
    pytest.param(
        "json.x == a # b",
        response(json_body={"x": "a"}),
        {"syntax error", "fail"},
        id="hash-after-value-is-a-comment",
    ),
    pytest.param(
        "json.x == --- # b",
        response(json_body={"x": None}),
        {"syntax error", "fail"},
        id="document-marker-and-comment",
    ),
    pytest.param(
        'json.day == "2024-01-01"',
        response(json_body={"day": "2024-01-01"}),
        {"pass"},
        id="quoted-date",
    ),
    pytest.param(
        'json.color == "#fff"', response(json_body={"color": "#fff"}), {"pass"}, id="quoted-hash"
    ),
]


@pytest.mark.parametrize(("condition", "observed", "allowed"), YAML_TRAPS)
def test_yaml_value_traps(condition: str, observed: FakeResponse, allowed: set[str]) -> None:
    """A YAML value that cannot mean what it says is refused, or compares as written."""
    assert _verdict(condition, observed) in allowed


# --- properties -------------------------------------------------------------------------

SUBJECT_TEXTS = [
    "status",
    "latency",
    "body",
    "json",
    "json.a",
    "json.a[0]",
    "header.x",
    "header.",
    "x",
]
OPERATOR_TEXTS = [*OPERATORS, "exists", "not exists", "=~", "", "=", "==="]


def _parse_or_error(text: str) -> Condition | ConditionSyntaxError:
    """The parsed condition, or the ConditionSyntaxError it raised (anything else escapes)."""
    try:
        return parse_condition(text)
    except ConditionSyntaxError as error:
        return error


@PROPERTY_SETTINGS
@given(st.text(max_size=80))
def test_parse_arbitrary_text(text: str) -> None:
    """Arbitrary text parses to a Condition or raises ConditionSyntaxError, nothing else."""
    assert isinstance(_parse_or_error(text), Condition | ConditionSyntaxError)


@PROPERTY_SETTINGS
@given(st.sampled_from(SUBJECT_TEXTS), st.sampled_from(OPERATOR_TEXTS), st.text(max_size=30))
def test_parse_shaped_text(subject: str, operator: str, value: str) -> None:
    """`SUBJECT OP anything` parses to a Condition or raises ConditionSyntaxError."""
    assert isinstance(
        _parse_or_error(f"{subject} {operator} {value}"), Condition | ConditionSyntaxError
    )


STRADDLING_SECRET = "s3cr3t-straddles-the-cut-0123456789"
CUTS = [
    # `_show` quotes a body as JSON: `"` + 100 filler characters puts the secret at the cut
    ("body", 'body == "x"', response(body="a" * 100 + STRADDLING_SECRET + "z" * 50)),
    (
        "header",
        'header.x-echo == "x"',
        response(headers={"X-Echo": "b" * 105 + STRADDLING_SECRET + "z" * 50}),
    ),
    ("json", "json == 1", response(json_body={"k": "c" * 95 + STRADDLING_SECRET + "z" * 50})),
]


@pytest.mark.parametrize(("condition", "observed"), [c[1:] for c in CUTS], ids=[c[0] for c in CUTS])
def test_failure_message_masks_before_it_cuts(condition: str, observed: FakeResponse) -> None:
    """A secret straddling the 120-character cut of a shown value leaves none of its
    characters: the value is masked first and cut after."""
    register_secret(STRADDLING_SECRET)
    check = parse_condition(condition).evaluate(observed)
    assert not check.ok
    assert "…" in check.message
    assert "s3cr" not in check.message
