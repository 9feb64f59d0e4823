"""The one place that knows secret values, and scrubs them from any text.

Every `${secret.NAME}` value is registered here when the config is loaded and again
whenever it is rendered, and every secret capture as it is captured; every output that
leaves prober (reports, the summary table, log lines, error messages, status pages, the
state file and `prober export`) passes through `redact`. Each secret is matched in every
spelling it can take on its way back (`_encodings`):

- raw, and its UTF-8 bytes read as latin-1 (a header echoed by a server that decodes
  header bytes as latin-1: `pässwörd` comes back as `pÃ¤sswÃ¶rd`);
- percent-encoded (with and without `/` kept, upper- and lower-case hex), form-encoded;
- JSON-escaped once and twice (an echo inside a JSON string, shown inside a failure
  message that quotes it again), with and without non-ASCII escaped, and HTML-escaped;
- base64 (standard and URL-safe), also where the secret follows a prefix of any length,
  as in basic auth's `base64(user:secret)`: base64 turns each 3 bytes into 4 characters,
  so after a prefix the secret's characters are one of three fixed strings, bar the one
  group of 4 that mixes prefix and secret (`_base64_fragments`). Fragments shorter than
  `MIN_BASE64_CHARS` are not masked: they would hide unrelated base64 text.

Secrets live in two tiers. Long-lived ones (the config's) are matched by one compiled
pattern, a trie of every spelling, built again only when the set changes. Captured ones
change every run (a login token), so they are kept per slot (journey and capture name),
the last `CAPTURES_KEPT` values of each, and matched by plain substring replacement: compiling a
pattern per run would cost more than the lines it scrubs.

This module holds prober's only process-wide mutable state, the default registry.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
import threading
from collections import deque
from collections.abc import Hashable
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "CAPTURES_KEPT",
    "MASK",
    "MIN_BASE64_CHARS",
    "SecretRegistry",
    "redact",
    "register_secret",
    "secrets",
]

MASK = "***"
#: Values kept per capture slot: the current run's token and the one before it, whose
#: run may still be writing its lines.
CAPTURES_KEPT = 2
#: The shortest base64 fragment that is masked (6 bytes of secret).
MIN_BASE64_CHARS = 8

_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")


class SecretRegistry:
    """A set of secret values and what finds any of them in a text."""

    def __init__(self) -> None:
        self._values: dict[str, frozenset[str]] = {}  # long-lived secret → its spellings
        self._pattern: re.Pattern[str] | None = None
        self._slots: dict[Hashable, deque[str]] = {}  # capture slot → its last values
        self._captured_spellings: dict[str, frozenset[str]] = {}  # each slot value's
        self._captured: tuple[str, ...] = ()  # every spelling of the slots', longest first
        self._lock = threading.Lock()  # the HTTP server threads read while the loop registers

    def register(self, value: str, *, slot: Hashable | None = None) -> None:
        """Remember a secret value; empty values are ignored (there is nothing to hide).
        With a `slot` (a captured value), only the slot's last `CAPTURES_KEPT` values are
        kept."""
        if not value:
            return
        if slot is None:
            if value in self._values:
                return
            with self._lock:
                self._values[value] = _encodings(value)
                self._pattern = re.compile(_trie_pattern(set().union(*self._values.values())))
            return
        with self._lock:
            kept = self._slots.setdefault(slot, deque(maxlen=CAPTURES_KEPT))
            if value in kept:
                return
            kept.append(value)
            live = {item for values in self._slots.values() for item in values}
            spellings = {
                item: self._captured_spellings.get(item) or _encodings(item) for item in live
            }
            self._captured_spellings = spellings
            variants = set().union(
                *(found for item, found in spellings.items() if item not in self._values)
            )
            self._captured = tuple(sorted(variants, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """`text` with every known secret value replaced by `***`."""
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        for variant in self._captured:
            if variant in text:
                text = text.replace(variant, MASK)
        return text

    def contains_secret(self, text: str) -> bool:
        """Whether `text` holds any known secret, in any of its spellings."""
        return bool(text) and self.redact(text) != text

    def clear(self) -> None:
        """Forget every secret (tests only)."""
        with self._lock:
            self._values.clear()
            self._pattern = None
            self._slots.clear()
            self._captured_spellings = {}
            self._captured = ()


def _trie_pattern(words: set[str]) -> str:
    """One regular expression finding any of `words`, longest first where they share a
    start, written as a trie (`a(?:bc|d)`): the engine then tries one branch per next
    character rather than every word at every position."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def branch(node: dict[str, Any]) -> str:
        children = [re.escape(char) + branch(child) for char, child in sorted(node.items()) if char]
        if not children:
            return ""
        body = children[0] if len(children) == 1 else "(?:" + "|".join(children) + ")"
        return f"(?:{body})?" if "" in node else body  # greedy: the longer word first

    return branch(trie)


def _encodings(secret: str) -> frozenset[str]:
    """Every spelling in which `secret` can come back (see the module docstring)."""
    readings = {secret}
    with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate has no UTF-8 bytes
        readings.add(secret.encode("utf-8").decode("latin-1"))
    escaped: set[str] = set()
    for reading in readings:
        once = {json.dumps(reading)[1:-1], json.dumps(reading, ensure_ascii=False)[1:-1]}
        twice = {
            json.dumps(item, ensure_ascii=ascii_only)[1:-1]
            for item in once
            for ascii_only in (True, False)
        }
        escaped.update({reading} | once | twice)
    spellings = escaped | {html.escape(item) for item in escaped}
    spellings |= {item.replace("&#x27;", "&#39;") for item in spellings}
    try:
        for url in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
            spellings |= {url, _PERCENT_HEX.sub(lambda hexa: hexa.group(0).lower(), url)}
        spellings |= _base64_fragments(secret.encode("utf-8"))
    except UnicodeEncodeError:
        pass
    spellings.discard("")
    return frozenset(spellings)


def _base64_fragments(secret: bytes) -> set[str]:
    """The base64 characters that only `secret` determines, after a prefix of 0, 1 or 2
    bytes modulo 3, with the padding it ends with and without (more may follow it)."""
    fragments: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + secret).decode("ascii")
        start = 4 if offset else 0  # the group that mixes prefix and secret
        whole_groups = (offset + len(secret)) // 3 * 4
        for fragment in (encoded[start:], encoded[start:whole_groups]):
            if len(fragment) >= MIN_BASE64_CHARS:
                fragments.add(fragment)
                fragments.add(fragment.replace("+", "-").replace("/", "_"))
                fragments.add(quote(fragment, safe=""))
    return fragments


secrets = SecretRegistry()
register_secret = secrets.register
redact = secrets.redact
