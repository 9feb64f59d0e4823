"""Secret redaction (`prober.redaction.SecretRegistry`), always on a fresh registry."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prober.redaction import CAPTURES_KEPT, MASK, SecretRegistry
from tests.conftest import PROPERTY_SETTINGS


def registry(*secrets: str) -> SecretRegistry:
    """A fresh registry holding `secrets` (never the process-wide one)."""
    fresh = SecretRegistry()
    for secret in secrets:
        fresh.register(secret)
    return fresh


REDACTED = [
    ("raw", ["s3cr3t"], "token=s3cr3t", "token=***"),
    ("every-occurrence", ["s3cr3t"], "s3cr3t and s3cr3t", "*** and ***"),
    ("no-occurrence", ["s3cr3t"], "nothing to hide", "nothing to hide"),
    ("empty-text", ["s3cr3t"], "", ""),
    ("percent-encoded", ["p@ss w/rd"], "GET /login?pw=p%40ss%20w%2Frd", "GET /login?pw=***"),
    ("form-encoded", ["p@ss w/rd"], "user=a&pw=p%40ss+w%2Frd", "user=a&pw=***"),
    ("json-escaped-quote-backslash", ['a"b\\c'], '{"pw": "a\\"b\\\\c"}', '{"pw": "***"}'),
    ("json-escaped-newline", ["line1\nline2"], '{"pw": "line1\\nline2"}', '{"pw": "***"}'),
    ("json-escaped-non-ascii", ["pässword"], '{"pw": "p\\u00e4ssword"}', '{"pw": "***"}'),
    ("raw-non-ascii", ["pässword"], "pw=pässword", "pw=***"),
    ("percent-encoded-non-ascii", ["pässword"], "pw=p%C3%A4ssword", "pw=***"),
    ("regex-characters-are-literal", ["a.b*c"], "a.b*c axbbc", "*** axbbc"),
    ("longest-first-prefix", ["abc", "abcdef"], "abcdef abc", "*** ***"),
    ("longest-first-registered-after", ["abcdef", "abc"], "abcdef abc", "*** ***"),
    ("longest-first-encoded", ["pass", "my pass"], "q=my+pass", "q=***"),
    ("longest-first-overlap", ["abc", "bcd"], "abcd", "***d"),
    ("two-secrets", ["alpha", "omega"], "alpha to omega", "*** to ***"),
    ("empty-secret-ignored", [""], "anything at all", "anything at all"),
    ("empty-secret-beside-real", ["", "tok"], "a tok b", "a *** b"),
    ("registered-twice", ["tok", "tok"], "tok", "***"),
]


@pytest.mark.parametrize(
    ("secrets", "text", "expected"), [r[1:] for r in REDACTED], ids=[r[0] for r in REDACTED]
)
def test_redact(secrets: list[str], text: str, expected: str) -> None:
    """Every registered secret is masked, raw and in its encodings, longest match first."""
    assert registry(*secrets).redact(text) == expected


def test_fresh_registry_hides_nothing() -> None:
    """A registry with no secrets returns text unchanged."""
    assert SecretRegistry().redact("s3cr3t") == "s3cr3t"


def test_clear_forgets_every_secret() -> None:
    """After clear(), nothing is masked any more."""
    secrets = registry("s3cr3t", "other")
    secrets.clear()
    assert secrets.redact("s3cr3t other") == "s3cr3t other"


def test_register_after_clear() -> None:
    """A registry cleared and refilled masks only the new secret."""
    secrets = registry("old")
    secrets.clear()
    secrets.register("new")
    assert secrets.redact("old new") == "old ***"


def test_registries_are_independent() -> None:
    """Secrets registered in one registry are not masked by another."""
    registry("s3cr3t")
    assert SecretRegistry().redact("s3cr3t") == "s3cr3t"


LEAKS = [
    pytest.param(
        'pä"ss',
        '{"password":"pä\\"ss"}',
        '{"password":"***"}',
        id="json-escaped-ensure-ascii-false",
    ),
    pytest.param(
        "a b/c",
        "GET http://api/reset/a%20b/c/confirm",
        "GET http://api/reset/***/confirm",
        id="percent-encoded-path-keeps-slash",
    ),
]


@pytest.mark.parametrize(("secret", "text", "expected"), LEAKS)
def test_redact_encodings_the_http_layer_produces(secret: str, text: str, expected: str) -> None:
    """A secret is masked in the encodings prober's own HTTP requests give it."""
    assert registry(secret).redact(text) == expected


SECRETS = st.text(alphabet=st.characters(exclude_characters="*<>"), min_size=1, max_size=20)


@PROPERTY_SETTINGS
@given(SECRETS, st.sampled_from(["raw", "percent", "form", "json"]))
def test_every_variant_is_masked(secret: str, variant: str) -> None:
    """Each encoding of a secret, between delimiters, becomes exactly the mask."""
    encoded = {
        "raw": secret,
        "percent": quote(secret, safe=""),
        "form": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
    }[variant]
    assert registry(secret).redact(f"<{encoded}>") == f"<{MASK}>"


@PROPERTY_SETTINGS
@given(SECRETS, st.text(max_size=20), st.text(max_size=20))
def test_secret_never_survives(secret: str, before: str, after: str) -> None:
    """Whatever surrounds it, a secret without '*' never survives redaction."""
    assert secret not in registry(secret).redact(before + secret + after)


def _basic(user: str, secret: str) -> str:
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


ECHOES = [
    (
        "json-escaped-twice-quote",
        'pa"ss',
        'got "{\\"pw\\":\\"pa\\\\\\"ss\\"}"',
        'got "{\\"pw\\":\\"***\\"}"',
    ),
    ("json-escaped-twice-backslash", "pa\\ss", '"pa\\\\\\\\ss"', '"***"'),
    ("json-escaped-twice-non-ascii", "pässwörd", '"p\\\\u00e4ssw\\\\u00f6rd"', '"***"'),
    ("utf8-read-as-latin1", "pässwörd", "x-echo: pÃ¤sswÃ¶rd", "x-echo: ***"),
    ("utf8-read-as-latin1-json", "pässwörd", '"p\\u00c3\\u00a4ssw\\u00c3\\u00b6rd"', '"***"'),
    ("html-escaped", 'a"b<c>&d', "<td>a&quot;b&lt;c&gt;&amp;d</td>", "<td>***</td>"),
    ("percent-lower-hex", "p@ss w/rd", "pw=p%40ss%20w%2frd", "pw=***"),
    ("base64", "correct horse", base64.b64encode(b"correct horse").decode(), "***"),
    ("base64-urlsafe", "??>>??>>??", base64.urlsafe_b64encode(b"??>>??>>??").decode(), "***"),
]


@pytest.mark.parametrize(
    ("secret", "text", "expected"), [r[1:] for r in ECHOES], ids=[r[0] for r in ECHOES]
)
def test_redact_echoed_spellings(secret: str, text: str, expected: str) -> None:
    """A secret a target echoes back is masked in every encoding the echo gives it."""
    assert registry(secret).redact(text) == expected


@pytest.mark.parametrize(
    "user", ["", "a", "ab", "abc", "admin", "üser"], ids=lambda u: f"user={u!r}"
)
def test_basic_auth_hides_the_password(user: str) -> None:
    """In base64(user:secret), whatever the user's length, at most one 4-character group
    touching the secret stays readable: decoding what is left shows none of its bytes but two."""
    secret = 'p"a\\ss wörd/+=%x'
    shown = registry(secret).redact("Basic " + _basic(user, secret))
    assert MASK in shown
    visible = shown.removeprefix("Basic ").split(MASK)[0]
    assert len(visible) <= 4 * ((len(user.encode()) + 1) // 3 + 1)


def test_captured_slot_keeps_its_last_values() -> None:
    """A capture slot masks its last CAPTURES_KEPT values and forgets older ones."""
    secrets = SecretRegistry()
    for number in range(CAPTURES_KEPT + 1):
        secrets.register(f"token-{number}-abcdef", slot=("login", "token"))
    kept = [f"token-{n}-abcdef" for n in range(1, CAPTURES_KEPT + 1)]
    assert secrets.redact(" ".join(["token-0-abcdef", *kept])) == " ".join(
        ["token-0-abcdef"] + [MASK] * CAPTURES_KEPT
    )


def test_captured_secret_in_encodings() -> None:
    """A captured secret is masked in the same spellings as a configured one."""
    secrets = SecretRegistry()
    secrets.register('tok"en/+=', slot=("j", "t"))
    assert secrets.redact('{"a": "tok\\"en/+="} tok%22en%2F%2B%3D') == '{"a": "***"} ***'
