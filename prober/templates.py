"""`${...}` templates in step URLs, headers, query parameters and bodies.

    ${token}            a value captured by an earlier step of the same run
    ${env.NAME}         an environment variable
    ${secret.NAME}      an environment variable whose value is redacted everywhere
    ${run_id} ${uuid} ${timestamp}    built-ins
    $${                 a literal `${`

Templates are parsed at config load (`compile_template`, `compile_value`), so a
malformed one is a config error with its path, and the capture names a step uses are
known before anything runs. Rendering happens per run; a value that cannot be
rendered (an unset environment variable) raises `TemplateError`, which the journey
runner turns into a step failure with reason `template`.

A string that is exactly one `${...}` keeps the captured value's type, so
`json: {count: "${n}"}` sends a number when `n` captured one.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prober.redaction import register_secret

__all__ = [
    "BUILTINS",
    "RenderScope",
    "Template",
    "TemplateError",
    "TemplateSyntaxError",
    "Variable",
    "compile_template",
    "compile_value",
    "render_value",
    "variables_in",
]

BUILTINS = frozenset({"run_id", "uuid", "timestamp"})
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class TemplateSyntaxError(ValueError):
    """A `${...}` that cannot be parsed (a config error)."""


class TemplateError(Exception):
    """A template that cannot be rendered in this run; the message never holds a secret."""


@dataclass(frozen=True)
class Variable:
    """One `${...}`: `kind` is capture, env, secret or builtin."""

    kind: str
    name: str

    def __str__(self) -> str:
        return (
            "${"
            + (self.name if self.kind in ("capture", "builtin") else f"{self.kind}.{self.name}")
            + "}"
        )


@dataclass(frozen=True)
class Template:
    """A parsed string: literal text and variables, in order."""

    source: str
    parts: tuple[str | Variable, ...]

    @property
    def is_constant(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    def variables(self) -> Iterator[Variable]:
        return (part for part in self.parts if isinstance(part, Variable))

    def render(self, scope: RenderScope) -> Any:
        if len(self.parts) == 1 and isinstance(self.parts[0], Variable):
            return scope.resolve(self.parts[0])
        return "".join(
            part if isinstance(part, str) else _as_text(scope.resolve(part)) for part in self.parts
        )


def compile_template(text: str) -> Template:
    """Parse a string into a `Template`; raises `TemplateSyntaxError`."""
    parts: list[str | Variable] = []
    position = 0
    literal = ""
    for match in _TOKEN.finditer(text):
        literal += _checked_literal(text, position, match.start())
        position = match.end()
        if match.group(0) == "$${":
            literal += "${"
            continue
        if literal:
            parts.append(literal)
            literal = ""
        parts.append(_parse_variable(match.group(1).strip()))
    literal += _checked_literal(text, position, len(text))
    if literal or not parts:
        parts.append(literal)
    return Template(source=text, parts=tuple(parts))


def _checked_literal(text: str, start: int, end: int) -> str:
    """Text between variables; a `${` left in it has no closing brace."""
    segment = text[start:end]
    if "${" in segment:
        raise TemplateSyntaxError(f"unclosed '${{' in {text!r}")
    return segment


def _parse_variable(body: str) -> Variable:
    if not body:
        raise TemplateSyntaxError("empty '${}'")
    prefix, dot, name = body.partition(".")
    written = "${" + body + "}"  # shown quoted (repr): a line break in it stays `\n`
    if dot and prefix in ("env", "secret"):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise TemplateSyntaxError(f"invalid environment variable name in {written!r}")
        return Variable(prefix, name)
    if not _NAME.fullmatch(body):
        raise TemplateSyntaxError(
            f"invalid variable {written!r}: expected a capture name, env.NAME, secret.NAME,"
            " run_id, uuid or timestamp"
        )
    return Variable("builtin" if body in BUILTINS else "capture", body)


def compile_value(value: Any) -> Any:
    """Compile every string inside a JSON-like value (dicts, lists) into a `Template`."""
    if isinstance(value, str):
        template = compile_template(value)
        return template.parts[0] if template.is_constant else template
    if isinstance(value, dict):
        return {key: compile_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [compile_value(item) for item in value]
    return value


def render_value(value: Any, scope: RenderScope) -> Any:
    """Render a value made by `compile_value`."""
    if isinstance(value, Template):
        return value.render(scope)
    if isinstance(value, dict):
        return {key: render_value(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, scope) for item in value]
    return value


def variables_in(value: Any) -> Iterator[Variable]:
    """Every variable inside a value made by `compile_value`."""
    if isinstance(value, Template):
        yield from value.variables()
    elif isinstance(value, dict):
        for item in value.values():
            yield from variables_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from variables_in(item)


@dataclass
class RenderScope:
    """What a run's templates can see: its captures so far, its run id, the environment."""

    run_id: str
    captures: dict[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def resolve(self, variable: Variable) -> Any:
        if variable.kind == "capture":
            if variable.name not in self.captures:
                raise TemplateError(f"{variable} was not captured in this run")
            return self.captures[variable.name]
        if variable.kind == "builtin":
            if variable.name == "run_id":
                return self.run_id
            if variable.name == "uuid":
                return str(uuid.uuid4())
            return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        value = self.environ.get(variable.name)
        if value is None:
            raise TemplateError(f"environment variable {variable.name} is not set (for {variable})")
        if variable.kind == "secret":
            register_secret(value)
        return value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
