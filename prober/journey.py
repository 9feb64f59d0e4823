"""Run one journey: its steps in order, sharing captures, until one fails.

Each run gets a `run_id` (32 hex digits, which is also the W3C trace id of its
requests): every request carries `X-Request-ID: <run_id>-<step number>` and a
`traceparent`, so a failed probe can be found in the target's own logs and traces.

A run's `duration_seconds` is the sum of its steps' measured network time (see
`prober.http`), not the wall time of the prober's own bookkeeping around them.

A step with no `status` condition requires a 2xx status. A failed step is reported
with the first reason that applies, in this order: template (the request could not be
built), the HTTP layer's reasons, status, assertion, capture. Every message that could
echo a response or request passes through `redact`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prober.config import Defaults, Journey, ProberConfig, Step
from prober.http import HttpClient, HttpFailure, HttpRequest, HttpResponse
from prober.redaction import redact
from prober.results import Failure, RunResult, StepResult
from prober.templates import RenderScope, TemplateError, render_value

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
        self._wall_clock = wall_clock
        self._environ = environ if environ is not None else os.environ
        self._base_headers = tuple(config.target.headers.items())
        self._throttle = throttle  # awaited with each request's URL: the per-host rate limit

    async def run(self, journey: Journey, *, steps: int | None = None) -> RunResult:
        """Run the journey (or only its first `steps` steps) once."""
        run_id = new_run_id()
        started_at = self._wall_clock()
        deadline = time.monotonic() + journey.timeout if journey.timeout is not None else None
        scope = RenderScope(run_id=run_id, environ=self._environ)
        results: list[StepResult] = []
        defaults = self.config.defaults
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
                if self._throttle is not None:
                    await self._throttle(request.url)
                outcome = await session.send(request)
                result = _judge(step, outcome, scope.captures, request_id)
                results.append(result)
                if not result.success:
                    break
        return RunResult(
            journey=journey.name,
            run_id=run_id,
            started_at=started_at,
            duration_seconds=sum(step.duration_seconds for step in results),
            steps=tuple(results),
            captures=dict(scope.captures),
        )

    def _build_request(
        self,
        step: Step,
        scope: RenderScope,
        defaults: Defaults,
        timeout: float,
        request_id: str,
        run_id: str,
    ) -> HttpRequest:
        url = join_url(self.base_url, _text(step.url.render(scope)))
        headers = dict(self._base_headers)
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
        )


def _judge(
    step: Step, outcome: HttpResponse | HttpFailure, captures: dict[str, Any], request_id: str
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
    for name, subject in step.capture.items():
        found, value = subject.extract_value(response)
        if not found:
            return Failure("capture", redact(f"capture {name}: {subject.text} {value}"))
        captures[name] = value
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
