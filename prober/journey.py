"""Run one journey: its steps in order, sharing captures, until one fails.

Each run gets a `run_id` (32 hex digits, which is also the W3C trace id of its
requests): every request carries `X-Request-ID: <run_id>-<step number>` and a
`traceparent`, so a failed probe can be found in the target's own logs and traces.

A run's `duration_seconds` is the sum of its steps' measured network time (see
`prober.http`), not the wall time of the prober's own bookkeeping around them.

A step with no `status` condition requires a 2xx status. A failed step is reported
with the first reason that applies, in this order: template (the request could not be
built), config (the prober's own TLS setup failed: an unreadable CA file), the HTTP
layer's reasons, status, assertion, capture. Every message that could
echo a response or request passes through `redact`.

Secret captures (`Journey.secret_captures`) are registered with `prober.redaction` as
soon as a response holds them — before that response's conditions are judged, whose
messages may quote the body — and are left out of `RunResult.captures`, which the state
file and `export` keep; the other captured values are kept with any secret they contain
masked. Non-text captured values (numbers, booleans) are not registered: a credential
is text, and masking every `1` would blind the logs.
"""

from __future__ import annotations

import dataclasses
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prober.config import Auth, Defaults, Journey, OAuth2ClientCredentials, ProberConfig, Step
from prober.http import (
    ClientCredentials,
    HttpClient,
    HttpFailure,
    HttpRequest,
    HttpResponse,
    TlsSetupError,
    TokenError,
    TokenSource,
    basic_credentials,
)
from prober.redaction import redact, register_secret
from prober.results import Failure, RunResult, StepResult
from prober.templates import (
    RenderScope,
    Template,
    TemplateError,
    TemplateSyntaxError,
    compile_template,
    render_value,
)

__all__ = ["JourneyRunner", "join_url", "new_run_id"]


# Trace and run ids must be unique, not secret: a seeded PRNG is a tenth of the cost of
# the secrets module per id (measurable at hundreds of runs per second).
_ids = random.Random()


def new_run_id() -> str:
    """32 lowercase hex digits: a valid, non-zero W3C trace id."""
    while True:
        run_id = f"{_ids.getrandbits(128):032x}"
        if run_id != "0" * 32:
            return run_id


def join_url(base_url: str, url: str) -> str:
    """Absolute URLs stay; relative ones are appended to the base URL, keeping its path
    (`https://api.example.com/prod` + `/health` → `https://api.example.com/prod/health`)."""
    if url.startswith(("http://", "https://")):
        return url
    if not url:
        return base_url
    return base_url.rstrip("/") + "/" + url.lstrip("/")


class JourneyRunner:
    """Runs journeys of one config through one `HttpClient`."""

    def __init__(
        self,
        config: ProberConfig,
        client: HttpClient,
        *,
        base_url: str | None = None,
        wall_clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        throttle: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.base_url = (base_url or config.target.base_url).rstrip("/")
        try:  # `${env.HOST}`: rendered per run (the config checked it; --base-url is literal)
            self._base_url = compile_template(self.base_url)
        except TemplateSyntaxError:
            self._base_url = Template(self.base_url, (self.base_url,))
        self._wall_clock = wall_clock
        self._environ = environ if environ is not None else os.environ
        self._base_headers = tuple(config.target.headers.items())
        self._throttle = throttle  # awaited with each request's URL: the per-host rate limit
        self._secret_captures: dict[str, tuple[Journey, frozenset[str]]] = {}
        self._tokens: dict[OAuth2ClientCredentials, TokenSource] = {}

    async def run(self, journey: Journey, *, steps: int | None = None) -> RunResult:
        """Run the journey (or only its first `steps` steps) once."""
        run_id = new_run_id()
        started_at = self._wall_clock()
        deadline = time.monotonic() + journey.timeout if journey.timeout is not None else None
        scope = RenderScope(run_id=run_id, environ=self._environ)
        results: list[StepResult] = []
        defaults = self.config.defaults
        secret = self._secrets_of(journey)
        async with self.client.session(keep_alive=journey.keep_alive_or(defaults)) as session:
            for index, step in enumerate(journey.steps[:steps]):
                timeout = step.timeout_or(defaults)
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                request_id = f"{run_id}-{index + 1}"
                if timeout <= 0:
                    message = f"journey deadline of {journey.timeout:g}s exceeded before this step"
                    results.append(
                        StepResult(
                            step.name,
                            False,
                            0.0,
                            failure=Failure("timeout", message),
                            request_id=request_id,
                        )
                    )
                    break
                try:
                    request = self._build_request(
                        step, scope, defaults, timeout, request_id, run_id
                    )
                except TemplateError as error:
                    results.append(
                        StepResult(
                            step.name,
                            False,
                            0.0,
                            request_id=request_id,
                            failure=Failure("template", redact(str(error))),
                        )
                    )
                    break
                setup_fault = self._tls_setup_fault(request.url)
                if setup_fault is not None:
                    results.append(
                        StepResult(
                            step.name, False, 0.0, request_id=request_id, failure=setup_fault
                        )
                    )
                    break
                auth = step.auth or self.config.target.auth
                if auth is not None and not _has_header(request, "authorization"):
                    try:
                        authorization = await self._authorization(auth, scope, timeout)
                    except (TemplateError, TokenError) as error:
                        reason = "template" if isinstance(error, TemplateError) else "auth"
                        results.append(
                            StepResult(
                                step.name,
                                False,
                                0.0,
                                request_id=request_id,
                                failure=Failure(reason, redact(str(error))),
                            )
                        )
                        break
                    request = dataclasses.replace(
                        request, headers=(*request.headers, ("Authorization", authorization))
                    )
                if self._throttle is not None:
                    await self._throttle(request.url)
                outcome = await session.send(request)
                result = _judge(step, outcome, scope.captures, request_id, (journey.name, secret))
                results.append(result)
                if not result.success:
                    break
        return RunResult(
            journey=journey.name,
            run_id=run_id,
            started_at=started_at,
            duration_seconds=sum(step.duration_seconds for step in results),
            steps=tuple(results),
            captures={
                name: _masked(value) for name, value in scope.captures.items() if name not in secret
            },
        )

    def _tls_setup_fault(self, url: str) -> Failure | None:
        """An https request needs the client's TLS context; one that cannot be built (the
        CA file is gone or unreadable since the config was loaded) is the prober's fault,
        reason `config` — found before connecting, so a target that is also down does not
        hide it behind `connect`."""
        if not url.startswith("https://"):
            return None
        try:
            self.client.ssl_context()  # built once per client, then cached
        except (TlsSetupError, OSError, ssl.SSLError) as error:
            return Failure("config", redact(f"cannot set up TLS (tls_ca_file?): {error}"))
        return None

    def _secrets_of(self, journey: Journey) -> frozenset[str]:
        """`journey.secret_captures()`, worked out once per journey of this config."""
        cached = self._secret_captures.get(journey.name)
        if cached is None or cached[0] is not journey:
            cached = (journey, journey.secret_captures())
            self._secret_captures[journey.name] = cached
        return cached[1]

    def _build_request(
        self,
        step: Step,
        scope: RenderScope,
        defaults: Defaults,
        timeout: float,
        request_id: str,
        run_id: str,
    ) -> HttpRequest:
        url = join_url(_text(self._base_url.render(scope)), _text(step.url.render(scope)))
        headers = {name: _text(value.render(scope)) for name, value in self._base_headers}
        headers.update({name: _text(value.render(scope)) for name, value in step.headers.items()})
        headers.setdefault("Accept", "*/*")
        headers["X-Request-ID"] = request_id
        headers["traceparent"] = f"00-{run_id}-{_ids.getrandbits(64):016x}-01"
        params = {name: _text(value.render(scope)) for name, value in step.query.items()} or None
        json_body = render_value(step.json_body, scope) if step.json_body is not None else None
        content = _text(step.body.render(scope)).encode() if step.body is not None else None
        return HttpRequest(
            method=step.method,
            url=url,
            headers=tuple(headers.items()),
            params=params,
            json_body=json_body,
            content=content,
            timeout=timeout,
            follow_redirects=step.follow_redirects_or(defaults),
            max_body_size=step.max_body_size_or(defaults),
            http2=step.http2,
            compression=(step.compression or self.config.target.compression) != "none",
        )

    async def _authorization(self, auth: Auth, scope: RenderScope, budget: float) -> str:
        """The `Authorization` value `auth` asks for; raises `TemplateError` (a variable
        unset) or `TokenError` (no OAuth2 token could be had)."""
        if auth.basic is not None:
            username = _secret_text(auth.basic.username, scope)
            return basic_credentials(username, _secret_text(auth.basic.password, scope))
        if auth.bearer is not None:
            return f"Bearer {_secret_text(auth.bearer, scope)}"
        assert auth.oauth2 is not None
        source = self._tokens.get(auth.oauth2)
        if source is None:
            oauth2 = auth.oauth2
            credentials = ClientCredentials(
                token_url=_text(compile_template(oauth2.token_url).render(scope)),
                client_id=_text(compile_template(oauth2.client_id).render(scope)),
                client_secret=_secret_text(oauth2.client_secret, scope),
                scopes=oauth2.scopes,
                client_auth=oauth2.client_auth,
            )
            source = self._tokens[auth.oauth2] = TokenSource(
                credentials, self._post_form, time.monotonic
            )
        return f"Bearer {await source.token(budget)}"

    async def _post_form(
        self, url: str, headers: list[tuple[str, str]], body: bytes, budget: float
    ) -> tuple[int, bytes]:
        """The token endpoint's answer, over the target's network settings."""
        request = HttpRequest("POST", url, headers=tuple(headers), content=body, timeout=budget)
        async with self.client.session(keep_alive=False) as session:
            outcome = await session.send(request)
        if isinstance(outcome, HttpFailure):
            raise TokenError(
                f"token request to {url} failed: {outcome.failure.reason}:"
                f" {outcome.failure.message}"
            )
        return outcome.status_code, outcome.body


def _has_header(request: HttpRequest, name: str) -> bool:
    return any(key.lower() == name for key, _ in request.headers)


def _secret_text(text: str, scope: RenderScope) -> str:
    """A credential setting rendered, and registered as a secret however it was written."""
    value = _text(compile_template(text).render(scope))
    register_secret(value)
    return value


def _judge(
    step: Step,
    outcome: HttpResponse | HttpFailure,
    captures: dict[str, Any],
    request_id: str,
    secret: tuple[str, frozenset[str]] = ("", frozenset()),
) -> StepResult:
    """Turn an HTTP outcome into a step result: conditions, then captures."""
    if isinstance(outcome, HttpFailure):
        return StepResult(
            step.name,
            False,
            outcome.duration,
            phases=outcome.phases,
            failure=outcome.failure,
            request_id=request_id,
        )
    journey, secret_names = secret
    for name, capture in step.capture.items():
        if capture.secret or name in secret_names:
            found, value = capture.subject.extract_value(outcome)
            if found:
                _register_captured(value, (journey, name))
    failure = _first_failure(step, outcome, captures)
    return StepResult(
        name=step.name,
        success=failure is None,
        duration_seconds=outcome.duration,
        status_code=outcome.status_code,
        phases=outcome.phases,
        failure=failure,
        request_id=request_id,
        cert_expiry=outcome.cert_expiry,
    )


def _first_failure(step: Step, response: HttpResponse, captures: dict[str, Any]) -> Failure | None:
    status_failures: list[str] = []
    other_failures: list[str] = []
    for condition in step.expect:
        check = condition.evaluate(response)
        if not check.ok:
            (status_failures if condition.subject.kind == "status" else other_failures).append(
                check.message
            )
    if not step.has_status_condition and not 200 <= response.status_code < 300:
        status_failures.append(f"expected status 2xx, got {response.status_code}")
    if status_failures:
        return Failure("status", redact("; ".join(status_failures + other_failures)))
    if other_failures:
        return Failure("assertion", redact("; ".join(other_failures)))
    for name, capture in step.capture.items():
        found, value = capture.subject.extract_value(response)
        if not found:
            return Failure("capture", redact(f"capture {name}: {capture.subject.text} {value}"))
        captures[name] = value
    return None


def _register_captured(value: Any, slot: tuple[str, str]) -> None:
    """Register every text inside a secret captured value (a token, or an object's)."""
    pending, leaf = [value], 0
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            register_secret(item, slot=(*slot, leaf))  # a slot per text: each is kept
            leaf += 1
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _masked(value: Any) -> Any:
    """A captured value with every registered secret inside its texts masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
