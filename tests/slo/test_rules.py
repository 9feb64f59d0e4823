"""Threshold-rule expressions (`slo.rules`): parsing, errors, evaluation, `changed`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slo.rules import (
    RuleExpression,
    RuleSyntaxError,
    RuleValue,
    RunSample,
    WindowData,
    capture_number,
    is_changed,
    nearest_rank,
    parse_rule_expression,
    summarize,
)

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)

VALID = [
    ("error-ratio-percent", "error_ratio > 90%", ("error_ratio", "error_ratio", None, ">", 0.9)),
    (
        "error-ratio-fraction",
        "error_ratio >= 0.05",
        ("error_ratio", "error_ratio", None, ">=", 0.05),
    ),
    (
        "error-ratio-decimal-percent",
        "error_ratio > 0.5%",
        ("error_ratio", "error_ratio", None, ">", 0.005),
    ),
    ("error-ratio-hundred", "error_ratio < 100%", ("error_ratio", "error_ratio", None, "<", 1.0)),
    ("p50-ms", "p50 > 500ms", ("quantile", "p50", 50, ">", 0.5)),
    ("p90-minutes", "p90 >= 1m", ("quantile", "p90", 90, ">=", 60.0)),
    ("p95-seconds", "p95 > 2s", ("quantile", "p95", 95, ">", 2.0)),
    ("p99-compound", "p99 > 1m30s", ("quantile", "p99", 99, ">", 90.0)),
    ("p99-bare-seconds", "p99 <= 1.5", ("quantile", "p99", 99, "<=", 1.5)),
    ("status-ratio-zero", "status_ratio(429) > 0", ("status_ratio", "status_ratio", 429, ">", 0.0)),
    (
        "status-ratio-percent",
        "status_ratio(503) >= 10%",
        ("status_ratio", "status_ratio", 503, ">=", 0.1),
    ),
    (
        "status-ratio-spaces",
        "status_ratio( 404 ) > 0",
        ("status_ratio", "status_ratio", 404, ">", 0.0),
    ),
    ("avg", "avg(tokens_used) > 500", ("aggregate", "avg", "tokens_used", ">", 500.0)),
    ("max-decimal", "max(queue.depth) >= 10.5", ("aggregate", "max", "queue.depth", ">=", 10.5)),
    ("sum-negative", "sum(delta-x) < -3", ("aggregate", "sum", "delta-x", "<", -3.0)),
    ("sum-exponent", "sum(bytes) > 1e6", ("aggregate", "sum", "bytes", ">", 1e6)),
    ("changed", "changed(version)", ("changed", "changed", "version", None, None)),
    ("changed-spaces", "  changed( version )  ", ("changed", "changed", "version", None, None)),
    ("no-spaces", "error_ratio>5%", ("error_ratio", "error_ratio", None, ">", 0.05)),
    ("space-before-paren", "avg (tokens) > 1", ("aggregate", "avg", "tokens", ">", 1.0)),
]


@pytest.mark.parametrize(("text", "expected"), [v[1:] for v in VALID], ids=[v[0] for v in VALID])
def test_parse_valid(text: str, expected: tuple[object, ...]) -> None:
    """Each valid expression parses into its kind, function, argument, comparator, threshold."""
    parsed = parse_rule_expression(text)
    assert (
        parsed.kind,
        parsed.function,
        parsed.argument,
        parsed.comparator,
        parsed.threshold,
    ) == expected
    assert parsed.text == text.strip()


INVALID = [
    ("empty", "", "empty expression: e.g. 'error_ratio > 5%'"),
    ("blank", "   ", "empty expression: e.g. 'error_ratio > 5%'"),
    ("not-text", 5, "expected an expression such as 'error_ratio > 5%', got 5"),
    (
        "unknown-function",
        "min(latency) > 1",
        "unknown function 'min': expected status_ratio(CODE), avg(CAPTURE), max(CAPTURE), sum(CAPTURE) or changed(CAPTURE)",
    ),
    (
        "unknown-metric",
        "errors > 5",
        "unknown metric 'errors': expected error_ratio, p50, p90, p95, p99, status_ratio(CODE), avg(CAPTURE), max(CAPTURE), sum(CAPTURE) or changed(CAPTURE)",
    ),
    (
        "unreadable-subject",
        "123 > 4",
        "cannot read '123': expected error_ratio, p50, p90, p95, p99, status_ratio(CODE), avg(CAPTURE), max(CAPTURE), sum(CAPTURE) or changed(CAPTURE)",
    ),
    (
        "missing-comparator",
        "error_ratio",
        "missing comparator after 'error_ratio': use >, >=, < or <=, e.g. 'error_ratio > 5%'",
    ),
    (
        "missing-comparator-with-value",
        "error_ratio 5%",
        "missing comparator between 'error_ratio' and '5%': use >, >=, < or <=",
    ),
    (
        "missing-comparator-unknown-subject",
        "errors 5%",
        "unknown metric 'errors': expected error_ratio, p50, p90, p95, p99, status_ratio(CODE), avg(CAPTURE), max(CAPTURE), sum(CAPTURE) or changed(CAPTURE)",
    ),
    ("missing-value", "error_ratio >", "missing value after '>': e.g. 'error_ratio > 5%'"),
    ("missing-subject", "> 5%", "missing subject before '>': e.g. 'error_ratio > 5%'"),
    ("equals", "error_ratio == 5%", "unsupported comparator '==': use >, >=, < or <="),
    ("not-equals", "p95 != 2s", "unsupported comparator '!=': use >, >=, < or <="),
    ("reversed", "error_ratio => 5%", "unsupported comparator '=>': use >, >=, < or <="),
    (
        "bad-percentage",
        "error_ratio > 5x%",
        "invalid percentage '5x%': expected e.g. '5%' or a fraction such as 0.05",
    ),
    (
        "percentage-over-100",
        "error_ratio > 150%",
        "invalid percentage '150%': must lie between 0% and 100% (a bare number is a fraction: 0.05 means 5%)",
    ),
    (
        "fraction-over-1",
        "error_ratio > 5",
        "invalid percentage '5': must lie between 0% and 100% (a bare number is a fraction: 0.05 means 5%)",
    ),
    (
        "negative-ratio",
        "status_ratio(429) > -1%",
        "invalid percentage '-1%': expected e.g. '5%' or a fraction such as 0.05",
    ),
    ("unknown-quantile", "p42 > 1s", "unknown quantile 'p42': use p50, p90, p95 or p99"),
    ("padded-quantile", "p095 > 1s", "unknown quantile 'p095': use p50, p90, p95 or p99"),
    ("quantile-argument", "p95(x) > 1s", "p95 takes no argument: write 'p95 > ...'"),
    (
        "error-ratio-argument",
        "error_ratio(login) > 1%",
        "error_ratio takes no argument: write 'error_ratio > ...'",
    ),
    (
        "bad-duration",
        "p95 > fast",
        "invalid duration 'fast': use a number and a unit (ms, s, m, h, d, w), e.g. '2s'",
    ),
    (
        "duration-nan",
        "p95 > nan",
        "invalid duration 'nan': use a number and a unit (ms, s, m, h, d, w), e.g. '2s'",
    ),
    (
        "duration-percentage",
        "p95 > 5%",
        "invalid duration '5%': use a number and a unit (ms, s, m, h, d, w), e.g. '2s'",
    ),
    (
        "changed-with-comparator",
        "changed(version) > 0",
        "changed(version) takes no comparator: it fires once when the captured value differs from the previous run's",
    ),
    ("changed-without-argument", "changed", "changed needs an argument: changed(CAPTURE)"),
    ("aggregate-without-argument", "avg > 500", "avg needs an argument: avg(CAPTURE)"),
    (
        "aggregate-empty-argument",
        "avg() > 500",
        "avg needs a capture name (letters, digits, '_', '.', ':', '-'), got ''",
    ),
    (
        "aggregate-bad-name",
        "sum(a b) > 1",
        "sum needs a capture name (letters, digits, '_', '.', ':', '-'), got 'a b'",
    ),
    (
        "aggregate-percentage",
        "avg(tokens) > 5%",
        "invalid number '5%' for avg(tokens): a capture is compared with a plain number such as 500",
    ),
    (
        "aggregate-duration",
        "max(t) > 2s",
        "invalid number '2s' for max(t): a capture is compared with a plain number such as 500",
    ),
    (
        "aggregate-nan",
        "max(t) > nan",
        "invalid number 'nan' for max(t): a capture is compared with a plain number such as 500",
    ),
    ("aggregate-overflow", "sum(t) > 1e999", "invalid number '1e999': too large"),
    (
        "status-not-a-code",
        "status_ratio(abc) > 0",
        "status_ratio needs an HTTP status code from 100 to 599, got 'abc'",
    ),
    (
        "status-out-of-range",
        "status_ratio(700) > 0",
        "status_ratio needs an HTTP status code from 100 to 599, got '700'",
    ),
    (
        "status-without-argument",
        "status_ratio > 0",
        "status_ratio needs an argument: status_ratio(CODE)",
    ),
    (
        "nested-parens",
        "avg((x)) > 1",
        "cannot read 'avg((x))': expected error_ratio, p50, p90, p95, p99, status_ratio(CODE), avg(CAPTURE), max(CAPTURE), sum(CAPTURE) or changed(CAPTURE)",
    ),
]


@pytest.mark.parametrize(("text", "message"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_parse_invalid(text: object, message: str) -> None:
    """Each unreadable expression raises RuleSyntaxError with an operator-readable message."""
    with pytest.raises(RuleSyntaxError) as raised:
        parse_rule_expression(text)
    assert str(raised.value) == message


def test_rule_syntax_error_is_value_error() -> None:
    """The config loader can catch it as a ValueError, like the other field validators."""
    assert issubclass(RuleSyntaxError, ValueError)


WINDOW = WindowData(
    runs=20,
    failures=3,
    durations=[float(n) / 10 for n in range(1, 18)],  # 0.1 .. 1.7, 17 successful runs
    status_counts={200: 17, 503: 2, 429: 1},
    captures={"tokens": [100.0, 300.0, 800.0], "empty": []},
)

EVALUATIONS = [
    # name, expression, data, expected (active, value)
    ("error-ratio-above", "error_ratio > 10%", WINDOW, (True, 0.15)),
    ("error-ratio-equal-is-not-above", "error_ratio > 15%", WINDOW, (False, 0.15)),
    ("error-ratio-equal-meets-at-least", "error_ratio >= 15%", WINDOW, (True, 0.15)),
    ("error-ratio-below", "error_ratio < 20%", WINDOW, (True, 0.15)),
    ("error-ratio-all-failed", "error_ratio > 90%", WindowData(runs=4, failures=4), (True, 1.0)),
    ("error-ratio-no-failures", "error_ratio > 0", WindowData(runs=4, failures=0), (False, 0.0)),
    # nearest rank over 17 durations: p50 → rank 9 (0.9), p90 → rank 16 (1.6),
    # p95 → rank 17 (1.7), p99 → rank 17 (1.7)
    ("p50", "p50 > 0.8", WINDOW, (True, 0.9)),
    ("p90", "p90 > 1.6", WINDOW, (False, 1.6)),
    ("p95", "p95 >= 1700ms", WINDOW, (True, 1.7)),
    ("p99", "p99 < 2s", WINDOW, (True, 1.7)),
    ("p95-single", "p95 > 2s", WindowData(runs=1, durations=[2.5]), (True, 2.5)),
    ("quantile-only-failures", "p95 > 0", WindowData(runs=3, failures=3), (False, None)),
    ("status-ratio-present", "status_ratio(429) > 0", WINDOW, (True, 0.05)),
    ("status-ratio-share", "status_ratio(503) >= 10%", WINDOW, (True, 0.1)),
    ("status-ratio-absent-is-zero", "status_ratio(500) > 0", WINDOW, (False, 0.0)),
    ("status-ratio-absent-below", "status_ratio(500) < 1%", WINDOW, (True, 0.0)),
    ("avg-equal-is-not-above", "avg(tokens) > 400", WINDOW, (False, 400.0)),  # (100+300+800)/3
    ("max", "max(tokens) >= 800", WINDOW, (True, 800.0)),
    ("sum", "sum(tokens) > 1000", WINDOW, (True, 1200.0)),
    ("aggregate-no-values", "avg(empty) > 0", WINDOW, (False, None)),
    ("aggregate-missing-capture", "sum(absent) < 1", WINDOW, (False, None)),
    ("no-runs", "error_ratio < 1%", WindowData(runs=0), (False, None)),
    ("no-runs-quantile", "p95 < 10s", WindowData(runs=0, durations=[0.1]), (False, None)),
    (
        "changed-yes",
        "changed(version)",
        WindowData(runs=1, changed_captures=frozenset({"version"})),
        (True, 1.0),
    ),
    (
        "changed-no",
        "changed(version)",
        WindowData(runs=1, changed_captures=frozenset({"build"})),
        (False, 0.0),
    ),
    (
        "changed-ignores-runs",
        "changed(version)",
        WindowData(runs=0, changed_captures=frozenset({"version"})),
        (True, 1.0),
    ),
]


@pytest.mark.parametrize(
    ("text", "data", "expected"), [e[1:] for e in EVALUATIONS], ids=[e[0] for e in EVALUATIONS]
)
def test_evaluate(text: str, data: WindowData, expected: tuple[bool, float | None]) -> None:
    """Each expression over hand-computed window data gives the expected activity and value."""
    result = parse_rule_expression(text).evaluate(data)
    assert result == RuleValue(*expected)


EXPLAINED = [
    ("ratio", "error_ratio > 10%", WINDOW, "error_ratio (15%) > 10%"),
    ("quantile", "p95 > 2s", WINDOW, "p95 (1.7s) > 2s"),
    ("status", "status_ratio(429) > 0", WINDOW, "status_ratio(429) (5%) > 0%"),
    ("aggregate", "sum(tokens) >= 1000", WINDOW, "sum(tokens) (1200) >= 1000"),
    ("no-data", "p99 > 500ms", WindowData(runs=0), "p99 (no data) > 0.5s"),
    (
        "changed",
        "changed(version)",
        WindowData(runs=1, changed_captures=frozenset({"version"})),
        "changed(version) (changed)",
    ),
    ("unchanged", "changed(version)", WindowData(runs=1), "changed(version) (unchanged)"),
]


@pytest.mark.parametrize(
    ("text", "data", "expected"), [e[1:] for e in EXPLAINED], ids=[e[0] for e in EXPLAINED]
)
def test_explain(text: str, data: WindowData, expected: str) -> None:
    """The explanation shows the resolved value inline, for annotations and logs."""
    expression = parse_rule_expression(text)
    assert expression.explain(expression.evaluate(data)) == expected


PROPERTIES = [
    ("error-ratio", "error_ratio > 5%", True, False, None),
    ("quantile", "p95 > 2s", True, False, None),
    ("status", "status_ratio(429) > 0", True, False, None),
    ("aggregate", "avg(tokens_used) > 500", True, False, "tokens_used"),
    ("changed", "changed(version)", False, True, "version"),
]


@pytest.mark.parametrize(
    ("text", "windowed", "one_shot", "capture"),
    [p[1:] for p in PROPERTIES],
    ids=[p[0] for p in PROPERTIES],
)
def test_expression_properties(
    text: str, windowed: bool, one_shot: bool, capture: str | None
) -> None:
    """What the config loader needs: whether a window applies, one-shot, the capture read."""
    expression = parse_rule_expression(text)
    assert (expression.windowed, expression.one_shot, expression.capture) == (
        windowed,
        one_shot,
        capture,
    )


def test_expressions_equal_whatever_the_spelling() -> None:
    """The parsed structure, not the text, decides equality: `5%` and `0.05` are one rule."""
    assert parse_rule_expression("error_ratio > 5%") == parse_rule_expression("error_ratio>0.05")
    assert isinstance(parse_rule_expression("p95 > 2s"), RuleExpression)


RANKS = [
    ("empty", [], 95, None),
    ("one", [3.0], 50, 3.0),
    ("unsorted", [3.0, 1.0, 2.0], 50, 2.0),
    ("p50-even", [1.0, 2.0, 3.0, 4.0], 50, 2.0),
    ("p95-of-20-is-19th", [float(n) for n in range(1, 21)], 95, 19.0),
    ("p99-of-100-is-99th", [float(n) for n in range(1, 101)], 99, 99.0),
    ("p90-of-10-is-9th", [float(n) for n in range(1, 11)], 90, 9.0),
    ("p99-of-10-is-max", [float(n) for n in range(1, 11)], 99, 10.0),
]


@pytest.mark.parametrize(
    ("values", "percentile", "expected"), [r[1:] for r in RANKS], ids=[r[0] for r in RANKS]
)
def test_nearest_rank(values: list[float], percentile: int, expected: float | None) -> None:
    """Nearest rank: the smallest value with at least that percentage at or below it."""
    assert nearest_rank(values, percentile) == expected


@PROPERTY
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.sampled_from([50, 90, 95, 99]))
def test_nearest_rank_is_a_member_with_enough_below(values: list[float], percentile: int) -> None:
    """The result is one of the values, with at least p% of values at or below it, and is the
    smallest such value."""
    result = nearest_rank(values, percentile)
    assert result in values
    assert sum(v <= result for v in values) * 100 >= percentile * len(values)
    assert sum(v < result for v in values) * 100 < percentile * len(values)


def test_summarize() -> None:
    """Runs become counts: durations of successful runs only, each status once per run,
    numeric captures only."""
    samples = [
        RunSample(True, 0.4, [200, 200], {"tokens": 120, "version": "1.4.2"}),
        RunSample(False, 10.0, [200, 429, 429], {"tokens": "x"}),
        RunSample(True, 0.6, [200], {"tokens": "380", "flag": True}),
        RunSample(True, None, [], {}),
        RunSample(False),
    ]
    data = summarize(samples)
    assert data == WindowData(
        runs=5,
        failures=2,
        durations=(0.4, 0.6),
        status_counts={200: 3, 429: 1},
        captures={"tokens": (120.0, 380.0)},
    )
    assert parse_rule_expression("status_ratio(429) >= 20%").evaluate(data) == RuleValue(True, 0.2)


def test_summarize_nothing_is_no_data() -> None:
    """An empty window evaluates to no data."""
    data = summarize([])
    assert data == WindowData(runs=0)
    assert parse_rule_expression("error_ratio < 1%").evaluate(data) == RuleValue(False, None)


CAPTURE_NUMBERS = [
    ("int", 512, 512.0),
    ("float", 0.25, 0.25),
    ("numeric-text", " 512 ", 512.0),
    ("negative-text", "-1.5", -1.5),
    ("exponent-text", "1e3", 1000.0),
    ("bool-is-not-a-number", True, None),
    ("text", "1.4.2", None),
    ("nan-text", "nan", None),
    ("nan", float("nan"), None),
    ("infinity", float("inf"), None),
    ("none", None, None),
    ("list", [1], None),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in CAPTURE_NUMBERS], ids=[c[0] for c in CAPTURE_NUMBERS]
)
def test_capture_number(value: object, expected: float | None) -> None:
    """Numbers and numeric text count; anything else is skipped, never read as 0."""
    assert capture_number(value) == expected


CHANGES = [
    ("first-value-is-not-a-change", None, "1.4.2", False),
    ("missing-value-is-not-a-change", "1.4.2", None, False),
    ("same", "1.4.2", "1.4.2", False),
    ("different", "1.4.2", "1.4.3", True),
    ("int-and-float-equal", 1, 1.0, False),
    ("bool-is-not-int", 1, True, True),
    ("number-and-text-differ", 1, "1", True),
    ("lists", [1, 2], [1, 2], False),
]


@pytest.mark.parametrize(
    ("previous", "current", "expected"), [c[1:] for c in CHANGES], ids=[c[0] for c in CHANGES]
)
def test_is_changed(previous: object, current: object, expected: bool) -> None:
    """A change is two known values that differ."""
    assert is_changed(previous, current) is expected


WINDOW_ERRORS = [
    ("negative-runs", -1, 0),
    ("failures-over-runs", 2, 3),
    ("negative-failures", 2, -1),
]


@pytest.mark.parametrize(
    ("runs", "failures"), [w[1:] for w in WINDOW_ERRORS], ids=[w[0] for w in WINDOW_ERRORS]
)
def test_window_data_refuses_impossible_counts(runs: int, failures: int) -> None:
    """Counts that cannot describe a window are a caller's bug, refused at construction."""
    with pytest.raises(ValueError, match="failures <= runs"):
        WindowData(runs, failures)


def test_window_data_copies_its_inputs() -> None:
    """A caller reusing its lists cannot change window data already built."""
    durations = [1.0]
    captures = {"tokens": [1.0]}
    data = WindowData(runs=1, durations=durations, captures=captures)
    durations.append(99.0)
    captures["tokens"].append(99.0)
    assert data.durations == (1.0,)
    assert data.captures["tokens"] == (1.0,)
