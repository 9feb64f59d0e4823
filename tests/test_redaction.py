"""Secret redaction (`prober.redaction.SecretRegistry`), always on a fresh registry."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prober.redaction import MASK, SecretRegistry
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
