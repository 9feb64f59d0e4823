"""The one place that knows secret values, and scrubs them from any text.

Every `${secret.NAME}` value is registered here when the config is loaded and again
whenever it is rendered; every output that leaves prober (reports, the summary
table, log lines, error messages, status pages) passes through `redact`. Each secret
is matched raw and in the encodings in which an error message or an echoed request
would carry it (percent-encoded with and without `/` kept, form-encoded, JSON-escaped
with and without non-ASCII escaped), since exception texts from the HTTP layer echo URLs
and bodies.

This module holds prober's only process-wide mutable state, the default registry.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "SecretRegistry", "redact", "register_secret", "secrets"]

MASK = "***"


class SecretRegistry:
    """A set of secret values and a compiled pattern that finds any of them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()  # the HTTP server threads read while the loop registers

    def register(self, value: str) -> None:
        """Remember a secret value; empty values are ignored (there is nothing to hide)."""
        if not value or value in self._values:
            return
        with self._lock:
            self._values.add(value)
            variants: set[str] = set()
            for secret in self._values:
                variants.update(_encodings(secret))
            ordered = sorted(variants, key=len, reverse=True)  # longest first: no partial masks
            self._pattern = re.compile("|".join(re.escape(variant) for variant in ordered))

    def redact(self, text: str) -> str:
        """`text` with every known secret value replaced by `***`."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def clear(self) -> None:
        """Forget every secret (tests only)."""
        with self._lock:
            self._values.clear()
            self._pattern = None


def _encodings(secret: str) -> tuple[str, ...]:
    """The spellings in which `secret` can leave prober inside a URL, a form or JSON."""
    return (
        secret,
        quote(secret, safe=""),  # a query value or path segment encoded whole
        quote(secret),  # a URL path, '/' kept as it is (safe='/'): a%20b/c
        quote_plus(secret),  # a form body or query string: a+b
        json.dumps(secret)[1:-1],  # JSON, non-ASCII escaped: p\u00e4ss
        json.dumps(secret, ensure_ascii=False)[1:-1],  # JSON as httpx writes it: pä\"ss
    )


secrets = SecretRegistry()
register_secret = secrets.register
redact = secrets.redact
