"""Fuzzing the config loader: whatever the file holds, `parse_config` / `load_config`
return a valid config or raise a `ConfigError` of `path: message` lines — never a
traceback (KeyError, TypeError, RecursionError, ValidationError, a YAML error), and never
unbounded time or memory (YAML aliases, deep nesting).

Inputs: arbitrary text and bytes; YAML-dense text; the example configs under `config/`
mutated (keys dropped, renamed, values swapped for other types and for random durations,
percentages, sizes, templates, conditions, `when` lines, notifier entries); documents built
from the schema's own fields; `PROBER_*` environment overrides; and a table of nasty files,
also fed to `prober validate` as a subprocess.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st
from pydantic import BaseModel

from prober.conditions import Condition, Subject
from prober.config import ProberConfig, load_config, parse_config
from prober.errors import ConfigError
from prober.explain import explain_config
from prober.templates import Template
from prober.units import parse_duration, parse_percent, parse_size
from slo.rules import RuleExpression
from tests.conftest import CONFIG_DIR, REPO
from tests.fuzz.support import (
    check_config_outcome,
    condition_lines,
    durations,
    env_text,
    fuzz_settings,
    json_values,
    odd_text,
    percents,
    sizes,
    subjects,
    templates,
    when_lines,
)

EXAMPLE_TEXTS = {
    path.name: path.read_text(encoding="utf-8")
    for path in (CONFIG_DIR / "demo.yaml", CONFIG_DIR / "mirror-collective.yaml")
}
EXAMPLE_DOCUMENTS = {name: yaml.safe_load(text) for name, text in EXAMPLE_TEXTS.items()}
DEMO = EXAMPLE_TEXTS["demo.yaml"]


@pytest.fixture(autouse=True)
def _no_prober_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `PROBER_*` variable of the caller's (e.g. PROBER_FUZZ_EXAMPLES) reaches the loader."""
    for name in list(os.environ):
        if name.upper().startswith("PROBER_"):
            monkeypatch.delenv(name)


def validate(text: str) -> ProberConfig | ConfigError:
    """What `prober validate` does in-process: load, and explain a valid config."""
    outcome = check_config_outcome(lambda: parse_config(text))
    event("valid config" if isinstance(outcome, ProberConfig) else "config error")
    if isinstance(outcome, ProberConfig):
        assert explain_config(outcome)
    return outcome


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False)


# ---------------------------------------------------------------------------- (a) raw input

_DEEP = "a: " + "[" * 10_000 + "]" * 10_000 + "\n"
_DEEP_MAPPING = "a: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"


@fuzz_settings(400)
@example("? [a]\n: 1\n")  # an unhashable (list) key
@example("? {a: 1}\n: 1\n")
@example("1: 2\n")  # a key that is no keyword
@example("null: 1\n")
@example("²: 1\n")  # a digit to str.isdigit that int() refuses
@example('"a\\nb": 1\n')  # a key holding a line break
@example('"\\u2028": 1\n')
@example(_DEEP)
@example(_DEEP_MAPPING)
@example("journeys: &a [*a]\n")  # a list that holds itself
@example("a: &a {b: *a}\n")
@example("!!python/object/apply:os.system ['true']\n")
@example("!!python/name:os.system\n")
@example("a: !!binary aGVsbG8=\na: 1\n")
@example("a: 1\na: 2\n")
@example("<<: {service: x}\n")
@example("\x00")
@example("\ufeffservice: x\n")
@example("%YAML 1.1\n--- a\n--- b\n")
@example("_cli_parse_args: true\n")  # pydantic-settings' own options are no config keys
@example("_env_file: /etc/hostname\n")
@example("_env_prefix: ''\n")
@example("slos: true\n")
@example("journeys: [{name: j, steps: [{name: s, url: '/${a}', capture: 5}]}]\n")
@example('journeys: [{name: j, steps: [{name: s, url: "${a\\nb}"}]}]\n')
@example('journeys: [{name: j, steps: [{name: s, url: /, query: {"\\x85": "${t}"}}]}]\n')
@example(
    "journeys: [{name: j, steps: [{name: s, url: /}]}]\n"
    "alerting: {rules: [{name: r, severity: info, journey: [j], when: 'changed(v)'}]}\n"
)
@example(
    "journeys: [{name: j, steps: [{name: s, url: /, capture: {1: json.x, b: json.y}}]}]\n"
    "alerting: {rules: [{name: r, severity: info, journey: j, when: 'changed(v)'}]}\n"
)
@example(
    "journeys: [{name: j, steps: [{name: s, url: /, capture: {v: json.v}}]}]\n"
    "alerting: {rules: [{name: r, severity: info, journey: j, when: 'changed(\n  v)', window: 1m}]}\n"
)
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    """Any text: a config or a ConfigError of `path: message` lines."""
    validate(text)


_YAML_ALPHABET = st.sampled_from(
    [*":-[]{},&*!|>'\"#%@`?<= \n\t\\$", "  ", "- ", ": ", "a", "1", "journeys", "steps"]
)


@fuzz_settings(400)
@given(st.lists(_YAML_ALPHABET, max_size=60).map("".join))
def test_yaml_dense_text(text: str) -> None:
    """Text made of YAML's syntax characters: a config or a ConfigError."""
    validate(text)


@fuzz_settings(150)
@example(b"service: \xff\xfe\n")
@example(b"service: a\x00b\n")
@example(b"\xef\xbb\xbfservice: x\n")
@example(b"\xfe\xff\x00s\x00e")  # UTF-16 byte order mark
@given(st.binary(max_size=200))
def test_arbitrary_bytes_in_a_file(tmp_path: Path, content: bytes) -> None:
    """Any bytes in a file (invalid UTF-8, NUL): load_config gives a config or a ConfigError."""
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    check_config_outcome(lambda: load_config(path))


def test_a_directory_or_a_missing_file(tmp_path: Path) -> None:
    """A directory or a missing path is a ConfigError naming it, not an OSError."""
    for path in (tmp_path, tmp_path / "missing.yaml"):
        outcome = check_config_outcome(lambda path=path: load_config(path))
        assert isinstance(outcome, ConfigError)
        assert outcome.issues[0].path == str(path)


# ---------------------------------------------------------------------------- (b) structure

_DURATION_KEYS = {
    "interval",
    "timeout",
    "window",
    "long",
    "short",
    "for",
    "latency_below",
    "evaluation_interval",
    "resend_interval",
    "repeat_interval",
    "backoff_initial",
    "backoff_max",
    "dead_letter_after",
    "settle",
    "max_p50",
    "max_p90",
    "max_p95",
    "max_p99",
}
_PERCENT_KEYS = {"objective", "jitter", "budget_consumed", "min_success_ratio"}
_TEMPLATE_KEYS = {"url", "json", "body", "webhook_url", "Authorization", "email", "password"}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _all_keys() -> list[str]:
    keys: set[str] = set()
    pending: list[type[BaseModel]] = [ProberConfig]
    while pending:
        model = pending.pop()
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
            stack = [info.annotation]
            while stack:
                annotation = stack.pop()
                nested = _model_of(annotation)
                if nested is not None and nested not in pending:
                    pending.append(nested)
                stack.extend(get_args(annotation))
    return sorted(keys)


SCHEMA_KEYS = _all_keys()
NAMES = st.sampled_from(
    ["healthcheck", "chat", "login", "health", "version", "tokens_used", "token", "x"]
) | st.text(max_size=12)
_SEVERITIES = st.sampled_from(["critical", "warning", "info", "page", ""])


def value_for(annotation: Any) -> st.SearchStrategy[Any]:
    """Values shaped by a field's type (with its validators), good and bad."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        base, *metadata = args
        for item in metadata:
            function = getattr(item, "func", None)
            if function is parse_duration:
                return durations
            if function is parse_percent:
                return percents
            if function is parse_size:
                return sizes
            if getattr(item, "pattern", None) is not None:
                return NAMES
        if base is Condition:
            return condition_lines
        if base is Subject:
            return subjects
        if base is Template:
            return templates | NAMES
        if base is RuleExpression:
            return when_lines
        if any(type(item).__name__ == "PlainValidator" for item in metadata):
            urls = st.sampled_from(["http://127.0.0.1:9093", "https://hooks.example.com/x", ""])
            return templates | urls | st.lists(templates | urls, max_size=3)
        return value_for(base)
    if origin in (Union, types.UnionType):
        return st.one_of([value_for(arg) for arg in args])
    if origin is tuple:
        return st.lists(value_for(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(NAMES, value_for(args[1]), max_size=3)
    if origin is Literal:
        return st.sampled_from(args) | _SEVERITIES
    if annotation is type(None):
        return st.none()
    model = _model_of(annotation)
    if model is not None:
        return model_document(model)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers(min_value=-10, max_value=70_000)
    if annotation is float:
        return st.floats() | st.integers()
    if annotation is str:
        return NAMES | st.sampled_from(["http://127.0.0.1:8000", "/nonexistent", "/etc/hostname"])
    return json_values


def _field_strategy(info: Any) -> st.SearchStrategy[Any]:
    annotation = info.annotation
    if info.metadata:
        annotation = Annotated[(annotation, *info.metadata)]
    return st.deferred(lambda: value_for(annotation) | value_for(annotation) | json_values)


def model_document(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping over the model's keys: required ones mostly present, the rest optional."""
    required, optional = {}, {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        (required if info.is_required() else optional)[key] = _field_strategy(info)
    return st.fixed_dictionaries(required, optional=optional)


@fuzz_settings(150)
@example(  # an unprintable journey name listed among the known ones
    {
        "journeys": [{"name": "healthcheck", "steps": []}, {"name": "\x1e", "steps": []}],
        "slos": [{"name": "a", "journey": "chat", "objective": "50%"}],
    }
)
@given(model_document(ProberConfig))
def test_documents_built_from_the_schema(document: dict[str, Any]) -> None:
    """A document over the schema's own keys, values of the right shape or not: a config
    or a ConfigError."""
    validate(dump(document))


_NOTIFIER_TYPES = st.sampled_from(["alertmanager", "slack", "webhook", "email", "pager", None])


@st.composite
def notifier_entries(draw: st.DrawFn) -> dict[str, Any]:
    from prober.config import Alerting

    notifier = draw(value_for(Alerting.model_fields["notifiers"].annotation))
    entry = dict(notifier[0]) if notifier and isinstance(notifier[0], dict) else {}
    entry["type"] = draw(_NOTIFIER_TYPES)
    return entry


def values_for_key(key: object) -> st.SearchStrategy[Any]:
    """A replacement value for a field named `key`: its kind of value or anything."""
    specific: list[st.SearchStrategy[Any]] = []
    if key in _DURATION_KEYS:
        specific.append(durations)
    if key in _PERCENT_KEYS:
        specific.append(percents)
    if key == "max_body_size":
        specific.append(sizes)
    if key in _TEMPLATE_KEYS or key in ("headers", "query"):
        specific.append(templates)
    if key == "expect":
        specific.append(st.lists(condition_lines, max_size=3))
    if key == "when":
        specific.append(when_lines)
    if key == "capture":
        specific.append(st.dictionaries(NAMES, subjects, max_size=2))
    if key == "notifiers":
        specific.append(st.lists(notifier_entries(), max_size=3))
    generic = st.one_of(
        json_values,
        durations,
        percents,
        templates,
        condition_lines,
        when_lines,
        NAMES,
        st.sampled_from([None, [], {}, "", 0, -1, 10**30, float("nan"), True]),
    )
    return st.one_of(*specific, *specific, generic) if specific else generic


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


_MUTATIONS = ["drop", "rename", "replace", "insert", "duplicate", "wrap", "stringify", "null"]


@st.composite
def mutated_examples(draw: st.DrawFn) -> Any:
    """An example config with one to four mutations."""
    document = copy.deepcopy(EXAMPLE_DOCUMENTS[draw(st.sampled_from(sorted(EXAMPLE_DOCUMENTS)))])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_paths(document))))
        mutation = draw(st.sampled_from(_MUTATIONS))
        if not path:
            if mutation == "replace":
                document = draw(json_values)
            continue
        parent, last = _at(document, path[:-1]), path[-1]
        node = parent[last]
        if mutation == "drop":
            del parent[last]
        elif mutation == "rename" and isinstance(parent, dict):
            new_key = draw(st.sampled_from(SCHEMA_KEYS) | odd_text | st.integers() | st.none())
            parent[new_key] = parent.pop(last)
        elif mutation == "replace":
            parent[last] = draw(values_for_key(last if isinstance(parent, dict) else path[-2]))
        elif mutation == "insert":
            if isinstance(node, list):
                node.insert(draw(st.integers(0, len(node))), draw(values_for_key(last)))
            elif isinstance(node, dict):
                node[draw(st.sampled_from(SCHEMA_KEYS) | NAMES)] = draw(values_for_key(last))
        elif mutation == "duplicate" and isinstance(node, list) and node:
            node.append(copy.deepcopy(node[draw(st.integers(0, len(node) - 1))]))
        elif mutation == "wrap":
            parent[last] = draw(st.sampled_from([[node], {"x": node}, {last: node}]))
        elif mutation == "stringify":
            parent[last] = json.dumps(node) if not isinstance(node, str) else [node]
        elif mutation == "null":
            parent[last] = None
    return document


def _changed(path: tuple[Any, ...], value: Any, drop: str | None = None) -> Any:
    """mirror-collective.yaml with the value at `path` replaced (and key `drop` beside it
    removed): a regression example for the mutation test."""
    document = copy.deepcopy(EXAMPLE_DOCUMENTS["mirror-collective.yaml"])
    parent = _at(document, path[:-1])
    parent[path[-1]] = value
    if drop is not None:
        del parent[drop]
    return document


_POLICY = ("alerting", "burn_rate_policies", 0)


@fuzz_settings(150)
@example(_changed((*_POLICY, "budget_consumed"), "0%"))  # validate: SLOError from the engine
@example(_changed((*_POLICY, "burn_rate"), 1e-300, drop="budget_consumed"))  # validate hung
@example(_changed((*_POLICY, "burn_rate"), float("inf"), drop="budget_consumed"))
@example(_changed(("slos", 0, "window"), 1e308))  # validate hung in resolution_table
@example(_changed(("defaults", "interval"), 1e-300))
@example(_changed(("slos", 0, "objective"), "99.9999999999999%"))
@example(_changed(("defaults", "max_requests_per_second"), float("inf")))
@given(mutated_examples())
def test_mutated_example_configs(document: Any) -> None:
    """The example configs, mutated: a config or a ConfigError of `path: message` lines."""
    validate(dump(document))


def test_the_unmutated_examples_are_valid() -> None:
    """The starting points of the mutations are themselves valid."""
    for text in EXAMPLE_TEXTS.values():
        config = check_config_outcome(lambda text=text: parse_config(text))
        assert isinstance(config, ProberConfig)
        assert explain_config(config)


# ---------------------------------------------------------------------------- (c) environment


def _environment_names() -> list[str]:
    names = ["PROBER_" + key.upper() for key in SCHEMA_KEYS]
    for name, info in ProberConfig.model_fields.items():
        model = _model_of(info.annotation) or next(
            (_model_of(arg) for arg in get_args(info.annotation) if _model_of(arg)), None
        )
        for field in model.model_fields if model else ():
            names.append(f"PROBER_{name.upper()}__{field.upper()}")
    return sorted(
        {
            *names,
            "PROBER_",
            "PROBER__",
            "PROBER___",
            "PROBER_TARGET__",
            "PROBER_TARGET____BASE_URL",
            "PROBER_TARGET__BASE_URL__X",
            "PROBER_TARGET__HEADERS__USER-AGENT",
            "PROBER_JOURNEYS__0__NAME",
            "PROBER_DEFAULTS__INTERVAL__",
            "prober_service",
            "Prober_Target__Base_Url",
            "PROBER_ALERTING__NOTIFIERS__0__TYPE",
        }
    )


ENVIRONMENT_NAMES = _environment_names()
_ENV_VALUES = st.one_of(
    env_text,
    json_values.map(json.dumps),
    model_document(ProberConfig).map(json.dumps),
    st.lists(notifier_entries(), max_size=2).map(json.dumps),
    durations.map(str),
    st.sampled_from(["", "{", "[", "null", "{}", "[]", '{"base_url": 1}', "[{}]", "1e999"]),
)


@fuzz_settings(80)
@example({"PROBER_JOURNEYS": "not json"})
@example({"PROBER_TARGET": "{bad"})
@example({"PROBER_TARGET__BASE_URL__X": "1"})
@example({"PROBER_ALERTING": '{"notifiers": [{"type": 1}]}'})
@example({"PROBER_JOURNEYS": "[" * 100_000})  # deeper than json.loads goes
@example({"PROBER_DEFAULTS": '{"interval": ' + "[" * 200 + "]" * 200 + "}"})
@given(st.dictionaries(st.sampled_from(ENVIRONMENT_NAMES), _ENV_VALUES, min_size=1, max_size=3))
def test_environment_overrides(environment: dict[str, str]) -> None:
    """Random `PROBER_*` overrides on the demo config: a config or a ConfigError."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        validate(DEMO)


# ---------------------------------------------------------------------------- nasty files


def _billion_laughs(where: str) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    laughs = "\n".join("  " + line for line in lines)
    return f"x-laughs:\n{laughs}\n" + DEMO.replace(
        'json: {message: "synthetic probe ${run_id}"}', f"json: {where}", 1
    )


NASTY_FILES: dict[str, bytes] = {
    "billion-laughs-in-json-body": _billion_laughs("*l9").encode(),
    "billion-laughs-in-expect": _billion_laughs("{a: 1}")
    .replace("expect: [status == 200, json.reply", "expect: *l9\n        x: [json.reply", 1)
    .encode(),
    "billion-laughs-in-headers": _billion_laughs("{a: 1}")
    .replace('headers: {Authorization: "Bearer ${token}"}', "headers: {a: *l9}", 1)
    .encode(),
    "recursive-alias-in-json-body": DEMO.replace(
        'json: {message: "synthetic probe ${run_id}"}', "json: &r {a: [*r]}", 1
    ).encode(),
    "deep-list": _DEEP.encode(),
    "deep-mapping": _DEEP_MAPPING.encode(),
    "deep-json-body": DEMO.replace(
        'json: {message: "synthetic probe ${run_id}"}', "json: " + "[" * 400 + "]" * 400, 1
    ).encode(),
    "python-object-tag": b"!!python/object/apply:os.system ['echo pwned']\n",
    "python-tag-in-a-field": DEMO.replace(
        "service: mirror-collective-api", "service: !!python/object/new:os.getcwd []", 1
    ).encode(),
    "invalid-utf8": b"service: \xff\xfe\x00\n" + DEMO.encode(),
    "nul-bytes": DEMO.encode().replace(b"healthcheck", b"health\x00check", 1),
    "duplicate-keys": (DEMO + "\nservice: again\n").encode(),
    "unhashable-key": b"? [a, b]\n: 1\n",
    "integer-keys": b"1: 2\n3: [4]\n",
    "huge-line": ("service: " + "a" * 500_000 + "\n").encode(),
    "many-journeys": (
        "journeys:\n" + "  - {name: j, steps: [{name: s, url: /, expect: [x]}]}\n" * 1000
    ).encode(),
}
#: Cases whose unbounded handling would take minutes or gigabytes: only ever run in a
#: subprocess with a time and memory limit, never in the test process.
EXPLOSIVE = {"billion-laughs-in-json-body", "billion-laughs-in-expect", "billion-laughs-in-headers"}
#: The handful `prober validate` runs on as a subprocess (each costs an interpreter start).
VALIDATED = sorted(EXPLOSIVE | {"recursive-alias-in-json-body", "deep-list"})
_MEMORY_LIMIT = 2 * 1024**3
_VALIDATE_TIMEOUT = 120.0


@pytest.mark.parametrize("name", sorted(set(NASTY_FILES) - EXPLOSIVE))
def test_nasty_files_in_process(tmp_path: Path, name: str) -> None:
    """Each nasty file loads to a config or a ConfigError (invalid, for all but a few)."""
    path = tmp_path / "config.yaml"
    path.write_bytes(NASTY_FILES[name])
    check_config_outcome(lambda: load_config(path))


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))


@pytest.mark.integration
def test_validate_nasty_files(tmp_path: Path) -> None:
    """`prober validate -c FILE` on a handful of nasty files, run side by side under a
    memory limit and a (generous) time limit: exit 2, `path: message` lines, no traceback."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PROBER_")}
    running = {}
    for name in VALIDATED:
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(NASTY_FILES[name])
        running[name] = subprocess.Popen(
            [sys.executable, "-m", "prober", "validate", "-c", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=REPO,
            preexec_fn=_limit_memory,
        )
    failures = []
    for name, process in running.items():
        try:
            _, stderr_bytes = process.communicate(timeout=_VALIDATE_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            failures.append(f"{name}: still running after {_VALIDATE_TIMEOUT:g}s")
            continue
        stderr = stderr_bytes.decode("utf-8", errors="replace")
        if process.returncode != 2 or "Traceback" in stderr:
            failures.append(f"{name}: exit {process.returncode}\n{stderr[-2000:]}")
            continue
        *issues, summary = stderr.splitlines()
        assert issues, name
        assert summary == f"prober: {len(issues)} config error(s)", (name, summary)
        for line in issues:
            path, _, message = line.partition(": ")
            assert path, (name, line)
            assert path == path.strip(), (name, line)
            assert message.strip(), (name, line)
    assert not failures, "\n".join(failures)
