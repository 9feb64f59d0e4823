"""What goes into an HTTP path and what comes out: `HttpRequest`, `HttpResponse` (its
body decoded from its content codings, text decoded by an allow-listed charset),
`HttpFailure`."""

from __future__ import annotations

import codecs
import functools
import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prober.results import Failure, Phases

__all__ = ["TEXT_CODECS", "HttpFailure", "HttpRequest", "HttpResponse"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as a step (or a notifier) asks for it.

    `http2`: None leaves it to the client's settings; `compression`: offer the codings
    prober decodes (`Accept-Encoding`, unless the headers set one) — a compressed response
    is decoded either way."""

    method: str
    url: str  # absolute
    headers: tuple[tuple[str, str], ...] = ()
    params: Mapping[str, str] | None = None
    json_body: Any = None
    content: bytes | None = None
    timeout: float = 10.0
    follow_redirects: bool = False
    max_body_size: int = 1024 * 1024
    http2: bool | None = None
    compression: bool = True


class HttpResponse:
    """A received response, with its body read (up to the cap) and its phase timings."""

    __slots__ = (
        "_json",
        "_text",
        "body",
        "cert_expiry",
        "duration",
        "headers",
        "phases",
        "protocol",
        "status_code",
        "url",
    )

    def __init__(
        self,
        status_code: int,
        headers: list[tuple[str, str]],
        body: bytes,
        phases: Phases,
        duration: float,
        url: str,
        cert_expiry: float | None,
        protocol: str = "HTTP/1.1",
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.phases = phases
        self.duration = duration
        self.url = url
        self.cert_expiry = cert_expiry
        self.protocol = protocol  # "HTTP/1.1" or "HTTP/2"
        self._text: str | None = None
        self._json: Any = _UNSET

    @property
    def latency(self) -> float:
        return self.duration

    def header(self, name: str) -> str | None:
        name = name.lower()
        values = [value for key, value in self.headers if key.lower() == name]
        return ", ".join(values) if values else None

    def text(self) -> str:
        if self._text is None:
            codec = _text_codec(self.header("content-type") or "")
            table = _decoding_table(codec)
            if table is not None:
                self._text = codecs.charmap_decode(self.body, "strict", table)[0]
            else:
                self._text = self.body.decode(codec, errors="replace")
        return self._text

    def json(self) -> Any:
        if self._json is _UNSET:
            try:
                self._json = json.loads(self.body)
            except (ValueError, UnicodeDecodeError, RecursionError) as error:
                # RecursionError: nested deeper than the parser goes, e.g. `[[[[...`.
                self._json = _InvalidJson(str(error))
        if isinstance(self._json, _InvalidJson):
            raise ValueError(f"body is not valid JSON: {self._json.why}")
        return self._json


_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


def _charset(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type, lower-cased (as email.message gives it)."""
    match = _CHARSET.search(content_type)
    return match.group(1).lower() if match else None


#: The codecs a `charset` may pick (by `codecs.lookup` name): text encodings whose decoders
#: are linear C loops. Any other label — unknown, or a codec that is slow or unbounded on
#: hostile input (punycode, idna, utf-7, the escape codecs) — reads as UTF-8, as the
#: target's label must then be wrong.
TEXT_CODECS = frozenset(
    codecs.lookup(name).name
    for name in (
        "utf-8",
        "utf-8-sig",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
        "ascii",
        "latin-1",
        *(f"iso-8859-{part}" for part in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
        *(f"windows-{page}" for page in range(1250, 1259)),
        "koi8-r",
        "koi8-u",
        "shift_jis",
        "euc-jp",
        "iso-2022-jp",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "euc-kr",
    )
)


def _text_codec(content_type: str) -> str:
    """The codec to decode a body with: its `charset` if allowed, else UTF-8."""
    charset = _charset(content_type)
    if charset is None:
        return "utf-8"
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return "utf-8"
    return name if name in TEXT_CODECS else "utf-8"


@functools.cache
def _decoding_table(codec: str) -> str | None:
    """A single-byte codec's table with its undefined bytes mapped to U+FFFD, else None.

    Decoding with errors="replace" calls the error handler once per undefined byte, which
    on a body of nothing else is a hundred times slower than the decode itself; with the
    table patched there are no errors, and the result is the same."""
    try:
        module = importlib.import_module("encodings." + codec.replace("-", "_"))
    except ImportError:
        return None
    table = getattr(module, "decoding_table", None)
    return table.replace("\ufffe", "\ufffd") if isinstance(table, str) else None


class _InvalidJson:
    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """The request did not produce a response: why, and how far it got."""

    failure: Failure
    phases: Phases
    duration: float
