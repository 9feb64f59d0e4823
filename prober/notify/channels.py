"""The notifier interface, the registry from the config's `type:` to a factory, and what
every notifier shares (settings read from the environment, HTTP POST with its errors
classified).

A **notifier** is one method, `send(notifications, now)`: deliver these, in order, or
raise `DeliveryError`. It knows nothing of the outbox, retries, metrics or redaction:
the sender (`prober.notify.sender`) does those once for all of them.

A **channel** is one delivery target with its own queue: a Slack, webhook or email
notifier is one channel (keyed by its name); an Alertmanager notifier is one channel per
URL of its cluster (keyed `name@HASH` of the URL), so an Alertmanager that is down delays
only its own copy of each alert.

**Errors.** `DeliveryError(permanent=False)` is retried with backoff until
`dead_letter_after`; `permanent=True` means the receiver refused *this message* (HTTP
400, 413, 422; an SMTP 5xx for the message or its recipients) and it is dead-lettered at
once. Everything else — connection failures, timeouts, 5xx, 429 (honouring Retry-After),
and also 401/403/404, which an operator fixes in the receiver or the config — is retried:
the queued messages then still go out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

from prober.config import AlertmanagerNotifier, EmailNotifier, SlackNotifier, WebhookNotifier
from prober.errors import ConfigError, ConfigIssue
from prober.http import HttpClient, HttpFailure, HttpRequest, NetworkSettings, TlsSettings
from prober.notify.message import Notification
from prober.notify.planner import ChannelPolicy, FlapPolicy
from prober.redaction import redact, register_secret
from prober.templates import RenderScope, TemplateError, compile_template

__all__ = [
    "Channel",
    "DeliveryError",
    "Factory",
    "Notifier",
    "NotifierConfig",
    "checked_url",
    "client_for",
    "http_post",
    "origin_of",
    "person_policy",
    "read_setting",
    "secret_setting",
    "url_hash",
]

NotifierConfig = AlertmanagerNotifier | SlackNotifier | WebhookNotifier | EmailNotifier
#: HTTP statuses that refuse the message itself: sending it again cannot help.
PERMANENT_STATUSES: Final = frozenset({400, 413, 422})
MAX_RETRY_AFTER: Final = 3600.0


class DeliveryError(Exception):
    """A delivery that did not happen. The message must already be free of secrets (the
    sender redacts it once more before logging or storing it)."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Notifier(Protocol):
    async def send(self, notifications: Sequence[Notification], now: float) -> None:
        """Deliver these notifications (in order) or raise `DeliveryError`."""


@dataclass(frozen=True, eq=False)
class Channel:
    """One delivery target: its notifier, queue key, planning policy and retry settings."""

    key: str
    name: str  # the notifier's name: the `notifier` metric label
    type: str
    notifier: Notifier
    policy: ChannelPolicy
    settings: NotifierConfig  # the config it was built from (a reload keeps equal ones)
    batch_size: int = 1
    resend_interval: float | None = None  # Alertmanager: the active set is re-sent

    @property
    def backoff_initial(self) -> float:
        return self.settings.backoff_initial

    @property
    def backoff_max(self) -> float:
        return self.settings.backoff_max

    @property
    def dead_letter_after(self) -> float:
        return self.settings.dead_letter_after


def read_setting(text: str, path: str, environ: Mapping[str, str] | None = None) -> str:
    """A notifier setting with its `${env.X}` / `${secret.X}` filled in; an unset variable
    is a config error at `path` (the daemon refuses to start, a reload is refused)."""
    if "${" not in text:
        return text
    scope = RenderScope(run_id="", environ=os.environ if environ is None else environ)
    try:
        return str(compile_template(text).render(scope))
    except TemplateError as error:
        raise ConfigError([ConfigIssue(path, str(error))]) from None


def secret_setting(text: str, path: str, environ: Mapping[str, str] | None = None) -> str:
    """`read_setting` for a value that is a secret however it is written."""
    value = read_setting(text, path, environ)
    register_secret(value)
    return value


def checked_url(url: str, path: str) -> str:
    """An http(s) URL; a password in it (`https://user:pass@host`) becomes a secret."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError([ConfigIssue(path, "must be an http:// or https:// URL")])
    if parts.password:
        register_secret(parts.password)
    return url


def origin_of(url: str) -> str:
    """`scheme://host:port` of a URL: enough to say where, never a path token or password."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:10]


def person_policy(settings: SlackNotifier | WebhookNotifier | EmailNotifier) -> ChannelPolicy:
    """Routing, repeats and flap hold of a notifier people read."""
    flap = settings.flapping
    return ChannelPolicy(
        frozenset(settings.severities),
        repeat_interval=settings.repeat_interval,
        flapping=FlapPolicy(flap.max_changes, flap.window, flap.settle),
    )


def client_for(settings: NotifierConfig, environ: Mapping[str, str] | None = None) -> HttpClient:
    """A notifier's HTTP client. Alert delivery always takes the full path (httpcore):
    through its `proxy_url`, else the environment's proxy, as curl would."""
    proxy_url = (
        read_setting(settings.proxy_url, f"{settings.name_or_type()}.proxy_url", environ)
        if settings.proxy_url is not None
        else None
    )
    network = NetworkSettings(
        tls=TlsSettings(ca_file=settings.tls_ca_file, insecure_skip_verify=not settings.tls_verify),
        proxy_url=proxy_url,
    )
    return HttpClient(network, full_path=True, environ=environ)


async def http_post(
    client: HttpClient,
    url: str,
    body: object,
    *,
    where: str,
    timeout: float,  # noqa: ASYNC109 - a per-request deadline handed to the HTTP layer
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    """POST a JSON document (already-encoded bytes are sent as they are); raise
    `DeliveryError` unless the answer is 2xx. `where` names the receiver in errors."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = HttpRequest(
        "POST",
        url,
        headers=(("Content-Type", "application/json"), *headers),
        content=content,
        timeout=timeout,
    )
    async with client.session(keep_alive=False) as session:
        outcome = await session.send(request)
    if isinstance(outcome, HttpFailure):
        raise DeliveryError(f"{where}: {outcome.failure.reason}: {redact(outcome.failure.message)}")
    if 200 <= outcome.status_code < 300:
        return
    excerpt = redact(outcome.text().strip())[:200]  # masked before it is cut
    message = f"{where} answered {outcome.status_code}" + (f": {excerpt}" if excerpt else "")
    raise DeliveryError(
        message,
        permanent=outcome.status_code in PERMANENT_STATUSES,
        retry_after=_retry_after(outcome.header("retry-after"))
        if outcome.status_code in (429, 503)
        else None,
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP date: the backoff decides


Factory = Callable[[NotifierConfig, str, Mapping[str, str] | None], tuple[Channel, ...]]
