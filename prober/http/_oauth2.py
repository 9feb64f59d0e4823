"""OAuth 2.0 client credentials (RFC 6749 §4.4): one token per (token URL, client, scopes),
cached across runs and fetched again before it expires.

A token is used until `REFRESH_MARGIN` before its `expires_in` ends (at most half its
life early, for short-lived tokens), so a run never sends one that expires in flight. A
token response without `expires_in` is kept `DEFAULT_LIFETIME`. Concurrent runs that need
a token while one is being fetched wait for that fetch (one request, not one per run).

The client authenticates with HTTP Basic (`client_auth: header`, the method every server
must support, RFC 6749 §2.3.1) or in the form body (`client_auth: body`). A token that
cannot be had — the endpoint unreachable, an error status, a body without
`access_token` — raises `TokenError` with a message fit for the step's failure (reason
`auth`); it is not cached, so the next run asks again. The client secret and every token
are registered as secrets, so neither is ever shown.

The time comes from the injected `clock` (monotonic seconds); the HTTP exchange from the
injected `post`, so the cache and its expiry are unit-tested without a network.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from prober.redaction import redact, register_secret, secrets

__all__ = ["DEFAULT_LIFETIME", "REFRESH_MARGIN", "ClientCredentials", "TokenError", "TokenSource"]

REFRESH_MARGIN = 60.0
DEFAULT_LIFETIME = 300.0

#: `post(url, headers, body, budget_seconds) -> (status, body)`; raises OSError-like errors for
#: a network failure (their text is shown, masked).
Post = Callable[[str, list[tuple[str, str]], bytes, float], Awaitable[tuple[int, bytes]]]


class TokenError(Exception):
    """No token could be had; the message says why, with no secret in it."""


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    token_url: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ()
    client_auth: str = "header"  # header | body


class TokenSource:
    """Tokens for one set of client credentials."""

    def __init__(self, credentials: ClientCredentials, post: Post, clock: Callable[[], float]):
        self.credentials = credentials
        self._post = post
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._fetching: asyncio.Future[str] | None = None
        register_secret(credentials.client_secret)

    async def token(self, budget: float) -> str:
        """A token valid for a while yet; raises `TokenError`."""
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.ensure_future(self._fetch(budget))
            self._fetching.add_done_callback(_retrieve)
        return await asyncio.shield(self._fetching)

    def forget(self) -> None:
        """Drop the cached token (the target answered 401 to it)."""
        self._token = None

    async def _fetch(self, budget: float) -> str:
        credentials = self.credentials
        form = [("grant_type", "client_credentials")]
        if credentials.scopes:
            form.append(("scope", " ".join(credentials.scopes)))
        headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
        ]
        if credentials.client_auth == "body":
            form += [
                ("client_id", credentials.client_id),
                ("client_secret", credentials.client_secret),
            ]
        else:
            # RFC 6749 §2.3.1: each part form-encoded before the Basic encoding.
            pair = f"{_form(credentials.client_id)}:{_form(credentials.client_secret)}"
            encoded = base64.b64encode(pair.encode()).decode("ascii")
            headers.append(("Authorization", f"Basic {encoded}"))
        started = self._clock()
        try:
            status, body = await self._post(
                credentials.token_url, headers, urlencode(form).encode("ascii"), budget
            )
        except TokenError:
            raise
        except Exception as error:  # the network's words, masked
            raise TokenError(
                redact(f"token request to {credentials.token_url} failed: {error}")
            ) from None
        if status != 200:
            detail = _oauth_error(body)
            raise TokenError(
                redact(
                    f"token endpoint {credentials.token_url} answered {status}"
                    + (f": {detail}" if detail else "")
                )
            )
        try:
            document = json.loads(body)
            token = document["access_token"]
            if not isinstance(token, str) or not token:
                raise KeyError("access_token")
        except (ValueError, KeyError, TypeError):
            raise TokenError(
                f"token endpoint {credentials.token_url} answered without an access_token"
            ) from None
        # Tokens rotate: the registry keeps the slot's last few, not every token ever seen.
        secrets.register(token, slot=("oauth2", credentials.token_url, credentials.client_id))
        lifetime = document.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_LIFETIME
        self._token = token
        self._refresh_at = started + max(lifetime - REFRESH_MARGIN, lifetime / 2)
        return token


def _form(value: str) -> str:
    return quote(value, safe="").replace("%20", "+")


def _oauth_error(body: bytes) -> str:
    """RFC 6749 §5.2's `error` (and description), when the body has them."""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(document, dict) or not isinstance(document.get("error"), str):
        return ""
    description = document.get("error_description")
    text = str(document["error"]) + (f" ({description})" if isinstance(description, str) else "")
    return redact(text)[:200]  # masked before it is cut, so no cut can expose a secret's start


def _retrieve(future: asyncio.Future[str]) -> None:
    """A fetch whose waiters all gave up must not log 'exception never retrieved'."""
    if not future.cancelled():
        future.exception()


def scopes_of(value: str | Sequence[str]) -> tuple[str, ...]:
    """Scopes as a config gives them: a list, or one space-separated string."""
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(value)
