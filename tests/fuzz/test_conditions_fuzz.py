"""Fuzzing the little languages inside a config: `expect` conditions and `capture`
subjects (`prober.conditions`), alert-rule `when` expressions (`slo.rules`) and `${...}`
templates (`prober.templates`).

Parsing any text gives a parsed value or the module's own error type, with a one-line
message (it becomes the `message` of a `path: message` config error). Evaluating what
parsed never raises: a condition against any response (any status, headers, body bytes —
invalid UTF-8, invalid or deeply nested JSON — as `prober.journey` evaluates them, with the
real `HttpResponse`), a capture subject's extraction, a rule over any window of runs, a
template rendered with any captures and environment.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from prober.conditions import (
    Check,
    Condition,
    ConditionSyntaxError,
    Subject,
    parse_condition,
    parse_subject,
)
from prober.http import HttpResponse
from prober.results import Phases
from prober.templates import (
    RenderScope,
    Template,
    TemplateError,
    TemplateSyntaxError,
    compile_template,
    compile_value,
    render_value,
    variables_in,
)
from slo.rules import (
    RuleExpression,
    RuleSyntaxError,
    RuleValue,
    RunSample,
    parse_rule_expression,
    summarize,
)
from tests.fuzz.support import (
    condition_lines,
    fuzz_settings,
    json_values,
    odd_text,
    subjects,
    templates,
    when_lines,
)


def _parsed_or_error(parse: Any, error_type: type[Exception], text: object) -> Any:
    """`parse(text)`, or the `error_type` it raised, whose message is one non-empty line.
    Any other exception propagates: that is the bug."""
    try:
        return parse(text)
    except error_type as caught:
        error = caught
    message = str(error)
    assert message.strip(), f"{type(error).__name__} without a message"
    assert message.splitlines() == [message], f"a message on several lines: {message!r}"
    return error


# ---------------------------------------------------------------------------- responses

_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "text/plain; charset=latin-1",
        "text/plain; charset=utf-32",
        "text/plain; charset=ascii",
        "text/plain; charset=cp1252",
        "text/plain; charset=utf-7",
        "text/plain; charset=bogus",
        "text/plain; charset=",
        'text/html; charset="utf-8"',
    ]
)
_HEADER_NAMES = st.sampled_from(["x-count", "X-Count", "x-empty", "set-cookie", "content-length"])
_BODIES = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-16")),
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b"\xff\xfe\xfd",
            b'{"status": "ok\xff"}',
            b"\xef\xbb\xbf{}",
            b"[" * 5000,
            b"[" * 900 + b"]" * 900,
            b'{"a":' * 900 + b"1" + b"}" * 900,
            b"1" * 5000,
            b"NaN",
            b"-Infinity",
            b'{"a": NaN, "b": Infinity}',
            b'{"a": 1, "a": 2}',
            b'{"items": [' + b'{"id": 1, "name": "an"},' * 200 + b"{}]}",
            b'"\\ud800"',
            b"\x00\x00\x00",
            b"1e999",
        ]
    ),
)


@st.composite
def responses(draw: st.DrawFn) -> HttpResponse:
    """A real `HttpResponse`, as the HTTP layer builds one, with anything in it."""
    headers = draw(st.lists(st.tuples(_HEADER_NAMES, odd_text), max_size=3))
    if draw(st.booleans()):
        headers.append(("Content-Type", draw(_CONTENT_TYPES)))
    return HttpResponse(
        status_code=draw(st.integers(0, 999)),
        headers=headers,
        body=draw(_BODIES),
        phases=Phases(),
        duration=draw(st.floats(0, 1e6) | st.sampled_from([0.0, 5e-324, 1e300])),
        url="http://127.0.0.1:8000/",
        cert_expiry=None,
    )


#: A response the explicit examples are evaluated against.
JSON_RESPONSE = HttpResponse(
    200,
    [("Content-Type", "application/json")],
    b'{"a": [1, 2], "x": 1.5, "items": [{"id": 1, "name": "an"}]}',
    Phases(),
    0.25,
    "http://127.0.0.1:8000/",
    None,
)


def _check_evaluation(condition: Condition, response: HttpResponse) -> None:
    """What `prober.journey` does with a condition: evaluate it; it never raises, and a
    failure explains itself without falling back to the catch-all."""
    check = condition.evaluate(response)
    assert isinstance(check, Check)
    assert isinstance(check.ok, bool)
    if check.ok:
        assert check.message == condition.text
    else:
        assert check.message.startswith(f"expected {condition.text}, got ")
        assert "cannot be compared (" not in check.message, check.message


# ---------------------------------------------------------------------------- conditions


@fuzz_settings(300)
@given(st.text())
def test_condition_arbitrary_text(text: str) -> None:
    """Any text parses to a Condition or raises ConditionSyntaxError (one line)."""
    assert isinstance(
        _parsed_or_error(parse_condition, ConditionSyntaxError, text),
        Condition | ConditionSyntaxError,
    )


@fuzz_settings(100)
@given(json_values)
def test_condition_not_text(value: Any) -> None:
    """A YAML value that is no string (a list, a mapping, a number) is a ConditionSyntaxError."""
    assume(not isinstance(value, str))
    assert isinstance(
        _parsed_or_error(parse_condition, ConditionSyntaxError, value), ConditionSyntaxError
    )


@fuzz_settings(300)
@example("json == [&a [1, 2], *a, *a]", JSON_RESPONSE)
@example("body contains [&a [1, 2], *a, *a]", JSON_RESPONSE)
@example("json.a == &a [1, *a]", JSON_RESPONSE)
@example('json matches "a{99999999999}"', JSON_RESPONSE)
@example("json.x < 1e300", JSON_RESPONSE)  # a JSON number, not the text '1e300'
@example("json.x == 1e999", JSON_RESPONSE)
@example(
    "body contains "
    + "[&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"
    + "".join(f", &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]" for level in range(1, 7))
    + "]",
    JSON_RESPONSE,
)
@example("json.items[?search(@, '(')] exists", JSON_RESPONSE)
@example("json[" + "9" * 5000 + "] exists", JSON_RESPONSE)
@example("json == " + "[" * 2000 + "]" * 2000, JSON_RESPONSE)
@example("status == 1" + "0" * 5000, JSON_RESPONSE)
@example("latency < " + "9" * 400 + "w", JSON_RESPONSE)
@example("json.x == !!float nan", JSON_RESPONSE)
@given(condition_lines, responses())
def test_condition_grammar(text: str, response: HttpResponse) -> None:
    """Lines built from the real subjects, operators and values, mutated: a Condition or
    a ConditionSyntaxError; a Condition then evaluates against any response."""
    parsed = _parsed_or_error(parse_condition, ConditionSyntaxError, text)
    assert isinstance(parsed, Condition | ConditionSyntaxError)
    if isinstance(parsed, Condition):
        _check_evaluation(parsed, response)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("json.x < 1e300", 1e300, id="exponent-is-a-json-number"),
        pytest.param("json.x in [1E3, -2e-2]", [1000.0, -0.02], id="exponents-in-a-list"),
        pytest.param('json.x == "1e3"', "1e3", id="quoted-exponent-is-text"),
        pytest.param("json.x == 1e999", "not a finite number", id="overflow-refused"),
        pytest.param("json.x != .nan", "not a finite number", id="nan-refused"),
        pytest.param("json.x in [1, -.inf]", "not a finite number", id="infinity-refused"),
        pytest.param("body contains [&a [1, 2], *a]", "alias", id="alias-refused"),
    ],
)
def test_literal_regressions(text: str, expected: object) -> None:
    """Values the fuzzer found misread: JSON exponents, non-finite numbers, aliases."""
    parsed = _parsed_or_error(parse_condition, ConditionSyntaxError, text)
    if isinstance(parsed, Condition):
        assert parsed.expected == expected
    else:
        assert isinstance(expected, str)
        assert expected in str(parsed)


_VALID_CONDITIONS = [
    "status == 200",
    "status in [200, 201]",
    "status != 503",
    "latency < 500ms",
    "latency >= 0",
    'body contains "ok"',
    'body not contains "error"',
    'body matches "^\\\\s*[{\\\\[]"',
    'header.content-type matches "json"',
    "header.x-count > 3",
    "header.x-count == 7",
    "header.x-empty exists",
    "header.set-cookie not exists",
    "json exists",
    "json not exists",
    "json == {}",
    "json != null",
    'json.status == "ok"',
    "json.a >= 1",
    'json.items[*].name contains "an"',
    "json.items[0].id in [1, 2]",
    "json.items[0:2] not in [[]]",
    "json..a exists",
    "json..id == 1",
    'json.items[?@.id == 1].name == "an"',
    "json[0] < 1e300",
    'json.a matches "1"',
    'json.items contains {"id": 1, "name": "an"}',
]


@fuzz_settings(300)
@given(st.sampled_from(_VALID_CONDITIONS), responses())
def test_valid_conditions_on_any_response(text: str, response: HttpResponse) -> None:
    """Every kind of valid condition evaluates against any response without raising."""
    _check_evaluation(parse_condition(text), response)


@fuzz_settings(300)
@example("json" + "[0]" * 900, JSON_RESPONSE)
@example("json..a..b..c", JSON_RESPONSE)
@given(subjects, responses())
def test_capture_subjects(text: str, response: HttpResponse) -> None:
    """Any subject parses or raises ConditionSyntaxError; a parsed one extracts a value
    (or says why there is none) from any response, as a step's `capture` does."""
    parsed = _parsed_or_error(parse_subject, ConditionSyntaxError, text)
    assert isinstance(parsed, Subject | ConditionSyntaxError)
    if isinstance(parsed, Subject):
        found, value = parsed.extract_value(response)
        assert found or isinstance(value, str)


def test_body_in_a_charset_that_cannot_replace() -> None:
    """A `body` capture of a response declaring `charset=idna` says why, not raises."""
    response = HttpResponse(
        200, [("Content-Type", "text/plain; charset=idna")], b"\xff", Phases(), 0.1, "", None
    )
    _, value = parse_subject("body").extract_value(response)
    assert isinstance(value, str)


# ---------------------------------------------------------------------------- when


@fuzz_settings(300)
@given(st.text())
def test_when_arbitrary_text(text: str) -> None:
    """Any text parses to a RuleExpression or raises RuleSyntaxError (one line)."""
    assert isinstance(
        _parsed_or_error(parse_rule_expression, RuleSyntaxError, text),
        RuleExpression | RuleSyntaxError,
    )


_RUN_SAMPLES = st.builds(
    RunSample,
    success=st.booleans(),
    duration_seconds=st.none() | st.floats(0, 1e6),
    status_codes=st.lists(st.integers(100, 599), max_size=3),
    captures=st.dictionaries(
        st.sampled_from(["tokens_used", "queue_depth", "retries", "version", "x"]),
        json_values,
        max_size=3,
    ),
)


@fuzz_settings(300)
@example("p95 > " + "9" * 400, [])
@example("p95 > " + "9" * 400 + "w", [])
@example("error_ratio > " + "1" * 5000 + "%", [])
@example("p95 > 0." + "0" * 5000 + "1", [])
@example("avg(x) > " + "9" * 5000, [])
@example("changed(\nversion)", [])
@example("changed\n(version)", [])
@example("changed(version) x\ny", [])
@example("avg(tokens_used) > 1", [RunSample(True, 0.1, captures={"tokens_used": 10**400})])
@given(when_lines, st.lists(_RUN_SAMPLES, max_size=6))
def test_when_grammar(text: str, samples: list[RunSample]) -> None:
    """`when` lines from the real subjects, comparators and values, mutated: a
    RuleExpression or a RuleSyntaxError; a parsed rule evaluates and explains itself over
    any window of runs."""
    parsed = _parsed_or_error(parse_rule_expression, RuleSyntaxError, text)
    assert isinstance(parsed, RuleExpression | RuleSyntaxError)
    if isinstance(parsed, RuleExpression):
        data = summarize(samples)
        value = parsed.evaluate(data)
        assert isinstance(value, RuleValue)
        assert isinstance(parsed.explain(value), str)


@fuzz_settings(50)
@given(json_values)
def test_when_not_text(value: Any) -> None:
    """A `when` that is no string is a RuleSyntaxError."""
    assume(not isinstance(value, str))
    assert isinstance(_parsed_or_error(parse_rule_expression, RuleSyntaxError, value), Exception)


# ---------------------------------------------------------------------------- templates

_CAPTURE_NAMES = st.sampled_from(["token", "tokens_used", "version", "a", "x"])
_ENVIRON = st.dictionaries(
    st.sampled_from(["HOME", "PASSWORD", "X", "EMPTY"]), st.text(max_size=10), max_size=3
)


def _render(value: Any, captures: dict[str, Any], environ: dict[str, str]) -> None:
    scope = RenderScope(run_id="0" * 31 + "1", captures=captures, environ=environ)
    try:
        render_value(value, scope)
    except TemplateError as caught:
        assert caught.args, "a TemplateError without a message"  # noqa: PT017


@fuzz_settings(300)
@example("${a\nb}")
@example("${env.A\nB}")
@example("${\u2028}")
@given(st.text())
def test_template_arbitrary_text(text: str) -> None:
    """Any text compiles to a Template or raises TemplateSyntaxError (one line)."""
    assert isinstance(
        _parsed_or_error(compile_template, TemplateSyntaxError, text),
        Template | TemplateSyntaxError,
    )


@fuzz_settings(300)
@given(
    templates
    | st.recursive(
        templates | json_values,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=8,
    ),
    st.dictionaries(_CAPTURE_NAMES, json_values, max_size=3),
    _ENVIRON,
)
def test_template_values(value: Any, captures: dict[str, Any], environ: dict[str, str]) -> None:
    """Templates (alone or inside JSON bodies) compile or raise TemplateSyntaxError; what
    compiles renders with any captures and environment, or raises TemplateError."""
    compiled = _parsed_or_error(compile_value, TemplateSyntaxError, value)
    if not isinstance(compiled, TemplateSyntaxError):
        assert all(variable.kind for variable in variables_in(compiled))
        _render(compiled, captures, environ)
