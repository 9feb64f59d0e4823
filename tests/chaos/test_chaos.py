"""Hostile targets (issue #8): every misbehaviour of `ChaosTarget` is a classified probe
failure, never a crash; the daemon keeps running, on time, in bounded memory, and leaks
no sockets — briefly here, and over a longer bounded soak (`test_soak.py`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from prober.config import parse_config
from prober.http import HttpClient
from prober.journey import JourneyRunner
from prober.results import RunResult
from tests.chaos.target import ChaosTarget
from tests.test_daemon import Daemon, sample, start_daemon, wait_for

__all__ = ["start_daemon"]  # the fixture, re-used from the daemon tests

pytestmark = pytest.mark.integration

TIMEOUT = "1s"


@dataclass(frozen=True)
class Case:
    name: str
    url: str  # a path on the chaos target, or `{expired}` / `{self_signed}` / an absolute URL
    expected: str  # a failure reason, or "success"
    step: str = ""  # extra step fields (YAML flow mapping entries)
    then_ok: bool = False  # a second step on the same connection must still work


CASES = [
    Case("ok", "/ok", "success", "expect: ['json.ok == true']"),
    Case("reset-before-response", "/reset-before", "other"),
    Case("reset-mid-body", "/reset-mid-body", "other"),
    Case("headers-then-silence", "/slowloris", "timeout"),
    Case("no-response-at-all", "/silence", "timeout"),
    Case("body-trickles-past-timeout", "/trickle", "timeout"),
    Case("50-mib-body", "/huge", "other"),
    Case("invalid-utf8-json", "/invalid-utf8", "assertion", "expect: ['json.status == \"ok\"']"),
    Case("invalid-utf8-as-text", "/invalid-utf8", "success", "expect: ['body contains \"ok\"']"),
    Case("invalid-json", "/invalid-json", "assertion", "expect: ['json.status == \"ok\"']"),
    Case("1-mib-header", "/huge-header", "other"),
    Case("http10-close-delimited", "/http10", "success", "expect: ['json.status == \"ok\"']"),
    Case("redirect-loop", "/redirect-loop", "other", "follow_redirects: true"),
    Case("content-length-too-short", "/length-short", "success", then_ok=True),
    Case("content-length-too-long", "/length-long", "other"),
    Case("not-http", "/garbage", "other"),
    Case("expired-certificate", "{expired}", "tls"),
    Case("self-signed-certificate", "{self_signed}", "tls"),
    Case("name-does-not-resolve", "http://prober-chaos.invalid/", "dns"),
]


def journey_name(case: Case, index: int) -> str:
    """The journey `chaos_config` makes of `cases[index]`."""
    return f"{case.name.replace('-', '_')}_{index}"


def chaos_config(target: ChaosTarget, cases: list[Case], *, interval: str = "1s") -> str:
    """One journey per case; the expired certificate's CA is trusted, so expiry is the fault."""
    journeys = []
    for index, case in enumerate(cases):
        url = case.url.format(expired=target.expired_url, self_signed=target.self_signed_url)
        if url.startswith("/"):
            url = target.url(url)
        extra = f", {case.step}" if case.step else ""
        steps = [f"{{name: get, url: '{url}'{extra}}}"]
        if case.then_ok:
            steps.append(f"{{name: then, url: '{target.url('/ok')}'}}")
        journeys.append(f"  - {{name: {journey_name(case, index)}, steps: [{', '.join(steps)}]}}")
    return (
        f"target: {{base_url: '{target.url('')}', tls_ca_file: '{target.ca_file}'}}\n"
        f"defaults: {{interval: {interval}, timeout: {TIMEOUT}, jitter: 0%,"
        " max_concurrency: 300, max_requests_per_second: 1000}\n"
        "journeys:\n" + "\n".join(journeys) + "\n"
    )


def run_all(config_text: str) -> list[RunResult]:
    config = parse_config(config_text)

    async def main() -> list[RunResult]:
        runner = JourneyRunner(config, HttpClient(ca_file=config.target.tls_ca_file))
        return list(await asyncio.gather(*(runner.run(j) for j in config.journeys)))

    return asyncio.run(main())


def outcome(result: RunResult) -> str:
    return "success" if result.success else result.failure.reason  # type: ignore[union-attr]


def test_every_misbehaviour_is_a_classified_failure(chaos: ChaosTarget) -> None:
    """Each case ends with the right reason (or succeeds where HTTP allows), within its
    timeout, and every connection is closed afterwards (nothing leaks)."""
    started = time.monotonic()
    results = run_all(chaos_config(chaos, CASES))
    elapsed = time.monotonic() - started
    got = {case.name: outcome(result) for case, result in zip(CASES, results, strict=True)}
    assert got == {case.name: case.expected for case in CASES}
    assert elapsed < 1.0 + 10.0  # all in parallel, each bounded by the 1 s timeout (+ slack)
    for case, result in zip(CASES, results, strict=True):
        if case.expected != "success":
            assert result.failure is not None, case.name
            assert result.failure.message, case.name
    wait_for(lambda: chaos.open_connections == 0, "the client to close every connection")


def test_failure_messages_say_what_happened(chaos: ChaosTarget) -> None:
    """The messages a person reads name the fault."""
    wanted = {
        "50-mib-body": "larger than max_body_size",
        "1-mib-header": "invalid response",
        "redirect-loop": "more than 10 redirects",
        "expired-certificate": "expired",
        "self-signed-certificate": "self-signed",
        "headers-then-silence": "reading the body",
        "no-response-at-all": "waiting for the response",
    }
    cases = [case for case in CASES if case.name in wanted]
    results = run_all(chaos_config(chaos, cases))
    messages = {
        case.name: result.failure.message if result.failure else ""
        for case, result in zip(cases, results, strict=True)
    }
    assert {name: wanted[name] in message for name, message in messages.items()} == dict.fromkeys(
        wanted, True
    ), messages


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_daemon_survives_every_misbehaviour_on_time(
    chaos: ChaosTarget, start_daemon: Callable[..., Daemon]
) -> None:
    """The daemon probes all the chaos at once: each journey's failures carry the right
    reason, runs stay on schedule (no overruns, no lag), memory stays bounded, and it
    still drains and exits 0 on SIGTERM."""
    daemon = start_daemon(chaos_config(chaos, CASES, interval="2s"))
    started = time.monotonic()
    names = [journey_name(case, index) for index, case in enumerate(CASES)]

    def runs(name: str) -> float:
        return sum(
            sample(metrics, "prober_journey_runs_total", journey=name, result=result) or 0
            for metrics in [daemon.metrics()]
            for result in ("success", "failure")
        )

    wait_for(lambda: all(runs(name) >= 3 for name in names), "three runs of every journey", 60)
    elapsed = time.monotonic() - started
    metrics = daemon.metrics()
    for case, name in zip(CASES, names, strict=True):
        if case.expected == "success":
            assert sample(metrics, "probe_success", journey=name) == 1, case.name
        else:
            failures = sample(
                metrics,
                "prober_step_failures_total",
                journey=name,
                step="get",
                reason=case.expected,
            )
            assert (failures or 0) >= 1, (case.name, metrics)
        # Each run is bounded by its 1 s timeout and the interval is 2 s: only a very busy
        # machine makes one overrun; more than one in a row would mean a stuck run.
        assert (sample(metrics, "prober_journey_overruns_total", journey=name) or 0) <= 1, name
    # On time: a 2 s interval gives about elapsed/2 runs; none may fall far behind.
    expected_runs = elapsed / 2
    assert min(runs(name) for name in names) >= expected_runs - 2
    assert rss_mib(daemon.process.pid) < 150
    assert daemon.process.poll() is None
    assert daemon.stop() == 0
    assert not [line for line in daemon.logs() if line.get("level") in ("critical", "CRITICAL")]
    assert "Traceback" not in daemon.log.read_text()
