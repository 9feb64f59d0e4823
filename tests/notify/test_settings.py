"""Notifier settings: config errors as `path: message`, unique names, `${env.X}` and
`${secret.X}` read when the daemon builds the notifiers (an unset one: exit 2), and secret
settings registered for redaction however they are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from prober.config import parse_config
from prober.errors import ConfigError
from prober.notify import build_channels
from prober.redaction import redact
from tests.conftest import run_prober

BASE = "journeys: [{name: j, steps: [{name: s, url: /}]}]\nalerting:\n  notifiers:\n"


def issues_of(notifiers: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + notifiers)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("notifiers", "expected"),
    [
        (
            "    - {type: alertmanager, url: [http://a:9093, 'am:9093']}\n",
            "alerting.notifiers[0].url: [1] must be an http:// or https:// URL",
        ),
        (
            "    - {type: webhook, url: http://a}\n    - {type: webhook, url: http://b}\n",
            "alerting.notifiers[1].name: a second webhook notifier: give each webhook notifier a 'name'",
        ),
        (
            "    - {type: slack, name: ops, webhook_url: http://a}\n"
            "    - {type: webhook, name: ops, url: http://b}\n",
            "alerting.notifiers[1].name: duplicate notifier name 'ops'",
        ),
        (
            "    - {type: webhook, url: 'http://a/${token}'}\n",
            "alerting.notifiers[0].url: only ${env.NAME} and ${secret.NAME} can be used in this setting",
        ),
        (
            "    - {type: email, smtp_host: h, from: a@b.c, to: [d@e.f], username: u, password: p, starttls: false}\n",
            "alerting.notifiers[0]: SMTP auth needs 'starttls: true'",
        ),
        (
            "    - {type: slack, webhook_url: http://a, repeat_interval: 0s}\n",
            "alerting.notifiers[0].repeat_interval: Input should be greater than 0",
        ),
        (
            "    - {type: slack, webhook_url: http://a, flapping: {max_changes: 3, windw: 1h}}\n",
            "alerting.notifiers[0].flapping.windw: unknown key 'windw' (did you mean 'window'?)",
        ),
        (
            "    - {type: webhook, url: http://a, dead_letter_after: soon}\n",
            "alerting.notifiers[0].dead_letter_after:",
        ),
    ],
    ids=[
        "bad-cluster-url",
        "two-unnamed-of-a-type",
        "duplicate-name",
        "capture-in-a-setting",
        "auth-without-tls",
        "zero-repeat",
        "flapping-typo",
        "bad-duration",
    ],
)
def test_config_errors_name_their_path(notifiers: str, expected: str) -> None:
    """Each notifier mistake is one `path: message` line."""
    issues = issues_of(notifiers)
    assert any(issue.startswith(expected) for issue in issues), issues


def test_defaults() -> None:
    """DESIGN's example notifiers get the documented defaults."""
    config = parse_config(
        BASE
        + "    - {type: alertmanager, url: http://alertmanager:9093}\n"
        + "    - {type: slack, webhook_url: https://hooks.slack.test/x}\n"
    )
    alertmanager, slack = config.alerting.notifiers
    assert alertmanager.type == "alertmanager"
    assert alertmanager.resend_interval == 60
    assert alertmanager.url == ("http://alertmanager:9093",)
    assert slack.type == "slack"
    assert (slack.repeat_interval, slack.dead_letter_after) == (4 * 3600, 24 * 3600)
    assert (slack.flapping.max_changes, slack.flapping.window, slack.flapping.settle) == (
        6,
        3600,
        1800,
    )
    assert config.alerting.external_url is None


def test_unset_secret_is_a_config_error_when_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """`validate` passes without the secret; building the notifiers names what is missing."""
    monkeypatch.delenv("SLACK_URL", raising=False)
    config = parse_config(BASE + "    - {type: slack, webhook_url: '${secret.SLACK_URL}'}\n")
    with pytest.raises(ConfigError) as caught:
        build_channels(config)
    assert [str(issue) for issue in caught.value.issues] == [
        "alerting.notifiers[0].webhook_url: environment variable SLACK_URL is not set"
        " (for ${secret.SLACK_URL})"
    ]


@pytest.mark.parametrize(
    ("notifier", "secret"),
    [
        (
            "{type: slack, webhook_url: 'https://hooks.slack.test/services/T1/B2/literalTOKEN'}",
            "https://hooks.slack.test/services/T1/B2/literalTOKEN",
        ),
        (
            "{type: email, smtp_host: h, from: a@b.c, to: [d@e.f], username: u, password: 'literal-Pa55'}",
            "literal-Pa55",
        ),
        ("{type: webhook, url: http://a, hmac_secret: literal-hmac-key}", "literal-hmac-key"),
        ("{type: alertmanager, url: 'http://user:am-Pa55@am:9093'}", "am-Pa55"),
        ("{type: slack, webhook_url: '${secret.SLACK_URL}'}", "https://hooks.slack.test/from-env"),
    ],
    ids=["slack-url", "smtp-password", "hmac-key", "password-in-url", "from-environment"],
)
def test_secret_settings_are_redacted(
    notifier: str, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret setting is masked everywhere once the notifiers are built."""
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.test/from-env")
    build_channels(parse_config(BASE + f"    - {notifier}\n"))
    assert redact(f"error talking to {secret}") == "error talking to ***"


def test_prober_run_exits_2_when_a_notifier_secret_is_unset(tmp_path: Path) -> None:
    """`prober run` refuses to start without a notifier's secret: exit 2, `path: message`."""
    config = tmp_path / "c.yaml"
    config.write_text(
        BASE + "    - {type: webhook, url: http://127.0.0.1:9, hmac_secret: '${secret.NOPE_KEY}'}\n"
    )
    result = run_prober(
        "run", "-c", str(config), "--listen", "127.0.0.1:0", "--state", str(tmp_path / "s.db")
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "alerting.notifiers[0].hmac_secret: environment variable NOPE_KEY is not set"
        " (for ${secret.NOPE_KEY})"
    )
    assert "Traceback" not in result.stderr


def test_every_notifier_type_has_a_factory_and_the_package_exports_are_pinned() -> None:
    """The registry covers every `type:` the config accepts; `prober.notify` re-exports only."""
    import prober.notify
    from prober.config import _NOTIFIER_TYPES
    from prober.notify import FACTORIES

    assert sorted(FACTORIES) == sorted(_NOTIFIER_TYPES)
    assert prober.notify.__all__ == [
        "FACTORIES",
        "Channel",
        "ChannelPolicy",
        "DeliveryError",
        "FlapPolicy",
        "Notification",
        "NotificationService",
        "Notifier",
        "Planner",
        "SloFigures",
        "build_channels",
    ]
