"""Client-credentials tokens: cached to before expiry, one fetch for concurrent runs,
failures named without secrets, the client authenticated as configured."""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import parse_qs

import pytest

from prober.http._oauth2 import (
    DEFAULT_LIFETIME,
    REFRESH_MARGIN,
    ClientCredentials,
    TokenError,
    TokenSource,
)
from prober.redaction import redact

SECRET = "s3cr3t/with+chars="
CREDENTIALS = ClientCredentials("https://auth.test/oauth2/token", "probe-client", SECRET, ("api/read", "api/write"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """A token endpoint in memory: answers each request from a queue of (status, body)."""

    def __init__(self, *answers: tuple[int, object]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, str], dict[str, list[str]]]] = []
        self.gate: asyncio.Event | None = None

    async def post(self, url: str, headers: list[tuple[str, str]], body: bytes, budget: float) -> tuple[int, bytes]:
        self.requests.append((url, dict(headers), parse_qs(body.decode())))
        if self.gate is not None:
            await self.gate.wait()
        status, document = self.answers.pop(0)
        if isinstance(document, Exception):
            raise document
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        return status, raw


def token(name: str, expires_in: object = 3600) -> tuple[int, object]:
    return 200, {"access_token": name, "token_type": "Bearer", "expires_in": expires_in}


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_token_is_cached_until_the_refresh_margin() -> None:
    """One fetch serves every run until REFRESH_MARGIN before expiry, then a new one."""
    clock, endpoint = Clock(), Endpoint(token("tok-1"), token("tok-2"))
    source = TokenSource(CREDENTIALS, endpoint.post, clock)

    async def main() -> list[str]:
        seen = [await source.token(5)]
        clock.now += 3600 - REFRESH_MARGIN - 1
        seen.append(await source.token(5))
        clock.now += 1
        seen.append(await source.token(5))
        return seen

    assert run(main()) == ["tok-1", "tok-1", "tok-2"]
    assert len(endpoint.requests) == 2


@pytest.mark.parametrize(
    ("expires_in", "refresh_after"),
    [(3600, 3600 - REFRESH_MARGIN), (60, 30), (None, DEFAULT_LIFETIME - REFRESH_MARGIN), ("soon", DEFAULT_LIFETIME - REFRESH_MARGIN), (True, DEFAULT_LIFETIME - REFRESH_MARGIN)],
    ids=["hour", "short-lived-half", "absent", "not-a-number", "bool"],
)
def test_refresh_time(expires_in: object, refresh_after: float) -> None:
    """A token is refreshed REFRESH_MARGIN early, or at half its life if that is later."""
    clock, endpoint = Clock(), Endpoint(token("a", expires_in), token("b"))
    source = TokenSource(CREDENTIALS, endpoint.post, clock)

    async def main() -> tuple[str, str]:
        await source.token(5)
        clock.now += refresh_after - 0.001
        before = await source.token(5)
        clock.now += 0.002
        return before, await source.token(5)

    assert run(main()) == ("a", "b")


def test_concurrent_runs_share_one_fetch() -> None:
    """Ten runs needing a token at once make one request."""
    endpoint = Endpoint(token("tok"))
    endpoint.gate = asyncio.Event()
    source = TokenSource(CREDENTIALS, endpoint.post, Clock())

    async def main() -> list[str]:
        waiting = [asyncio.ensure_future(source.token(5)) for _ in range(10)]
        await asyncio.sleep(0)
        assert endpoint.gate is not None
        endpoint.gate.set()
        return await asyncio.gather(*waiting)

    assert run(main()) == ["tok"] * 10
    assert len(endpoint.requests) == 1


def test_client_secret_basic() -> None:
    """By default the client authenticates with Basic (each part form-encoded first)."""
    endpoint = Endpoint(token("tok"))
    run(TokenSource(CREDENTIALS, endpoint.post, Clock()).token(5))
    url, headers, form = endpoint.requests[0]
    assert url == CREDENTIALS.token_url
    assert form == {"grant_type": ["client_credentials"], "scope": ["api/read api/write"]}
    scheme, encoded = headers["Authorization"].split()
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "probe-client:s3cr3t%2Fwith%2Bchars%3D"


def test_client_secret_in_body() -> None:
    """client_auth: body sends the id and secret as form fields, no Authorization."""
    credentials = ClientCredentials(CREDENTIALS.token_url, "probe-client", SECRET, (), "body")
    endpoint = Endpoint(token("tok"))
    run(TokenSource(credentials, endpoint.post, Clock()).token(5))
    _, headers, form = endpoint.requests[0]
    assert "Authorization" not in headers
    assert form == {"grant_type": ["client_credentials"], "client_id": ["probe-client"], "client_secret": [SECRET]}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((401, {"error": "invalid_client", "error_description": "bad secret"}), r"answered 401: invalid_client \(bad secret\)"),
        ((500, b"<html>oops</html>"), "answered 500$"),
        ((200, {"token_type": "Bearer"}), "without an access_token"),
        ((200, b"not json"), "without an access_token"),
        ((200, {"access_token": ""}), "without an access_token"),
        ((200, OSError(f"connection refused while sending {SECRET}")), "failed: connection refused while sending \\*\\*\\*"),
    ],
    ids=["oauth-error", "server-error", "no-token", "not-json", "empty-token", "network"],
)
def test_failures_are_named_and_not_cached(answer: tuple[int, object], message: str) -> None:
    """A token that cannot be had says why (no secret), and the next call asks again."""
    endpoint = Endpoint(answer, token("tok"))
    source = TokenSource(CREDENTIALS, endpoint.post, Clock())
    with pytest.raises(TokenError, match=message) as failure:
        run(source.token(5))
    assert SECRET not in str(failure.value)
    assert run(source.token(5)) == "tok"


def test_secret_and_token_are_masked() -> None:
    """The client secret and every token fetched are registered secrets."""
    source = TokenSource(CREDENTIALS, Endpoint(token("tok-abcdef-123456")).post, Clock())
    run(source.token(5))
    assert redact(f"secret {SECRET} token tok-abcdef-123456") == "secret *** token ***"


def test_forget_fetches_again() -> None:
    """After a 401 from the target, the cached token is dropped."""
    endpoint = Endpoint(token("one"), token("two"))
    source = TokenSource(CREDENTIALS, endpoint.post, Clock())

    async def main() -> list[str]:
        first = await source.token(5)
        source.forget()
        return [first, await source.token(5)]

    assert run(main()) == ["one", "two"]
