"""Config loading: every error kind reported as `path: message`, all at once;
environment overrides; defaults inherited."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from prober.config import DEFAULT_BURN_RATE_POLICIES, load_config, parse_config
from prober.errors import ConfigError
from tests.conftest import CONFIG_DIR

VALID = """
service: svc
journeys:
  - name: health
    steps:
      - name: get
        url: /health
        expect: [status == 200]
"""


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text))
    return [str(issue) for issue in caught.value.issues]


def step_config(step_yaml: str, extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(step_yaml).strip(), " " * 6)
    return f"journeys:\n  - name: j\n    steps:\n{body}\n{textwrap.dedent(extra)}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            step_config(
                "- name: s\n  url: /\n  expect: [status == 200, body contains x, status =~ 3]"
            ),
            "journeys[0].steps[0].expect[2]: unknown operator '=~'",
        ),
        (
            step_config("- name: s\n  url: /\n  timout: 3s"),
            "journeys[0].steps[0].timout: unknown key 'timout' (did you mean 'timeout'?)",
        ),
        (
            "servce: x\n" + step_config("- name: s\n  url: /"),
            "servce: unknown key 'servce' (did you mean 'service'?)",
        ),
        (
            step_config("- name: s\n  url: /\n  timeout: 3 seconds"),
            "journeys[0].steps[0].timeout: invalid duration '3 seconds'",
        ),
        (
            step_config("- name: s\n  url: /", "slos: [{name: a, journey: jj, objective: 99%}]"),
            "slos[0].journey: unknown journey 'jj' (did you mean 'j'?)",
        ),
        (
            step_config("- name: s\n  url: /", "slos: [{name: a, journey: j, objective: 100%}]"),
            "slos[0].objective: objective must lie strictly between 0% and 100%",
        ),
        (
            step_config("- name: s\n  url: /", "slos: [{name: a, journey: j, objective: 0%}]"),
            "slos[0].objective: objective must lie strictly between 0% and 100%",
        ),
        (
            step_config("- name: s\n  url: /", "slos: [{name: a, journey: j, objective: 120%}]"),
            "slos[0].objective: invalid percentage '120%'",
        ),
        (
            step_config("- name: s\n  url: /\n  headers: {Authorization: 'Bearer ${token}'}"),
            "journeys[0].steps[0].headers.Authorization: unknown variable ${token}: no earlier step captures it",
        ),
        (
            step_config("- name: s\n  url: /x/${id}\n  capture: {id: json.id}"),
            "journeys[0].steps[0].url: unknown variable ${id}: it is captured by this same step",
        ),
        (
            step_config("- name: s\n  url: /\n  json: {a: [1, '${oops']}"),
            "journeys[0].steps[0].json: unclosed '${'",
        ),
        (
            step_config("- name: s\n  url: /\n- name: s\n  url: /"),
            "journeys[0].steps[1].name: duplicate step name 's'",
        ),
        (
            step_config("- name: s\n  url: /\n  method: FETCH"),
            "journeys[0].steps[0].method: unknown HTTP method 'FETCH'",
        ),
        (
            step_config("- name: s\n  url: /\n  capture: {v: jsn.version}"),
            "journeys[0].steps[0].capture.v: unknown subject 'jsn.version'",
        ),
        (
            step_config("- name: s\n  url: /", "target: {tls_ca_file: /nonexistent/ca.pem}"),
            "target.tls_ca_file: no such file '/nonexistent/ca.pem'",
        ),
        (
            step_config(
                "- name: s\n  url: /",
                "alerting: {notifiers: [{type: webhook, url: 'http://h/', tls_ca_file: /no/ca.pem}]}",
            ),
            "alerting.notifiers[0].tls_ca_file: no such file '/no/ca.pem'",
        ),
        (
            step_config(
                "- name: s\n  url: /",
                "slos: [{name: a, journey: j, objective: 99%, window: 1ms}]\n"
                "alerting: {burn_rate_policies: [{severity: critical, long: 520w, short: 1ms,"
                " budget_consumed: 1e-320}]}",
            ),
            "slos[0]: with the critical burn-rate policy over 520w, the alert fires above an"
            " error ratio of 0, which no probe can measure",
        ),
        (
            step_config("- name: s"),
            "journeys[0].steps[0].url: required",
        ),
        (
            "target: {base_url: 'ftp://x'}\n" + step_config("- name: s\n  url: /"),
            "target.base_url: must be an http:// or https:// URL",
        ),
        (
            step_config("- name: s\n  url: /", "alerting:\n  notifiers: [{type: slack}]"),
            "alerting.notifiers[0].webhook_url: required",
        ),
        (
            step_config(
                "- name: s\n  url: /",
                "alerting:\n  rules: [{name: R, severity: info, journey: j, step: t, when: x}]",
            ),
            "alerting.rules[0].step: journey 'j' has no step 't'",
        ),
        (
            step_config(
                "- name: s\n  url: /",
                "alerting:\n  rules: [{name: R, severity: info, journey: j, when: 'p42 > 2s'}]",
            ),
            "alerting.rules[0].when: unknown quantile 'p42'",
        ),
        (
            step_config(
                "- name: s\n  url: /\n  capture: {v: json.v}",
                "alerting:\n  rules: [{name: R, severity: info, journey: j, when: 'changed(v)', window: 5m}]",
            ),
            "alerting.rules[0]: 'changed(v)' fires once per change: it takes no window or for",
        ),
        (
            step_config(
                "- name: s\n  url: /\n  capture: {v: json.v}",
                "alerting:\n  rules: [{name: R, severity: info, journey: j, when: 'avg(tokens) > 5'}]",
            ),
            "alerting.rules[0].when: journey 'j' captures no 'tokens'",
        ),
        (
            step_config(
                "- name: s\n  url: /",
                "alerting: {burn_rate_policies: [{severity: critical, long: 1h, short: 5m,"
                " burn_rate: 14.4, min_events: -1}]}",
            ),
            "alerting.burn_rate_policies[0].min_events: min_events must not be negative"
            " (0 turns the low-traffic guard off), got -1",
        ),
        ("journeys: []", "journeys: needs at least 1 item"),
        (
            "service: x\nservice: y\n" + step_config("- name: s\n  url: /"),
            "duplicate key 'service'",
        ),
    ],
    ids=[
        "bad-condition",
        "unknown-step-key",
        "unknown-top-key",
        "bad-duration",
        "slo-unknown-journey",
        "objective-100",
        "objective-0",
        "objective-over-100",
        "uncaptured-variable",
        "variable-captured-too-late",
        "bad-template",
        "duplicate-step",
        "bad-method",
        "bad-capture",
        "missing-ca-file",
        "notifier-missing-ca-file",
        "policy-threshold-underflows",
        "missing-url",
        "bad-base-url",
        "notifier-missing-field",
        "rule-unknown-step",
        "rule-bad-expression",
        "changed-with-window",
        "rule-unknown-capture",
        "min-events-negative",
        "no-journeys",
        "yaml-duplicate-key",
    ],
)
def test_config_error_names_path_and_problem(text: str, expected: str) -> None:
    """Each kind of config error is reported as `path: message`."""
    issues = issues_of(text)
    assert any(issue.startswith(expected) or expected in issue for issue in issues), issues


def test_all_errors_are_reported_at_once() -> None:
    """Several independent mistakes come back together, in document order."""
    text = """
    target: {base_url: nope}
    journeys:
      - name: a
        intervl: 5s
        steps:
          - {name: s, url: /, expect: [status =~ 2]}
          - {name: t, url: '/${missing}'}
    slos: [{name: x, journey: b, objective: 99%}]
    """
    issues = issues_of(text)
    assert [issue.split(":")[0] for issue in issues] == [
        "journeys[0].intervl",
        "journeys[0].steps[0].expect[0]",
        "journeys[0].steps[1].url",
        "slos[0].journey",
        "target.base_url",
    ]


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    """A YAML syntax error names the file and line."""
    path = tmp_path / "bad.yaml"
    path.write_text("journeys:\n  - name: a\n    steps: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (issue,) = caught.value.issues
    assert issue.path.startswith(f"{path}:4:")
    assert "YAML syntax error" in issue.message


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "no such file"), ("", "the config is empty"), ("- a\n- b\n", "must be a mapping")],
    ids=["missing-file", "empty-file", "not-a-mapping"],
)
def test_unusable_file(tmp_path: Path, content: str | None, expected: str) -> None:
    """A missing, empty or non-mapping file is one clear issue."""
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [issue.message for issue in caught.value.issues] == [caught.value.issues[0].message]
    assert expected in caught.value.issues[0].message


def test_environment_overrides_nested_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PROBER_TARGET__BASE_URL` wins over the file; other target fields stay."""
    monkeypatch.setenv("PROBER_TARGET__BASE_URL", "https://staging.example.com")
    config = parse_config(VALID + "target: {base_url: 'http://127.0.0.1:1', tls_verify: false}\n")
    assert config.target.base_url == "https://staging.example.com"
    assert config.target.tls_verify is False


def test_environment_override_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad environment override is a config error like a bad file value."""
    monkeypatch.setenv("PROBER_DEFAULTS__TIMEOUT", "soon")
    assert any(issue.startswith("defaults.timeout: invalid duration") for issue in issues_of(VALID))


def test_flag_twins_do_not_collide_with_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command-line twins (`PROBER_JOURNEY`, `PROBER_BASE_URL`, …) are not config keys."""
    for name in ("JOURNEY", "BASE_URL", "ITERATIONS", "JSON", "JUNIT", "WAIT_READY", "CONFIG"):
        monkeypatch.setenv(f"PROBER_{name}", "x")
    assert parse_config(VALID).service == "svc"


def test_defaults_are_inherited() -> None:
    """Journeys and steps without their own settings use `defaults`; their own win."""
    config = parse_config(
        """
        defaults: {interval: 45s, timeout: 3s, jitter: 5%}
        journeys:
          - name: a
            steps: [{name: s, url: /}]
          - name: b
            interval: 10s
            jitter: 0%
            steps: [{name: s, url: /, timeout: 500ms}]
        """
    )
    a, b = config.journeys
    assert (a.interval_or(config.defaults), a.jitter_or(config.defaults)) == (45.0, 0.05)
    assert a.steps[0].timeout_or(config.defaults) == 3.0
    assert (b.interval_or(config.defaults), b.jitter_or(config.defaults)) == (10.0, 0.0)
    assert b.steps[0].timeout_or(config.defaults) == 0.5


def test_default_burn_rate_policies_match_design() -> None:
    """Omitted `burn_rate_policies` means DESIGN's four-row table."""
    config = parse_config(VALID)
    rows = [
        (p.severity, p.long, p.short, p.budget_consumed) for p in config.alerting.burn_rate_policies
    ]
    assert rows == [
        ("critical", 3600, 300, 0.02),
        ("critical", 21600, 1800, 0.05),
        ("warning", 86400, 7200, 0.10),
        ("warning", 259200, 21600, 0.10),
    ]
    assert config.alerting.burn_rate_policies == DEFAULT_BURN_RATE_POLICIES


def test_min_events_zero_turns_the_guard_off() -> None:
    """`min_events: 0` (the README's way to turn the low-traffic guard off) loads and reaches
    the engine's policy as 0, not as "derive the default"."""
    config = parse_config(
        VALID
        + "alerting:\n  burn_rate_policies:\n"
        + "    - {severity: critical, long: 1h, short: 5m, burn_rate: 14.4, min_events: 0}\n"
        + "    - {severity: warning, long: 6h, short: 30m, burn_rate: 6}\n"
    )
    policies = config.alerting.burn_rate_policies
    assert [policy.min_events for policy in policies] == [0, None]
    assert [policy.spec().min_events for policy in policies] == [0, None]


def test_config_is_frozen() -> None:
    """A loaded config cannot be changed in place."""
    config = parse_config(VALID)
    with pytest.raises(Exception, match="frozen"):
        config.service = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["demo.yaml", "mirror-collective.yaml"])
def test_bundled_configs_are_valid(name: str) -> None:
    """The configs shipped in config/ load cleanly."""
    config = load_config(CONFIG_DIR / name)
    assert {journey.name for journey in config.journeys} >= {"healthcheck", "chat"}


def test_secret_values_are_registered_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `${secret.X}` value is known to the redactor as soon as the config loads."""
    from prober.redaction import redact

    monkeypatch.setenv("PROBE_PASSWORD", "hunter2-very-secret")
    parse_config(step_config("- name: s\n  url: /\n  json: {password: '${secret.PROBE_PASSWORD}'}"))
    assert redact("login with hunter2-very-secret failed") == "login with *** failed"


SECRET_CAPTURES = [
    ("plain-form-is-not-secret", "capture: {t: json.t}", "", set()),
    ("marked-secret", "capture: {t: {from: json.t, secret: true}}", "", {"t"}),
    ("marked-not-secret", "capture: {t: {from: json.t, secret: false}}", "", set()),
    ("authorization", "capture: {t: json.t}", "headers: {Authorization: 'Bearer ${t}'}", {"t"}),
    ("proxy-authorization", "capture: {t: json.t}", "headers: {Proxy-Authorization: '${t}'}", {"t"}),
    ("cookie", "capture: {t: json.t}", "headers: {Cookie: 'sid=${t}'}", {"t"}),
    ("credential-header-name", "capture: {t: json.t}", "headers: {X-Api-Key: '${t}'}", {"t"}),
    ("credential-query-name", "capture: {t: json.t}", "query: {access_token: '${t}'}", {"t"}),
    ("credential-json-member", "capture: {t: json.t}", "json: {a: {refresh_token: '${t}'}}", {"t"}),
    ("beside-a-secret", "capture: {t: json.t}", "body: 'id=${t}&k=${secret.K}'", {"t"}),
    ("plain-header", "capture: {t: json.t}", "headers: {X-Trace: '${t}'}", set()),
    ("plain-url", "capture: {t: json.t}", "url: /items/${t}", set()),
]


@pytest.mark.parametrize(
    ("capture", "use", "secret"),
    [row[1:] for row in SECRET_CAPTURES],
    ids=[row[0] for row in SECRET_CAPTURES],
)
def test_secret_captures(capture: str, use: str, secret: set[str]) -> None:
    """A capture is secret when marked so or when a later step sends it as a credential."""
    later = "- name: b\n  url: /b" if not use.startswith("url:") else "- name: b"
    text = step_config(f"- name: a\n  url: /a\n  {capture}\n{later}\n  {use}")
    journey = parse_config(text).journeys[0]
    assert journey.secret_captures() == secret
    assert journey.steps[0].capture["t"].subject.text == "json.t"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            step_config("- name: s\n  url: /\n  capture: {t: {form: json.t}}"),
            "journeys[0].steps[0].capture.t: a capture is a subject like 'json.data.id'",
        ),
        (
            step_config("- name: s\n  url: /\n  capture: {t: {from: json.t, secret: 'yes'}}"),
            "journeys[0].steps[0].capture.t: 'secret' must be true or false",
        ),
        (
            step_config(
                "- name: s\n  url: /\n  capture: {t: {from: json.t, secret: true}}",
                "alerting: {rules: [{name: r, severity: info, journey: j, when: changed(t)}]}",
            ),
            "alerting.rules[0].when: capture 't' of journey 'j' is a secret",
        ),
        (
            step_config("- name: s\n  url: /", "target: {headers: {X-Id: '${t}'}}"),
            "target.headers: X-Id: a target header cannot use a capture",
        ),
        (
            step_config("- name: s\n  url: /", "target: {base_url: 'http://${run_id}:80'}"),
            "target.base_url: only ${env.NAME} and ${secret.NAME} can be used in base_url",
        ),
        (
            step_config("- name: s\n  url: /", "target: {base_url: 'http://${env.HOST:80'}"),
            "target.base_url: unclosed '${'",
        ),
    ],
    ids=[
        "capture-unknown-key",
        "capture-secret-not-bool",
        "rule-on-secret-capture",
        "target-header-capture",
        "base-url-builtin",
        "base-url-bad-template",
    ],
)
def test_capture_and_target_template_errors(text: str, expected: str) -> None:
    """Secret-capture and target-template mistakes are config errors named by path."""
    issues = issues_of(text)
    assert any(issue.startswith(expected) for issue in issues), issues
