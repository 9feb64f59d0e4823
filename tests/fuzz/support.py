"""What the fuzz tests share: their hypothesis settings, the config-outcome check, and
strategies for the little languages inside a config (durations, percentages, sizes,
`${...}` templates, `expect` conditions, `when` expressions).

The suite runs a fixed, derandomized set of examples in CI (~30 s in all). For a longer
hunt set `PROBER_FUZZ_EXAMPLES=N`: every fuzz test then runs N examples, random ones (a
failure prints the example and the blob to reproduce it).
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from prober.conditions import OPERATORS
from prober.config import ProberConfig
from prober.errors import ConfigError
from tests.conftest import PROPERTY_SETTINGS

FUZZ_EXAMPLES_ENV = "PROBER_FUZZ_EXAMPLES"
_SLOW_IS_FINE = [
    *PROPERTY_SETTINGS.suppress_health_check,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]


def fuzz_settings(examples: int) -> settings:
    """The project's property settings with `examples` examples (derandomized: the same
    every CI run), or `$PROBER_FUZZ_EXAMPLES` random ones when that is set."""
    wanted = os.environ.get(FUZZ_EXAMPLES_ENV)
    if wanted:
        return settings(
            PROPERTY_SETTINGS,
            max_examples=int(wanted),
            derandomize=False,
            print_blob=True,
            suppress_health_check=_SLOW_IS_FINE,
        )
    return settings(PROPERTY_SETTINGS, max_examples=examples, suppress_health_check=_SLOW_IS_FINE)


def check_config_outcome(load: Callable[[], ProberConfig]) -> ProberConfig | ConfigError:
    """Run a config load: it returns a config or raises a `ConfigError` whose every issue
    is one `path: message` line with a non-empty path. Anything else propagates (the bug)."""
    try:
        config = load()
    except ConfigError as caught:
        error = caught
    else:
        assert isinstance(config, ProberConfig)
        return config
    assert error.issues, "a ConfigError without issues"
    for issue in error.issues:
        line = str(issue)
        assert issue.path, f"no path in {line!r}"
        assert issue.path.strip() == issue.path, f"bad path in {line!r}"
        assert issue.message.strip(), f"empty message in {line!r}"
        assert line == f"{issue.path}: {issue.message}", line
        assert line.splitlines() == [line], f"an issue spans lines: {line!r}"
    assert str(error).splitlines() == [str(issue) for issue in error.issues]
    return error


# ---------------------------------------------------------------------------- values

#: Any character, even the ones YAML, JSON and terminals dislike.
odd_text = st.text(
    st.characters(codec="utf-8") | st.sampled_from("\x00\n\r\t\u2028\x85\ufeff"),
    max_size=30,
)
#: Text that can be put in the environment (no NUL, no lone surrogate).
env_text = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40
)

_HUGE_DIGITS = "9" * 5000
_number_texts = st.sampled_from(
    [
        "0",
        "-1",
        "1e999",
        "-1e999",
        "nan",
        "NaN",
        ".nan",
        "inf",
        "-inf",
        ".inf",
        "1_000",
        "0x1F",
        "1e-400",
        _HUGE_DIGITS,
        "0." + "0" * 400 + "1",
        "9" * 400,
    ]
)

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and the infinities included
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | numbers | odd_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

_DURATION_UNITS = ["ms", "s", "m", "h", "d", "w", "", "us", "y", "M", "S"]
durations = st.one_of(
    st.builds(
        lambda number, unit: f"{number}{unit}",
        st.integers(min_value=-5, max_value=10**30) | st.floats(allow_nan=True),
        st.sampled_from(_DURATION_UNITS),
    ),
    st.lists(
        st.builds(
            lambda number, unit: f"{number}{unit}",
            st.integers(min_value=0, max_value=1000),
            st.sampled_from(_DURATION_UNITS),
        ),
        min_size=2,
        max_size=4,
    ).map("".join),
    st.builds(lambda digits, unit: digits + unit, _number_texts, st.sampled_from(_DURATION_UNITS)),
    numbers,
    st.text("0123456789.mshdw -+e_", max_size=12),
)

percents = st.one_of(
    st.builds(
        lambda number, sign: f"{number}{sign}",
        st.floats() | st.integers(min_value=-200, max_value=200),
        st.sampled_from(["%", "", " %", "%%"]),
    ),
    st.builds(lambda digits: digits + "%", _number_texts),
    _number_texts,
    numbers,
)

sizes = st.one_of(
    st.builds(
        lambda number, unit: f"{number}{unit}",
        st.integers(min_value=-5, max_value=10**20) | st.floats(),
        st.sampled_from(["", "b", "kb", "KiB", "MiB", "gib", " mb", "tb", "B"]),
    ),
    st.builds(lambda digits: digits + "MiB", _number_texts),
    numbers,
)

_TEMPLATE_BODIES = st.one_of(
    st.sampled_from(
        [
            "token",
            "run_id",
            "uuid",
            "timestamp",
            "env.HOME",
            "secret.PASSWORD",
            "env.",
            "secret.1X",
            "env.A.B",
            "",
            " ",
            "a b",
            "${a}",
            "a\nb",
            "tokens_used",
            "version",
        ]
    ),
    odd_text,
)
_TEMPLATE_PIECES = st.one_of(
    st.builds(lambda body: "${" + body + "}", _TEMPLATE_BODIES),
    st.sampled_from(["$${", "${", "}", "$", "$$", "${unclosed", "${{a}}", "{{ .Values.x }}"]),
    st.text(max_size=8),
)
templates = st.lists(_TEMPLATE_PIECES, max_size=5).map("".join)


# ---------------------------------------------------------------------------- conditions

_JSONPATH_SEGMENTS = st.one_of(
    st.sampled_from(
        [
            ".status",
            ".data",
            ".items",
            "[0]",
            "[-1]",
            "[*]",
            ".*",
            "..token",
            "..*",
            "[0:2]",
            "[::-1]",
            "[0, 1]",
            "['a b']",
            '["x"]',
            "[?@.id == 7]",
            "[?@.id > 1 && @.name]",
            "[?length(@) > 1]",
            "[?count(@.*) == 2]",
            "[?match(@.name, 'a.*')]",
            "[?search(@, '(')]",
            "[?value(@..x) == 1]",
            "[?@.x == 1e999]",
            f"[{_HUGE_DIGITS}]",
            "[" + "9" * 30 + "]",
            "[1:" + "9" * 30 + ":0]",
            "[",
            "]",
            "[?",
            "['unclosed",
            ".",
            "..",
            "[?(@.a)]",
            "[?@.a == $.b]",
        ]
    ),
    st.builds(
        lambda name: "." + name, st.text(string.ascii_letters + "_-0", min_size=1, max_size=6)
    ),
    st.builds(lambda index: f"[{index}]", st.integers()),
    st.builds(
        lambda start, end, step: f"[{start}:{end}:{step}]",
        st.integers(-3, 3) | st.just(""),
        st.integers(-3, 3) | st.just(""),
        st.integers(-2, 2) | st.just(""),
    ),
    odd_text.map(lambda text: f"[{text}]"),
)
json_subjects = st.lists(_JSONPATH_SEGMENTS, max_size=4).map(lambda parts: "json" + "".join(parts))

subjects = st.one_of(
    st.sampled_from(
        [
            "status",
            "latency",
            "body",
            "json",
            "header.content-type",
            "header.X-Count",
            "header.",
            "header.a b",
            "headers.x",
            "Status",
            "json.",
            "json[",
            "",
        ]
    ),
    json_subjects,
    st.builds(lambda name: "header." + name, st.text(max_size=10)),
)

#: Regular expressions, many of them broken or costly.
regexes = st.one_of(
    st.sampled_from(
        [
            "json",
            "^ok$",
            "(",
            ")",
            "[a-",
            "a{99999999999}",
            "a{2,1}",
            "(?P<x>a)(?P<x>b)",
            "\\",
            "\\p{L}",
            "(?<=a+)b",
            "*",
            "(?",
            "x" * 1000,
            "\x00",
        ]
    ),
    st.text(max_size=12),
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


literal_values = st.one_of(
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
    regexes.map(json.dumps),
    durations.map(str),
    _number_texts,
    st.sampled_from(
        [
            '"unbalanced',
            "'single",
            '"a" "b"',
            "[1, 2",
            "1, 2]",
            "{a: 1",
            "{a: 1, a: 2}",
            "2024-01-01",
            "!!timestamp 2024-01-01",
            "!!binary aGVsbG8=",
            "!!python/object:os.system {}",
            "!!python/name:os.system",
            "!!set {a, b}",
            "!!omap [a: 1]",
            "!!pairs [a: 1]",
            "!!str",
            "!!null",
            "!!float nan",
            "!foo bar",
            "&a [1, *a]",
            "*undefined",
            "&a [1, 2]",
            "[&a [1, 2], *a, *a]",
            "#fff",
            "x #comment",
            "--- # doc",
            "...",
            "|\n  block",
            "? a",
            "true",
            "null",
            "~",
            "yes",
            "\x00",
            "\ufeff1",
            _nested(50),
            _nested(2000),
            "[" * 2000,
            "{a: " * 300 + "1" + "}" * 300,
        ]
    ),
    odd_text,
)

_OPERATOR_TEXTS = [*OPERATORS, "exists", "not exists", "=~", "=", "===", "<>", "", "not", "!"]
operators = st.sampled_from(_OPERATOR_TEXTS)


@st.composite
def mutated(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> str:
    """A text with a few character edits: odd unicode inserted, characters dropped or
    doubled (an unbalanced quote or bracket)."""
    text = draw(texts)
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "drop", "double", "bracket"]))
        if edit == "insert":
            text = text[:position] + draw(odd_text.filter(bool)) + text[position:]
        elif edit == "drop" and position < len(text):
            text = text[:position] + text[position + 1 :]
        elif edit == "double" and position < len(text):
            text = text[: position + 1] + text[position:]
        elif edit == "bracket":
            text = text[:position] + draw(st.sampled_from("[]{}()'\"`\\")) + text[position:]
    return text


condition_lines = mutated(
    st.one_of(
        st.builds(lambda s, o, v: f"{s} {o} {v}", subjects, operators, literal_values),
        st.builds(lambda s, o: f"{s} {o}", subjects, st.sampled_from(["exists", "not exists"])),
        st.builds(
            lambda s, o, r: f"{s} {o} {json.dumps(r)}",
            subjects,
            st.sampled_from(["matches", "==", "contains"]),
            regexes,
        ),
        st.builds(
            lambda s, o, v: f"{s} {o} {v}",
            st.just("latency"),
            operators,
            durations.map(str),
        ),
    )
)


# ---------------------------------------------------------------------------- when lines

_RULE_SUBJECTS = st.one_of(
    st.sampled_from(
        [
            "error_ratio",
            "p50",
            "p90",
            "p95",
            "p99",
            "p0",
            "p100",
            "p095",
            "p" + "9" * 30,
            "status_ratio(429)",
            "status_ratio(99999)",
            "status_ratio()",
            "status_ratio(4xx)",
            "status_ratio",
            "avg(tokens_used)",
            "max(queue_depth)",
            "sum(retries)",
            "avg()",
            "avg(a b)",
            "avg((x))",
            "changed(version)",
            "changed()",
            "changed(version) > 1",
            "error_ratio(1)",
            "foo(x)",
            "rate",
            "",
        ]
    ),
    st.builds(
        lambda function, argument: f"{function}({argument})",
        st.sampled_from(["avg", "max", "sum", "changed", "status_ratio"]),
        odd_text,
    ),
)
_RULE_COMPARATORS = st.sampled_from([">", ">=", "<", "<=", "==", "!=", "=<", "=>", ">>", "", "<>"])
_RULE_VALUES = st.one_of(
    percents.map(str),
    durations.map(str),
    _number_texts,
    st.floats().map(str),
    st.integers().map(str),
    odd_text,
)
when_lines = mutated(
    st.one_of(
        st.builds(lambda s, c, v: f"{s} {c} {v}", _RULE_SUBJECTS, _RULE_COMPARATORS, _RULE_VALUES),
        _RULE_SUBJECTS,
    )
)
