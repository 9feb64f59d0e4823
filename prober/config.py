"""The config file: frozen pydantic models, loading, and errors named by path.

`load_config(path)` reads YAML, applies `PROBER_*` environment overrides (nested with
`__`: `PROBER_TARGET__BASE_URL=https://staging.example.com`; the environment wins over
the file), validates everything — conditions are parsed, templates compiled, variable
references checked — and either returns a frozen `ProberConfig` or raises one
`ConfigError` carrying *every* issue as `path: message`.

Decisions where DESIGN.md is silent:
- `defaults` are inherited at use (`Step.timeout_or(defaults)`), so the models keep
  exactly what the operator wrote and `prober validate` can show it.
- A journey's `timeout` is a deadline for the whole run; without one, each step only
  has its own timeout.
- Durations in the file may also be bare numbers (seconds); percentages may be bare
  fractions in [0, 1].
- Duplicate keys in a YAML mapping are an error (PyYAML would silently keep the last).
- An unset `${env.X}`/`${secret.X}` is not a config error — `validate` runs in CI
  without the secrets — but a run-time step failure with reason `template`.
- A capture is secret when marked (`capture: {token: {from: json.token, secret: true}}`)
  or when a step sends it as a credential (`Step.credential_captures`); a threshold rule
  on a secret capture is a config error, as its values are never kept.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from prober.conditions import (
    Condition,
    ConditionSyntaxError,
    Subject,
    parse_condition,
    parse_subject,
)
from prober.errors import ConfigError, ConfigIssue
from prober.http._proxies import check_proxy_url
from prober.http._resolver import check_nameserver
from prober.redaction import register_secret
from prober.templates import (
    Template,
    TemplateSyntaxError,
    compile_template,
    compile_value,
    variables_in,
)
from prober.units import format_duration, parse_duration, parse_percent, parse_size
from slo.budget import SLOError
from slo.policies import PolicySpec, burn_rate_threshold
from slo.rules import RuleExpression, RuleSyntaxError, parse_rule_expression

__all__ = [
    "CREDENTIAL_NAME",
    "DEFAULT_BASE_URL",
    "DEFAULT_USER_AGENT",
    "Capture",
    "Defaults",
    "Gates",
    "Journey",
    "ProberConfig",
    "Slo",
    "Step",
    "Target",
    "load_config",
    "parse_config",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_USER_AGENT = "prober/0.1 (+synthetic)"
DEFAULT_INTERVAL = 30.0
DEFAULT_STEP_TIMEOUT = 10.0
DEFAULT_JITTER = 0.10
DEFAULT_MAX_CONCURRENCY = 10
DEFAULT_MAX_REQUESTS_PER_SECOND = 20.0
DEFAULT_MAX_BODY_SIZE = 1024 * 1024
DEFAULT_SLO_WINDOW = 30 * 86400.0
DEFAULT_EVALUATION_INTERVAL = 30.0
DEFAULT_STATE_PATH = "./prober-state.db"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LABEL_SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
#: Bounds on the document YAML builds, checked before anything walks it: aliases can make
#: a small file expand exponentially ("billion laughs") or refer to themselves.
MAX_NESTING = 64
MAX_VALUES = 1_000_000
#: Durations lie between 1ms and 10 years (or are 0 where that means "none"): beyond is a
#: typo, and it keeps the SLO arithmetic (runs per window, failures to trip) within a
#: float's exact integers.
MIN_DURATION = 0.001
MAX_DURATION = 10 * 365 * 86400.0
#: A burn-rate policy fires above an error ratio of `threshold × error budget`; a limit
#: outside these bounds cannot be measured by any probe rate.
MIN_ERROR_RATIO_LIMIT = 1e-12
MAX_ERROR_RATIO_LIMIT = 1e3


def _bounded_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds and not MIN_DURATION <= seconds <= MAX_DURATION:
        raise ValueError(f"invalid duration {value!r}: must be 0 or lie between 1ms and 10 years")
    return seconds


Duration = Annotated[float, BeforeValidator(_bounded_duration)]
Percent = Annotated[float, BeforeValidator(parse_percent)]


def _existing_file(value: str) -> str:
    if not os.path.isfile(value):
        raise ValueError(f"no such file {value!r}")
    return value


#: A path that must name an existing file when the config is loaded (a CA bundle).
ExistingFile = Annotated[str, AfterValidator(_existing_file)]
Size = Annotated[int, BeforeValidator(parse_size)]
Name = Annotated[str, Field(pattern=_LABEL_SAFE_NAME, max_length=100)]


def _as_condition(value: object) -> Condition:
    if isinstance(value, Condition):
        return value
    try:
        return parse_condition(value)
    except ConditionSyntaxError as error:
        raise ValueError(str(error)) from None


def _as_subject(value: object) -> Subject:
    if isinstance(value, Subject):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a capture is a subject like 'json.data.id', got {value!r}")
    try:
        return parse_subject(value)
    except ConditionSyntaxError as error:
        raise ValueError(str(error)) from None


@dataclass(frozen=True)
class Capture:
    """One `capture:` entry: what it reads, and whether its value is a secret (masked in
    every output, never written to the state file or `export`)."""

    subject: Subject
    secret: bool = False


def _as_capture(value: object) -> Capture:
    if isinstance(value, Capture):
        return value
    if isinstance(value, dict):
        unknown = sorted(str(key) for key in value if key not in ("from", "secret"))
        if unknown or "from" not in value:
            raise ValueError(
                f"a capture is a subject like 'json.data.id' or {{from: SUBJECT, secret: true}}"
                f", got keys {sorted(map(str, value))}"
            )
        secret = value.get("secret", False)
        if not isinstance(secret, bool):
            raise ValueError(f"'secret' must be true or false, got {secret!r}")
        return Capture(_as_subject(value["from"]), secret)
    return Capture(_as_subject(value))


#: Header, query and JSON names whose value is a credential: a capture used in one is
#: a secret capture even when not marked so (`Journey.secret_captures`).
CREDENTIAL_NAME = re.compile(
    r"auth|cookie|token|secret|passw|pwd|api[-_]?key|session|credential|signature", re.I
)


def _as_template(value: object) -> Template:
    if isinstance(value, Template):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a string, got {value!r}")
    try:
        return compile_template(str(value))
    except TemplateSyntaxError as error:
        raise ValueError(str(error)) from None


def _as_template_value(value: object) -> Any:
    try:
        return compile_value(value)
    except TemplateSyntaxError as error:
        raise ValueError(str(error)) from None


CaptureField = Annotated[Capture, PlainValidator(_as_capture)]
ConditionField = Annotated[Condition, PlainValidator(_as_condition)]
SubjectField = Annotated[Subject, PlainValidator(_as_subject)]
TemplateField = Annotated[Template, PlainValidator(_as_template)]
TemplateValue = Annotated[Any, PlainValidator(_as_template_value)]


class Model(BaseModel):
    """Frozen, strict about unknown keys: a typo must not pass silently."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False
    )


def _env_or_secret_template(value: object) -> str:
    """A setting read once, not per run (a notifier's, a credential, a proxy): literal
    text, or `${env.NAME}` / `${secret.NAME}`. The value itself is never echoed: it may be
    a secret."""
    if not isinstance(value, str):
        raise ValueError("expected a string")
    try:
        template = compile_template(value)
    except TemplateSyntaxError:
        raise ValueError(
            "malformed ${...}: only ${env.NAME} and ${secret.NAME} work here"
        ) from None
    if any(variable.kind not in ("env", "secret") for variable in template.variables()):
        raise ValueError("only ${env.NAME} and ${secret.NAME} can be used in this setting")
    return value


def _check_url_template(value: str) -> str:
    """A URL, checked now when it is written out (a `${...}` one when it is read)."""
    if "${" not in value and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _url_template(value: object) -> str:
    return _check_url_template(_env_or_secret_template(value))


def _url_templates(value: object) -> tuple[str, ...]:
    """One URL or a list of them, as a tuple; an error names the bad item."""
    if isinstance(value, str):
        return (_url_template(value),)
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("expected a URL or a non-empty list of URLs")
    urls = []
    for index, item in enumerate(value):
        try:
            urls.append(_url_template(item))
        except ValueError as error:
            raise ValueError(f"[{index}] {error}") from None
    return tuple(urls)


SettingTemplate = Annotated[str, PlainValidator(_env_or_secret_template)]
UrlTemplate = Annotated[str, PlainValidator(_url_template)]
UrlTemplates = Annotated[tuple[str, ...], PlainValidator(_url_templates)]


def _proxy_template(value: object) -> str:
    return check_proxy_url(_env_or_secret_template(value))


ProxyTemplate = Annotated[str, PlainValidator(_proxy_template)]


class TlsOptions(Model):
    """`tls:` of a target or a notifier. A key or certificate file rotated on disk (a
    Kubernetes Secret) is picked up by the next run; `key_password` is a secret."""

    ca_file: ExistingFile | None = None
    cert_file: ExistingFile | None = None
    key_file: ExistingFile | None = None
    key_password: SettingTemplate | None = None
    server_name: str | None = None
    min_version: Literal["TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3"] | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _key_needs_certificate(self) -> TlsOptions:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        if self.key_password is not None and self.cert_file is None:
            raise ValueError("key_password needs cert_file and key_file")
        return self


class BasicAuth(Model):
    username: SettingTemplate
    password: SettingTemplate


def _scopes(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError("scopes: a list of strings, or one space-separated string")


class OAuth2ClientCredentials(Model):
    """OAuth 2.0 client credentials: a token from `token_url`, cached across runs and
    fetched again before it expires."""

    token_url: UrlTemplate
    client_id: SettingTemplate
    client_secret: SettingTemplate
    scopes: Annotated[tuple[str, ...], BeforeValidator(_scopes)] = ()
    client_auth: Literal["header", "body"] = "header"


class Auth(Model):
    """`auth:` of a target or a step: exactly one of `basic`, `bearer`, `oauth2`. It sets
    the `Authorization` header, unless the step sets that header itself."""

    basic: BasicAuth | None = None
    bearer: SettingTemplate | None = None
    oauth2: OAuth2ClientCredentials | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Auth:
        chosen = [name for name in ("basic", "bearer", "oauth2") if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "set exactly one of basic, bearer, oauth2"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        return self


class Target(Model):
    """`base_url` may hold `${env.NAME}` / `${secret.NAME}`, and `headers` any template but
    a capture (they are sent by every step, also before anything is captured); both are
    rendered per run, so an unset variable fails the run with reason `template`."""

    base_url: str = DEFAULT_BASE_URL
    tls_verify: bool = True  # shorthand: false is tls.insecure_skip_verify
    tls_ca_file: ExistingFile | None = None  # shorthand for tls.ca_file
    tls: TlsOptions | None = None
    headers: dict[str, TemplateField] = Field(
        default_factory=lambda: {"User-Agent": compile_template(DEFAULT_USER_AGENT)}
    )
    #: Unset: the environment's HTTPS_PROXY / HTTP_PROXY / NO_PROXY; "": no proxy.
    proxy_url: ProxyTemplate | None = None
    http2: bool = False
    ip_protocol: Literal["auto", "ip4", "ip6"] = "auto"
    ip_protocol_fallback: bool = True
    auth: Auth | None = None
    #: auto: offer gzip, deflate, br and zstd; none: ask for identity. A compressed
    #: response is decoded either way.
    compression: Literal["auto", "none"] = "auto"

    @model_validator(mode="after")
    def _one_tls_spelling(self) -> Target:
        if self.tls is not None and (self.tls_ca_file is not None or not self.tls_verify):
            raise ValueError(
                "set TLS in one place: tls.ca_file / tls.insecure_skip_verify, or the"
                " shorthands tls_ca_file / tls_verify, not both"
            )
        return self

    def tls_options(self) -> TlsOptions:
        """The TLS settings, the shorthands folded in."""
        if self.tls is not None:
            return self.tls
        return TlsOptions(ca_file=self.tls_ca_file, insecure_skip_verify=not self.tls_verify)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        if "${" in value:
            try:
                template = compile_template(value)
            except TemplateSyntaxError as error:
                raise ValueError(str(error)) from None
            if any(variable.kind not in ("env", "secret") for variable in template.variables()):
                raise ValueError("only ${env.NAME} and ${secret.NAME} can be used in base_url")
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _no_captures(cls, value: dict[str, Template]) -> dict[str, Template]:
        for name, header in value.items():
            if any(variable.kind == "capture" for variable in header.variables()):
                raise ValueError(
                    f"{name}: a target header cannot use a capture (it is sent by every step,"
                    " before anything is captured): set it on the steps that need it"
                )
        return value


class ResolverOptions(Model):
    """`resolver:`: where probes look names up (`prober.http._resolver`). By default the system's
    nameservers; `/etc/hosts`, search domains and ndots apply either way."""

    nameservers: tuple[Annotated[str, AfterValidator(check_nameserver)], ...] = ()


class Defaults(Model):
    interval: Duration = Field(DEFAULT_INTERVAL, gt=0)
    timeout: Duration = Field(DEFAULT_STEP_TIMEOUT, gt=0)
    jitter: Percent = DEFAULT_JITTER
    max_concurrency: int = Field(DEFAULT_MAX_CONCURRENCY, ge=1)
    max_requests_per_second: float = Field(DEFAULT_MAX_REQUESTS_PER_SECOND, gt=0)
    keep_alive: bool = True  # between the steps of one run; every run opens a fresh connection
    follow_redirects: bool = False
    max_body_size: Size = DEFAULT_MAX_BODY_SIZE


class Gates(Model):
    """Thresholds `run-once` checks over its iterations (a missed one exits 1)."""

    max_p50: Duration | None = None
    max_p90: Duration | None = None
    max_p95: Duration | None = None
    max_p99: Duration | None = None
    min_success_ratio: Percent | None = None


class Step(Model):
    name: Name
    method: str = "GET"
    url: TemplateField
    headers: dict[str, TemplateField] = Field(default_factory=dict)
    query: dict[str, TemplateField] = Field(default_factory=dict)
    json_body: TemplateValue = Field(None, alias="json")
    body: TemplateField | None = None
    expect: tuple[ConditionField, ...] = ()
    capture: dict[Name, CaptureField] = Field(default_factory=dict)
    timeout: Duration | None = Field(None, gt=0)
    follow_redirects: bool | None = None
    max_body_size: Size | None = None
    http2: bool | None = None  # None: the target's
    auth: Auth | None = None  # None: the target's
    compression: Literal["auto", "none"] | None = None  # None: the target's

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value.upper() not in HTTP_METHODS:
            raise ValueError(
                f"unknown HTTP method {value!r}: expected one of {sorted(HTTP_METHODS)}"
            )
        return value.upper()

    @model_validator(mode="after")
    def _one_body(self) -> Step:
        if self.body is not None and self.json_body is not None:
            raise ValueError("set either 'json' or 'body', not both")
        return self

    @property
    def has_status_condition(self) -> bool:
        return any(condition.subject.kind == "status" for condition in self.expect)

    def timeout_or(self, defaults: Defaults) -> float:
        return self.timeout if self.timeout is not None else defaults.timeout

    def follow_redirects_or(self, defaults: Defaults) -> bool:
        return (
            self.follow_redirects
            if self.follow_redirects is not None
            else defaults.follow_redirects
        )

    def max_body_size_or(self, defaults: Defaults) -> int:
        return self.max_body_size if self.max_body_size is not None else defaults.max_body_size

    def templates(self) -> Iterator[tuple[str, Any]]:
        """Every templated field, with its path inside the step."""
        yield "url", self.url
        for key, header in self.headers.items():
            yield f"headers.{key}", header
        for key, param in self.query.items():
            yield f"query.{key}", param
        if self.json_body is not None:
            yield "json", self.json_body
        if self.body is not None:
            yield "body", self.body

    def credential_captures(self) -> Iterator[str]:
        """The captures this step sends as credentials: used in a header, query parameter
        or JSON member whose name is a credential's (`CREDENTIAL_NAME`: Authorization,
        Cookie, X-Api-Key, access_token, …), or in a value that also holds a `${secret.X}`."""
        named = [(name, value) for name, value in self.headers.items()]
        named += list(self.query.items())
        named += [("url", self.url)] + ([("body", self.body)] if self.body is not None else [])
        pending: list[tuple[str, Any]] = [*named, ("json", self.json_body)]
        while pending:
            name, value = pending.pop()
            if isinstance(value, dict):
                pending.extend((str(key), item) for key, item in value.items())
            elif isinstance(value, list):
                pending.extend((name, item) for item in value)
            elif isinstance(value, Template):
                variables = list(value.variables())
                if CREDENTIAL_NAME.search(name) or any(v.kind == "secret" for v in variables):
                    yield from (v.name for v in variables if v.kind == "capture")


class Journey(Model):
    name: Name
    interval: Duration | None = Field(None, gt=0)
    timeout: Duration | None = Field(None, gt=0)  # deadline for the whole run
    jitter: Percent | None = None
    keep_alive: bool | None = None
    gates: Gates | None = None
    steps: tuple[Step, ...] = Field(min_length=1)

    def interval_or(self, defaults: Defaults) -> float:
        return self.interval if self.interval is not None else defaults.interval

    def jitter_or(self, defaults: Defaults) -> float:
        return self.jitter if self.jitter is not None else defaults.jitter

    def keep_alive_or(self, defaults: Defaults) -> bool:
        return self.keep_alive if self.keep_alive is not None else defaults.keep_alive

    def secret_captures(self) -> frozenset[str]:
        """Captures marked `secret: true`, and those a later step sends as a credential."""
        marked = {name for step in self.steps for name, c in step.capture.items() if c.secret}
        return frozenset(marked.union(*(step.credential_captures() for step in self.steps)))


class LatencyIndicator(Model):
    latency_below: Duration = Field(gt=0)


class Slo(Model):
    name: Name
    journey: Name
    objective: Percent
    window: Duration = Field(DEFAULT_SLO_WINDOW, gt=0)
    indicator: LatencyIndicator | None = None  # None: availability (the run succeeded)
    alert_name: Name | None = None
    description: str | None = None
    runbook_url: str | None = None

    @field_validator("objective")
    @classmethod
    def _inside_open_interval(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"objective must lie strictly between 0% and 100%, got {value:.4%}")
        return value


Severity = Literal["critical", "warning", "info"]


class BurnRatePolicy(Model):
    severity: Severity
    long: Duration = Field(gt=0)
    short: Duration = Field(gt=0)
    budget_consumed: Percent | None = None
    burn_rate: float | None = Field(None, gt=0)
    # None: the derived low-traffic guard (`slo.policies.default_min_events`); 0: no guard.
    min_events: int | None = None

    @field_validator("min_events")
    @classmethod
    def _not_negative(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(
                f"min_events must not be negative (0 turns the low-traffic guard off), got {value}"
            )
        return value

    @model_validator(mode="after")
    def _one_threshold(self) -> BurnRatePolicy:
        if (self.budget_consumed is None) == (self.burn_rate is None):
            raise ValueError("set exactly one of 'budget_consumed' or 'burn_rate'")
        if self.short >= self.long:
            raise ValueError("the short window must be shorter than the long one")
        try:  # a dry run: what the SLO engine refuses (a budget_consumed of 0%) fails here
            self.spec()
        except SLOError as error:
            raise ValueError(str(error)) from None
        return self

    def spec(self) -> PolicySpec:
        """This row as the SLO engine's policy spec."""
        return PolicySpec(
            severity=self.severity,
            long_window=self.long,
            short_window=self.short,
            budget_consumed=self.budget_consumed,
            burn_rate=self.burn_rate,
            min_events=self.min_events,
        )


DEFAULT_BURN_RATE_POLICIES = (
    BurnRatePolicy(severity="critical", long=3600, short=300, budget_consumed=0.02),
    BurnRatePolicy(severity="critical", long=6 * 3600, short=1800, budget_consumed=0.05),
    BurnRatePolicy(severity="warning", long=86400, short=2 * 3600, budget_consumed=0.10),
    BurnRatePolicy(severity="warning", long=3 * 86400, short=6 * 3600, budget_consumed=0.10),
)


def _as_rule_expression(value: object) -> RuleExpression:
    if isinstance(value, RuleExpression):
        return value
    try:
        return parse_rule_expression(value)
    except RuleSyntaxError as error:
        raise ValueError(str(error)) from None


RuleExpressionField = Annotated[RuleExpression, PlainValidator(_as_rule_expression)]
DEFAULT_RULE_WINDOW = 300.0


class AlertRule(Model):
    """A threshold rule. `window` defaults to 5m for windowed expressions; `changed(X)` has
    neither window nor `for` (it fires once per change)."""

    name: Name
    severity: Severity
    journey: Name
    step: Name | None = None
    when: RuleExpressionField
    window: Duration | None = Field(None, gt=0)
    for_: Duration | None = Field(None, alias="for", ge=0)
    summary: str | None = None
    description: str | None = None
    runbook_url: str | None = None

    @model_validator(mode="after")
    def _window_fits_expression(self) -> AlertRule:
        if not self.when.windowed and (self.window is not None or self.for_ is not None):
            raise ValueError(f"{self.when.text!r} fires once per change: it takes no window or for")
        return self

    @property
    def window_or_default(self) -> float:
        return self.window if self.window is not None else DEFAULT_RULE_WINDOW


# ---------------------------------------------------------------------------- notifiers
# Defaults of `alerting.notifiers[]` (see `prober.notify`; decisions in its docstring).
DEFAULT_RESEND_INTERVAL = 60.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
DEFAULT_DEAD_LETTER_AFTER = 24 * 3600.0
DEFAULT_BACKOFF_INITIAL = 1.0
DEFAULT_BACKOFF_MAX = 300.0
DEFAULT_NOTIFY_TIMEOUT = 10.0
DEFAULT_FLAP_MAX_CHANGES = 6
DEFAULT_FLAP_WINDOW = 3600.0
DEFAULT_FLAP_SETTLE = 1800.0


class FlapHold(Model):
    """More than `max_changes` state changes of one alert within `window`: further changes
    are held (not sent) until the alert keeps one state for `settle`, then summarised."""

    max_changes: int = Field(DEFAULT_FLAP_MAX_CHANGES, ge=1)
    window: Duration = Field(DEFAULT_FLAP_WINDOW, gt=0)
    settle: Duration = Field(DEFAULT_FLAP_SETTLE, gt=0)


class _Notifier(Model):
    #: The `notifier` label and the outbox's key; defaults to the type (two notifiers of
    #: one type must be named).
    name: Name | None = None
    severities: tuple[Severity, ...] = ("critical", "warning", "info")
    timeout: Duration = Field(DEFAULT_NOTIFY_TIMEOUT, gt=0)
    backoff_initial: Duration = Field(DEFAULT_BACKOFF_INITIAL, gt=0)
    backoff_max: Duration = Field(DEFAULT_BACKOFF_MAX, gt=0)
    dead_letter_after: Duration = Field(DEFAULT_DEAD_LETTER_AFTER, gt=0)
    tls_verify: bool = True
    tls_ca_file: ExistingFile | None = None
    #: Unset: the environment's HTTPS_PROXY / HTTP_PROXY / NO_PROXY; "": no proxy.
    proxy_url: ProxyTemplate | None = None

    def name_or_type(self) -> str:
        return self.name or str(getattr(self, "type", ""))

    def secret_settings(self) -> tuple[str, ...]:
        """Settings whose values are secrets however they are written (not only `${secret.X}`)."""
        return ()


class _PersonNotifier(_Notifier):
    """A notifier a person reads: repeats at most every `repeat_interval`; flapping held."""

    repeat_interval: Duration = Field(DEFAULT_REPEAT_INTERVAL, gt=0)
    flapping: FlapHold = Field(default_factory=FlapHold)


class AlertmanagerNotifier(_Notifier):
    type: Literal["alertmanager"]
    #: One URL, or every URL of an HA cluster (each receives every alert).
    url: UrlTemplates
    resend_interval: Duration = Field(DEFAULT_RESEND_INTERVAL, gt=0)


class SlackNotifier(_PersonNotifier):
    type: Literal["slack"]
    webhook_url: UrlTemplate

    def secret_settings(self) -> tuple[str, ...]:
        return (self.webhook_url,)  # its path carries the token


class WebhookNotifier(_PersonNotifier):
    type: Literal["webhook"]
    url: UrlTemplate
    hmac_secret: SettingTemplate | None = None

    def secret_settings(self) -> tuple[str, ...]:
        return () if self.hmac_secret is None else (self.hmac_secret,)


class EmailNotifier(_PersonNotifier):
    type: Literal["email"]
    smtp_host: str
    smtp_port: int = Field(587, ge=1, le=65535)
    sender: str = Field(alias="from")
    to: tuple[str, ...] = Field(min_length=1)
    username: SettingTemplate | None = None
    password: SettingTemplate | None = None
    starttls: bool = True

    @model_validator(mode="after")
    def _auth_needs_tls(self) -> EmailNotifier:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both 'username' and 'password', or neither")
        if self.password is not None and not self.starttls:
            raise ValueError(
                "SMTP auth needs 'starttls: true': the password must not cross in clear"
            )
        return self

    def secret_settings(self) -> tuple[str, ...]:
        return () if self.password is None else (self.password,)


Notifier = Annotated[
    AlertmanagerNotifier | SlackNotifier | WebhookNotifier | EmailNotifier,
    Field(discriminator="type"),
]
_NOTIFIER_TYPES = ("alertmanager", "slack", "webhook", "email")


class Alerting(Model):
    evaluation_interval: Duration = Field(DEFAULT_EVALUATION_INTERVAL, gt=0)
    burn_rate_policies: tuple[BurnRatePolicy, ...] = DEFAULT_BURN_RATE_POLICIES
    rules: tuple[AlertRule, ...] = ()
    notifiers: tuple[Notifier, ...] = ()
    #: Where people reach this prober's status page (links in notifications); default
    #: `http://HOSTNAME:PORT/` of the listen address.
    external_url: str | None = None

    @field_validator("external_url")
    @classmethod
    def _external_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value


class ProberConfig(BaseSettings):
    """The whole config file. Environment variables `PROBER_*` override any field."""

    model_config = SettingsConfigDict(
        env_prefix="PROBER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
        populate_by_name=True,
        allow_inf_nan=False,
    )

    service: Name = "service"
    target: Target = Field(default_factory=Target)
    resolver: ResolverOptions = Field(default_factory=ResolverOptions)
    defaults: Defaults = Field(default_factory=Defaults)
    state_path: str = DEFAULT_STATE_PATH
    #: A URL outside the target (e.g. a public health endpoint) checked when a run fails:
    #: if it fails too, the prober's own network is down and the run is inconclusive.
    connectivity_check: str | None = None
    gates: Gates | None = None
    journeys: tuple[Journey, ...] = Field(min_length=1)
    slos: tuple[Slo, ...] = ()
    alerting: Alerting = Field(default_factory=Alerting)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's content arrives as init kwargs; the environment wins over it.
        return (_EnvironmentSource(settings_cls), init_settings)

    @field_validator("connectivity_check")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    def journey(self, name: str) -> Journey:
        return next(journey for journey in self.journeys if journey.name == name)

    def gates_for(self, journey: Journey) -> Gates | None:
        return journey.gates if journey.gates is not None else self.gates


# ---------------------------------------------------------------------------- loading


class _EnvironmentSource(EnvSettingsSource):
    """`PROBER_*` overrides. A value that is not the JSON its field needs, or that nests
    too deeply, is a config issue naming the variables (never their values: they may be
    secrets) rather than pydantic-settings' `SettingsError`."""

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            prepared = super().prepare_field_value(field_name, field, value, value_is_complex)
        except (ValueError, RecursionError) as error:
            prefix = f"{self.env_prefix}{field_name}".upper()
            names = sorted(
                name.upper()
                for name in self.env_vars
                if name.upper() == prefix or name.upper().startswith(prefix + "__")
            )
            why = "nested too deeply" if isinstance(error, RecursionError) else "not valid JSON"
            if isinstance(error, json.JSONDecodeError):
                why += f" ({error.msg} at character {error.pos})"
            message = f"environment override {', '.join(names)}: {why}"
            raise ConfigError([ConfigIssue(field_name, message)]) from None
        shape_issue = _shape_issue(prepared, (field_name,))
        if shape_issue is not None:
            raise ConfigError([shape_issue])
        return prepared


class _TooDeep(yaml.composer.ComposerError):
    """The document nests deeper than `MAX_NESTING` (not a syntax error, but where it is)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate mapping keys instead of keeping the last, and
    stops at `MAX_NESTING` levels (PyYAML's composer recurses, and its scanner slows down
    with the square of the depth)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self._depth >= MAX_NESTING:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _TooDeep(None, None, f"nested more than {MAX_NESTING} levels deep", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be text or a number", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | os.PathLike[str]) -> ProberConfig:
    """Read, override from the environment, and validate a config file."""
    file = Path(path)
    source = str(file) if str(file).isprintable() else repr(str(file))
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(source, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigIssue(source, f"cannot read: {error}")]) from None
    return parse_config(text, source=source)


def parse_config(text: str, source: str = "<config>") -> ProberConfig:
    """Validate config text; raises `ConfigError` with every issue found."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = _one_line(" ".join(part for part in (error.context, error.problem) if part))
        if not isinstance(error, _TooDeep):
            problem = f"YAML syntax error: {problem}"
        raise ConfigError([ConfigIssue(where, problem)]) from None
    except yaml.reader.ReaderError as error:  # a character YAML does not allow, e.g. NUL
        before = text[: error.position]
        where = f"{source}:{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"
        problem = f"character U+{error.character:04X} is not allowed"  # a code point
        raise ConfigError([ConfigIssue(where, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as error:
        issue = ConfigIssue(source, f"YAML syntax error: {_one_line(str(error))}")
        raise ConfigError([issue]) from None
    except RecursionError:  # PyYAML's composer recurses once per level
        issue = ConfigIssue(source, f"nested more than {MAX_NESTING} levels deep")
        raise ConfigError([issue]) from None
    if raw is None:
        raise ConfigError([ConfigIssue(source, "the config is empty")])
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(source, "the config must be a mapping of keys to values")])
    shape_issue = _shape_issue(raw, ())
    if shape_issue is not None:
        raise ConfigError([shape_issue])

    issues = list(_cross_reference_issues(raw))
    # Only text keys reach the model as keyword arguments: not a number (a TypeError), nor
    # a `_name`, which pydantic-settings would read as its own option (`_env_file`,
    # `_cli_parse_args`: a config file must not steer how it is loaded).
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(key, str) and not key.startswith("_"):
            fields[key] = value
        else:
            issues.append(ConfigIssue(_format_path((key,)), _unknown_key(key)))
    config: ProberConfig | None = None
    try:
        config = ProberConfig(**fields)
    except ValidationError as error:
        issues.extend(_issues_from(error))
    except ConfigError as error:  # an environment override that cannot be read
        issues.extend(error.issues)
    if config is not None:
        issues.extend(_policy_limit_issues(config))
        issues.extend(_secret_capture_rule_issues(config))
    if issues or config is None:
        raise ConfigError(sorted(set(issues), key=_issue_order))
    _register_secrets(config, os.environ)
    return config


def _one_line(text: str) -> str:
    """A message on one line: each issue is one `path: message` line."""
    return " ".join(text.split())


def _shape_issue(document: Any, root: tuple[int | str, ...]) -> ConfigIssue | None:
    """The first place where the document nests deeper than `MAX_NESTING`, holds itself
    (a recursive YAML alias), or expands past `MAX_VALUES` values, or None. Walked
    without recursion, and stops at the limit: bounded time and memory whatever the
    aliases multiply."""
    count = 0
    pending: list[tuple[Any, tuple[Any, ...], tuple[int, ...]]] = [(document, root, ())]
    while pending:
        node, loc, ancestors = pending.pop()
        count += 1
        if count > MAX_VALUES:
            return ConfigIssue(
                _format_path(loc),
                f"the config expands to more than {MAX_VALUES:,} values"
                " (YAML aliases nested inside each other?)",
            )
        if not isinstance(node, dict | list):
            continue
        if id(node) in ancestors:
            return ConfigIssue(
                _format_path(loc), "a YAML alias inside the value it names: it never ends"
            )
        if len(loc) - len(root) >= MAX_NESTING:
            return ConfigIssue(_format_path(loc), f"nested more than {MAX_NESTING} levels deep")
        inside = (*ancestors, id(node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        pending.extend((value, (*loc, key), inside) for key, value in items)
    return None


def _policy_limit_issues(config: ProberConfig) -> Iterator[ConfigIssue]:
    """Each SLO with each burn-rate policy fires above an error ratio that can be measured
    (see `MIN_ERROR_RATIO_LIMIT`): an objective of 99.99999999999% or a burn rate of 1e-9
    cannot, and the engine's arithmetic would leave a float's range trying."""
    for index, slo in enumerate(config.slos):
        for policy in config.alerting.burn_rate_policies:
            threshold = policy.burn_rate
            if threshold is None:
                assert policy.budget_consumed is not None  # BurnRatePolicy checks one is set
                # Not `resolve_policy`: it refuses a threshold that underflows to 0, which
                # is exactly what this check reports as an issue.
                threshold = burn_rate_threshold(policy.budget_consumed, slo.window, policy.long)
            limit = threshold * (1 - slo.objective)
            if not MIN_ERROR_RATIO_LIMIT <= limit <= MAX_ERROR_RATIO_LIMIT:
                yield ConfigIssue(
                    f"slos[{index}]",
                    f"with the {policy.severity} burn-rate policy over"
                    f" {format_duration(policy.long)}, the alert fires above an error ratio of"
                    f" {limit:.3g}, which no probe can measure (keep it between"
                    f" {MIN_ERROR_RATIO_LIMIT:g} and {MAX_ERROR_RATIO_LIMIT:g})",
                )


def _secret_capture_rule_issues(config: ProberConfig) -> Iterator[ConfigIssue]:
    """A threshold rule cannot read a secret capture: its values are never kept."""
    secret = {journey.name: journey.secret_captures() for journey in config.journeys}
    for index, rule in enumerate(config.alerting.rules):
        capture = rule.when.capture
        if capture is not None and capture in secret.get(rule.journey, ()):
            yield ConfigIssue(
                f"alerting.rules[{index}].when",
                f"capture {capture!r} of journey {rule.journey!r} is a secret (marked so, or"
                " sent as a credential): its values are never kept, so no rule can read them",
            )


def _issue_order(issue: ConfigIssue) -> tuple[Any, ...]:
    """Issues in the order their paths appear, numbers compared as numbers."""
    return tuple(
        (0, len(part.lstrip("0")), part.lstrip("0"))
        if part.isascii() and part.isdigit()
        else (1, 0, part)
        for part in re.split(r"[.\[\]]+", issue.path)
        if part
    )


def _register_secrets(config: ProberConfig, environ: Mapping[str, str]) -> None:
    for notifier in config.alerting.notifiers:
        for setting in notifier.secret_settings():
            if "${" not in setting:
                register_secret(setting)  # a literal Slack URL, password or HMAC key is one too
        for name in type(notifier).model_fields:
            value = getattr(notifier, name)
            for text in value if isinstance(value, tuple) else (value,):
                if isinstance(text, str) and "${" in text:
                    for variable in compile_template(text).variables():
                        if variable.kind == "secret" and variable.name in environ:
                            register_secret(environ[variable.name])
    target = [*config.target.headers.values()]
    if "${" in config.target.base_url:
        target.append(compile_template(config.target.base_url))
    for value in target:
        for variable in variables_in(value):
            if variable.kind == "secret" and variable.name in environ:
                register_secret(environ[variable.name])
    for journey in config.journeys:
        for step in journey.steps:
            for _, value in step.templates():
                for variable in variables_in(value):
                    if variable.kind == "secret" and variable.name in environ:
                        register_secret(environ[variable.name])


_ALL_FIELDS = sorted(
    {
        name
        for model in (
            Target,
            Defaults,
            Gates,
            Step,
            Journey,
            LatencyIndicator,
            Slo,
            BurnRatePolicy,
            AlertRule,
            FlapHold,
            AlertmanagerNotifier,
            SlackNotifier,
            WebhookNotifier,
            EmailNotifier,
            Alerting,
            ProberConfig,
        )
        for name, info in model.model_fields.items()
        for name in (info.alias or name,)
    }
)


def _issues_from(error: ValidationError) -> Iterator[ConfigIssue]:
    details = error.errors(include_url=False)
    # Every location that holds a failed value (a set: one lookup per error, not a scan).
    failed_inside = {
        detail["loc"][:end] for detail in details for end in range(1, len(detail["loc"]))
    }
    for detail in details:
        if detail["type"] == "too_short" and detail["loc"] in failed_inside:
            continue  # pydantic counts only the items that validated: the item errors say it
        loc = _without_union_tags(detail["loc"])
        message = detail["msg"]
        kind = detail["type"]
        if kind == "extra_forbidden":
            message = _unknown_key(str(loc[-1]) if loc else "?")
        elif kind == "missing":
            message = "required"
        elif kind == "too_short":
            message = f"needs at least {detail.get('ctx', {}).get('min_length', 1)} item(s)"
        elif message.startswith(("Value error, ", "Assertion failed, ")):
            message = message.split(", ", 1)[1]
        yield ConfigIssue(_format_path(loc), message)


def _unknown_key(key: object) -> str:
    guess = difflib.get_close_matches(key, _ALL_FIELDS, n=1) if isinstance(key, str) else []
    return f"unknown key {key!r}" + (f" (did you mean {guess[0]!r}?)" if guess else "")


def _without_union_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the `slack` in `alerting.notifiers[1].slack.webhook_url` that pydantic inserts."""
    return tuple(
        part
        for index, part in enumerate(loc)
        if not (part in _NOTIFIER_TYPES and index >= 2 and loc[index - 2] == "notifiers")
    )


def _format_path(loc: tuple[Any, ...]) -> str:
    """`journeys[1].steps[0].expect[2]`; a key that is not a plain name is quoted, so a
    path is always one line: `headers['a b']`, `['a\\nb']`."""
    path = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            path += f"[{part}]"
        elif not isinstance(part, str):
            path += f"[{part!r}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]"
    return path or "(root)"


def _cross_reference_issues(raw: dict[str, Any]) -> Iterator[ConfigIssue]:
    """Checks across fields; they read the raw document so they run even when a field
    elsewhere is invalid, and every issue is reported at once."""
    journeys = raw.get("journeys")
    journeys = journeys if isinstance(journeys, list) else []
    steps_by_journey: dict[str, set[str]] = {}
    for index, journey in enumerate(journeys):
        if not isinstance(journey, dict):
            continue
        name = journey.get("name")
        if isinstance(name, str):
            if name in steps_by_journey:
                yield ConfigIssue(f"journeys[{index}].name", f"duplicate journey name {name!r}")
            steps = journey.get("steps")
            steps_by_journey[name] = (
                {
                    step["name"]
                    for step in steps or ()
                    if isinstance(step, dict) and isinstance(step.get("name"), str)
                }
                if isinstance(steps, list)
                else set()
            )
        yield from _journey_issues(f"journeys[{index}]", journey)
    known = set(steps_by_journey)

    for list_path in ("slos", "alerting.rules"):
        items: Any = raw
        for key in list_path.split("."):
            items = items.get(key) if isinstance(items, dict) else None
        for index, item in enumerate(items if isinstance(items, list) else ()):
            if not isinstance(item, dict) or not isinstance(item.get("journey"), str):
                continue
            journey_name = item["journey"]
            if journey_name not in known:
                yield ConfigIssue(
                    f"{list_path}[{index}].journey",
                    f"unknown journey {journey_name!r}" + _choices(journey_name, known),
                )
            elif (
                isinstance(item.get("step"), str)
                and item["step"] not in steps_by_journey[journey_name]
            ):
                yield ConfigIssue(
                    f"{list_path}[{index}].step",
                    f"journey {journey_name!r} has no step {item['step']!r}"
                    + _choices(item["step"], steps_by_journey[journey_name]),
                )
    yield from _rule_capture_issues(raw, journeys)
    yield from _notifier_name_issues(raw)
    slos = raw.get("slos")
    slo_names = [
        slo.get("name") for slo in (slos if isinstance(slos, list) else ()) if isinstance(slo, dict)
    ]
    for index, name in enumerate(slo_names):
        if name is not None and name in slo_names[:index]:
            yield ConfigIssue(f"slos[{index}].name", f"duplicate SLO name {name!r}")


def _rule_capture_issues(raw: dict[str, Any], journeys: list[Any]) -> Iterator[ConfigIssue]:
    """`avg(tokens_used)` needs a journey step that captures `tokens_used`."""
    captures: dict[str, set[str]] = {}
    for journey in journeys:
        if isinstance(journey, dict) and isinstance(journey.get("name"), str):
            steps = journey.get("steps")
            captures[journey["name"]] = {
                key
                for step in (steps if isinstance(steps, list) else ())
                if isinstance(step, dict) and isinstance(step.get("capture"), dict)
                for key in step["capture"]
                if isinstance(key, str)
            }
    alerting = raw.get("alerting")
    rules = alerting.get("rules") if isinstance(alerting, dict) else None
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        if not isinstance(rule, dict) or not isinstance(rule.get("journey"), str):
            continue
        if rule["journey"] not in captures:
            continue
        try:
            capture = parse_rule_expression(rule.get("when")).capture
        except RuleSyntaxError:
            continue  # reported by the field's own validation
        known = captures[rule["journey"]]
        if capture is not None and capture not in known:
            yield ConfigIssue(
                f"alerting.rules[{index}].when",
                f"journey {rule['journey']!r} captures no {capture!r}" + _choices(capture, known),
            )


def _notifier_name_issues(raw: dict[str, Any]) -> Iterator[ConfigIssue]:
    """Notifier names (default: the type) are unique: they key the outbox and the metrics."""
    alerting = raw.get("alerting")
    notifiers = alerting.get("notifiers") if isinstance(alerting, dict) else None
    seen: set[str] = set()
    for index, notifier in enumerate(notifiers if isinstance(notifiers, list) else ()):
        if not isinstance(notifier, dict):
            continue
        name = notifier.get("name") or notifier.get("type")
        if not isinstance(name, str):
            continue
        if name in seen:
            yield ConfigIssue(
                f"alerting.notifiers[{index}].name",
                f"duplicate notifier name {name!r}"
                if notifier.get("name")
                else f"a second {name} notifier: give each {name} notifier a 'name'",
            )
        seen.add(name)


def _choices(name: str, known: set[str]) -> str:
    if not known:
        return ""
    guess = difflib.get_close_matches(name, sorted(known), n=1)
    if guess:
        return f" (did you mean {guess[0]!r}?)"
    return f" (known: {', '.join(repr(name) for name in sorted(known))})"


def _journey_issues(path: str, journey: dict[str, Any]) -> Iterator[ConfigIssue]:
    """Step names are unique; every `${capture}` is captured by an earlier step."""
    steps = journey.get("steps")
    if not isinstance(steps, list):
        return
    captured: set[str] = set()
    step_names: set[str] = set()
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        step_path = f"{path}.steps[{index}]"
        name = step.get("name")
        if isinstance(name, str):
            if name in step_names:
                yield ConfigIssue(f"{step_path}.name", f"duplicate step name {name!r}")
            step_names.add(name)
        capture = step.get("capture")
        for field_path, value in _raw_templated_fields(step):
            try:
                compiled = compile_value(value)
            except TemplateSyntaxError:
                continue  # reported by the field's own validation
            for variable in variables_in(compiled):
                if variable.kind == "capture" and variable.name not in captured:
                    why = (
                        "it is captured by this same step, after the request"
                        if isinstance(capture, dict) and variable.name in capture
                        else "no earlier step captures it"
                    )
                    yield ConfigIssue(
                        f"{step_path}.{field_path}", f"unknown variable {variable}: {why}"
                    )
        if isinstance(capture, dict):
            captured.update(key for key in capture if isinstance(key, str))


def _raw_templated_fields(step: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if isinstance(step.get("url"), str):
        yield "url", step["url"]
    for section in ("headers", "query"):
        if isinstance(step.get(section), dict):
            for key, value in step[section].items():
                yield _format_path((section, key)), value
    for section in ("json", "body"):
        if step.get(section) is not None:
            yield section, step[section]
