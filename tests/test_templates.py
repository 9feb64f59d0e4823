"""`${...}` templates (`prober.templates`): parsing, rendering, types kept, errors named."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import prober.redaction
from prober.templates import (
    RenderScope,
    Template,
    TemplateError,
    TemplateSyntaxError,
    Variable,
    compile_template,
    compile_value,
    render_value,
    variables_in,
)
from tests.conftest import PROPERTY_SETTINGS

CAPTURES: dict[str, Any] = {
    "token": "abc",
    "n": 5,
    "ratio": 1.5,
    "flag": True,
    "off": False,
    "none": None,
    "obj": {"a": [1, "x"]},
    "items": [1, 2],
    "my-id": "m1",
}
ENVIRON = {"EMAIL": "probe@example.com", "PASSWORD": "hunter2", "EMPTY": ""}


@pytest.fixture
def clean_secrets() -> Iterator[None]:
    """The global secret registry, empty before and after the test."""
    prober.redaction.secrets.clear()
    yield
    prober.redaction.secrets.clear()


def scope(**overrides: Any) -> RenderScope:
    """A render scope with fixed captures and an explicit environment (never os.environ)."""
    fields: dict[str, Any] = {"run_id": "run-1", "captures": dict(CAPTURES), "environ": ENVIRON}
    fields.update(overrides)
    return RenderScope(**fields)


PARTS = [
    ("literal", "plain text", ("plain text",)),
    ("empty", "", ("",)),
    ("capture", "${token}", (Variable("capture", "token"),)),
    ("capture-with-dash", "${my-id}", (Variable("capture", "my-id"),)),
    ("capture-spaces-inside", "${ token }", (Variable("capture", "token"),)),
    ("env", "${env.EMAIL}", (Variable("env", "EMAIL"),)),
    ("secret", "${secret.PASSWORD}", (Variable("secret", "PASSWORD"),)),
    ("builtin-run-id", "${run_id}", (Variable("builtin", "run_id"),)),
    ("builtin-uuid", "${uuid}", (Variable("builtin", "uuid"),)),
    ("builtin-timestamp", "${timestamp}", (Variable("builtin", "timestamp"),)),
    ("mixed", "Bearer ${token}!", ("Bearer ", Variable("capture", "token"), "!")),
    ("adjacent", "${a}${b}", (Variable("capture", "a"), Variable("capture", "b"))),
    ("escape", "$${token}", ("${token}",)),
    ("escape-then-variable", "$${a}${b}", ("${a}", Variable("capture", "b"))),
    ("variable-then-escape", "${a}$${", (Variable("capture", "a"), "${")),
    ("escape-mid-literal", "a$${b", ("a${b",)),
    ("lone-dollar", "cost: $5", ("cost: $5",)),
    ("double-dollar", "$$", ("$$",)),
    ("closing-brace-alone", "}", ("}",)),
    ("brace-after-variable", "${a}}", (Variable("capture", "a"), "}")),
    ("helm-braces-untouched", "{{ .Values.token }}", ("{{ .Values.token }}",)),
    ("env-without-dot-is-a-capture", "${env}", (Variable("capture", "env"),)),
]


@pytest.mark.parametrize(("source", "parts"), [p[1:] for p in PARTS], ids=[p[0] for p in PARTS])
def test_compile_template(source: str, parts: tuple[str | Variable, ...]) -> None:
    """A template parses into literal text and variables, in order."""
    assert compile_template(source) == Template(source=source, parts=parts)


SYNTAX_ERRORS = [
    ("unclosed", "Bearer ${token", "unclosed '${' in 'Bearer ${token'"),
    ("unclosed-after-variable", "${a} ${b", "unclosed '${'"),
    ("unclosed-at-end", "x${", "unclosed '${'"),
    ("empty", "${}", "empty '${}'"),
    ("blank", "${  }", "empty '${}'"),
    ("dotted-capture", "${foo.bar}", "invalid variable '${foo.bar}'"),
    ("leading-dash", "${-x}", "invalid variable '${-x}'"),
    ("leading-digit", "${1x}", "invalid variable '${1x}'"),
    ("trailing-dot", "${x.}", "invalid variable '${x.}'"),
    ("space-inside-name", "${a b}", "invalid variable '${a b}'"),
    ("nested", "${a ${b}", "invalid variable '${a ${b}'"),
    ("helm-style-inside", "${{a}}", "invalid variable '${{a}'"),
    ("env-no-name", "${env.}", "invalid environment variable name in '${env.}'"),
    ("env-leading-digit", "${env.1A}", "invalid environment variable name in '${env.1A}'"),
    ("env-dash", "${env.A-B}", "invalid environment variable name in '${env.A-B}'"),
    ("env-dotted", "${env.A.B}", "invalid environment variable name in '${env.A.B}'"),
    ("secret-no-name", "${secret.}", "invalid environment variable name in '${secret.}'"),
    ("secret-dash", "${secret.X-Y}", "invalid environment variable name in '${secret.X-Y}'"),
]


@pytest.mark.parametrize(
    ("source", "message"), [e[1:] for e in SYNTAX_ERRORS], ids=[e[0] for e in SYNTAX_ERRORS]
)
def test_syntax_error(source: str, message: str) -> None:
    """A malformed template raises TemplateSyntaxError naming the problem."""
    with pytest.raises(TemplateSyntaxError, match=re.escape(message)):
        compile_template(source)


RENDERED = [
    ("literal", "plain", "plain"),
    ("empty", "", ""),
    ("capture-in-text", "Bearer ${token}", "Bearer abc"),
    ("whole-int-keeps-type", "${n}", 5),
    ("int-in-text", "n=${n}", "n=5"),
    ("whole-float-keeps-type", "${ratio}", 1.5),
    ("float-in-text", "r=${ratio}", "r=1.5"),
    ("whole-bool-keeps-type", "${flag}", True),
    ("true-in-text-is-json", "f=${flag}", "f=true"),
    ("false-in-text-is-json", "f=${off}", "f=false"),
    ("whole-null-keeps-type", "${none}", None),
    ("null-in-text-is-empty", "x${none}y", "xy"),
    ("whole-object-keeps-type", "${obj}", {"a": [1, "x"]}),
    ("object-in-text-is-compact-json", "o=${obj}", 'o={"a":[1,"x"]}'),
    ("whole-list-keeps-type", "${items}", [1, 2]),
    ("list-in-text-is-compact-json", "i=${items}", "i=[1,2]"),
    ("spaces-around-whole-variable-make-text", " ${n}", " 5"),
    ("dashed-capture", "${my-id}", "m1"),
    ("env", "${env.EMAIL}", "probe@example.com"),
    ("env-in-text", "user=${env.EMAIL}", "user=probe@example.com"),
    ("env-set-but-empty", "[${env.EMPTY}]", "[]"),
    ("run-id", "probe ${run_id}", "probe run-1"),
    ("escape", "$${token}", "${token}"),
    ("escape-then-variable", "$${token}=${token}", "${token}=abc"),
    ("two-variables", "${token}:${n}", "abc:5"),
    ("helm-braces", "{{ token }}", "{{ token }}"),
]


@pytest.mark.parametrize(
    ("source", "expected"), [r[1:] for r in RENDERED], ids=[r[0] for r in RENDERED]
)
def test_render(source: str, expected: object) -> None:
    """Rendering substitutes values; a string that is one variable keeps the value's type."""
    rendered = compile_template(source).render(scope())
    assert (rendered, type(rendered)) == (expected, type(expected))


def test_render_uuid() -> None:
    """`${uuid}` is a fresh random (version 4) UUID on every render."""
    template = compile_template("${uuid}")
    first, second = template.render(scope()), template.render(scope())
    assert (uuid.UUID(first).version, uuid.UUID(second).version, first != second) == (4, 4, True)


def test_render_timestamp() -> None:
    """`${timestamp}` is the current UTC time in RFC 3339 with milliseconds and a Z."""
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    rendered = compile_template("${timestamp}").render(scope())
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rendered)
    assert before <= datetime.fromisoformat(rendered) <= after


def test_render_secret_returns_value_and_registers_it(clean_secrets: None) -> None:
    """`${secret.NAME}` renders the value and registers it for redaction."""
    rendered = compile_template("pw=${secret.PASSWORD}").render(scope())
    assert (rendered, prober.redaction.redact("login failed for hunter2")) == (
        "pw=hunter2",
        "login failed for ***",
    )


def test_compiling_a_secret_does_not_register_it(clean_secrets: None) -> None:
    """Only rendering reads the environment; compiling registers nothing."""
    compile_template("${secret.PASSWORD}")
    assert prober.redaction.redact("hunter2") == "hunter2"


def test_env_is_not_registered_as_secret(clean_secrets: None) -> None:
    """`${env.NAME}` is not a secret and stays visible."""
    compile_template("${env.EMAIL}").render(scope())
    assert prober.redaction.redact("probe@example.com") == "probe@example.com"


def test_empty_secret_renders_empty_and_masks_nothing(clean_secrets: None) -> None:
    """A secret that is set but empty renders as "" and hides nothing."""
    rendered = compile_template("[${secret.EMPTY}]").render(scope())
    assert (rendered, prober.redaction.redact("text")) == ("[]", "text")


RENDER_ERRORS = [
    ("unset-env", "${env.NOPE}", "environment variable NOPE is not set (for ${env.NOPE})"),
    (
        "unset-secret",
        "Bearer ${secret.API_KEY}",
        "environment variable API_KEY is not set (for ${secret.API_KEY})",
    ),
    ("missing-capture", "Bearer ${session}", "${session} was not captured in this run"),
    ("missing-capture-whole", "${session}", "${session} was not captured in this run"),
]


@pytest.mark.parametrize(
    ("source", "message"), [e[1:] for e in RENDER_ERRORS], ids=[e[0] for e in RENDER_ERRORS]
)
def test_render_error(source: str, message: str, clean_secrets: None) -> None:
    """A value that cannot be rendered raises TemplateError naming the variable."""
    with pytest.raises(TemplateError) as info:
        compile_template(source).render(scope())
    assert str(info.value) == message


def test_render_error_never_holds_a_secret(clean_secrets: None) -> None:
    """A render error after a secret was rendered names the variable, not the secret."""
    template = compile_template("${secret.PASSWORD}:${env.PASSWORD_2}")
    with pytest.raises(TemplateError) as info:
        template.render(scope(environ={"PASSWORD": "hunter2"}))
    assert ("PASSWORD_2" in str(info.value), "hunter2" in str(info.value)) == (True, False)


def test_environ_is_the_one_given() -> None:
    """The scope reads the mapping it is given, not the process environment."""
    assert compile_template("${env.HOME}").render(scope(environ={"HOME": "/nowhere"})) == "/nowhere"


BODY = {
    "json": {
        "count": "${n}",
        "flag": "${flag}",
        "message": "synthetic probe ${run_id}",
        "items": ["${token}", "literal", 3, None, True, {"deep": ["${items}"]}],
        "escaped": "$${token}",
    },
    "email": "${env.EMAIL}",
}


def test_compile_value_leaves_constants_as_strings() -> None:
    """compile_value turns only strings with variables into Templates."""
    compiled = compile_value({"a": "x", "b": "$${y}", "c": 1, "d": [None, "z"]})
    assert compiled == {"a": "x", "b": "${y}", "c": 1, "d": [None, "z"]}


def test_render_nested_value() -> None:
    """Dicts and lists render recursively; whole-variable strings keep their types."""
    assert render_value(compile_value(BODY), scope()) == {
        "json": {
            "count": 5,
            "flag": True,
            "message": "synthetic probe run-1",
            "items": ["abc", "literal", 3, None, True, {"deep": [[1, 2]]}],
            "escaped": "${token}",
        },
        "email": "probe@example.com",
    }


def test_render_keeps_int_type_in_json() -> None:
    """An int capture placed alone in a JSON field stays an int."""
    rendered = render_value(compile_value({"count": "${n}"}), scope())
    assert type(rendered["count"]) is int


def test_variables_in() -> None:
    """variables_in lists every variable inside a compiled value, in order."""
    assert list(variables_in(compile_value(BODY))) == [
        Variable("capture", "n"),
        Variable("capture", "flag"),
        Variable("builtin", "run_id"),
        Variable("capture", "token"),
        Variable("capture", "items"),
        Variable("env", "EMAIL"),
    ]


def test_compile_value_syntax_error_inside() -> None:
    """A malformed template deep inside a value raises TemplateSyntaxError."""
    with pytest.raises(TemplateSyntaxError, match=re.escape("unclosed '${'")):
        compile_value({"a": [{"b": "${oops"}]})


VARIABLE_TEXT = [
    ("capture", Variable("capture", "token"), "${token}"),
    ("builtin", Variable("builtin", "uuid"), "${uuid}"),
    ("env", Variable("env", "EMAIL"), "${env.EMAIL}"),
    ("secret", Variable("secret", "PASSWORD"), "${secret.PASSWORD}"),
]


@pytest.mark.parametrize(
    ("variable", "text"), [v[1:] for v in VARIABLE_TEXT], ids=[v[0] for v in VARIABLE_TEXT]
)
def test_variable_str(variable: Variable, text: str) -> None:
    """A Variable prints as it is written in the config."""
    assert str(variable) == text


CONSTANCY = [
    ("literal", "abc", True),
    ("escape-only", "$${x}", True),
    ("variable", "a${x}", False),
]


@pytest.mark.parametrize(
    ("source", "constant"), [c[1:] for c in CONSTANCY], ids=[c[0] for c in CONSTANCY]
)
def test_is_constant(source: str, constant: bool) -> None:
    """A template without variables is constant."""
    assert compile_template(source).is_constant is constant


# --- properties -------------------------------------------------------------------------


def _compile_or_error(text: str) -> Template | TemplateSyntaxError:
    """The compiled template, or the TemplateSyntaxError it raised (anything else escapes)."""
    try:
        return compile_template(text)
    except TemplateSyntaxError as error:
        return error


@PROPERTY_SETTINGS
@given(st.text(max_size=60))
def test_compile_arbitrary_text(text: str) -> None:
    """Arbitrary text compiles to a Template or raises TemplateSyntaxError, nothing else."""
    assert isinstance(_compile_or_error(text), Template | TemplateSyntaxError)


@PROPERTY_SETTINGS
@given(st.text(alphabet="${}.ab_-1 ", max_size=30))
def test_compile_template_like_text(text: str) -> None:
    """Text dense in `$`, braces and dots compiles or raises TemplateSyntaxError."""
    assert isinstance(_compile_or_error(text), Template | TemplateSyntaxError)


@PROPERTY_SETTINGS
@given(st.text(max_size=60).filter(lambda text: "$" not in text))
def test_text_without_dollar_renders_to_itself(text: str) -> None:
    """Text with no `$` is a constant that renders to itself."""
    assert compile_template(text).render(scope()) == text


@PROPERTY_SETTINGS
@given(st.text(max_size=30).filter(lambda text: "$" not in text and "}" not in text))
def test_escape_renders_literally(text: str) -> None:
    """`$${...}` renders as the literal `${...}`, whatever is inside."""
    assert compile_template("$${" + text + "}").render(scope()) == "${" + text + "}"
