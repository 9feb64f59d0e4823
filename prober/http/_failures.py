"""Where a target's fault becomes a failure reason and a message: the one boundary.

An error is classified by the phase in which it happened (`REASON_OF_PHASE`): while
resolving it is `dns`, while connecting `connect`, in the handshake (or any certificate
error) `tls`, after that `other`; running out of time is `timeout` in any phase but
resolving. The prober's own setup faults (`TlsSetupError`: a CA file gone, a key that will
not load) are `config`, never the target's `tls`. Messages name the phase and the host
(`connecting to api.test:443: Connection refused`) and have secrets masked however the
request or the target encoded them.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import httpcore

from prober.http._resolver import ResolutionError
from prober.http._tls import TlsSetupError
from prober.redaction import redact
from prober.results import Failure

__all__ = [
    "REASON_OF_PHASE",
    "body_holds_secret",
    "classify",
    "drop_tracebacks",
    "holds_secret",
    "redact_url",
    "size_words",
]

#: Where a request failed → the failure reason (a timeout is `timeout` except in `resolve`).
REASON_OF_PHASE: Mapping[str, str] = {
    "resolve": "dns",
    "connect": "connect",
    "tls": "tls",
    "processing": "other",
    "transfer": "other",
}


def classify(error: BaseException, phase: str, authority: str, timeout: float) -> Failure:
    """The failure an error from either HTTP path stands for."""
    where = f"{_PHASE_WORDS[phase]} {authority}"
    if isinstance(error, TlsSetupError):
        return Failure("config", redact(str(error)))
    if isinstance(error, ResolutionError) or (
        phase == "resolve" and isinstance(error, TimeoutError)
    ):
        return Failure(
            "dns", redact(str(error) or f"DNS resolution timed out after {timeout:g}s")
        )
    if isinstance(error, TimeoutError):
        return Failure("timeout", f"timed out after {timeout:g}s (during {where})")
    reason = REASON_OF_PHASE[phase]
    if _caused_by(error, ssl.SSLError) or _caused_by(error, ssl.CertificateError):
        reason = "tls"
    if isinstance(error, httpcore.ProxyError):
        reason = "connect"
        where = f"proxy tunnel to {authority}"
    return Failure(reason, redact(f"{where}: {_describe(error)}"))


_PHASE_WORDS = {
    "resolve": "resolving",
    "connect": "connecting to",
    "tls": "TLS handshake with",
    "processing": "waiting for the response from",
    "transfer": "reading the body from",
}


def _chain(error: BaseException, *, past_from_none: bool = True) -> Iterator[BaseException]:
    """`error`, then what caused it (`__cause__`, else `__context__`), and so on; each once,
    however the chain loops. `past_from_none=False` stops where `raise ... from None` said
    the context is not the story (e.g. a parser's words already rephrased)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        elif past_from_none or not current.__suppress_context__:
            current = current.__context__
        else:
            current = None


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(link, kind) for link in _chain(error))


def drop_tracebacks(error: BaseException) -> None:
    """Forget where a target's fault was raised, once it is a `Failure`.

    An exception out of asyncio (a failed TLS handshake, above all) sits in a reference
    cycle — its traceback's frames hold the future that holds it — together with the
    transport and its 256 KiB TLS buffer, which only the cyclic GC then frees. A target
    that fails its handshake ten times a second made the daemon's RSS climb by tens of
    MiB between collections (tests/chaos/test_soak.py); with the tracebacks gone,
    reference counting frees it all at once."""
    for link in _chain(error):
        link.__traceback__ = None


def _describe(error: BaseException) -> str:
    """The innermost useful message: errors may wrap OS and SSL errors."""
    messages: list[str] = []
    for link in _chain(error, past_from_none=False):
        text = str(link).strip()
        if text and text not in messages:
            messages.append(text)
            if len(messages) == 4:
                break
    if not messages:
        return type(error).__name__
    return messages[-1] if len(messages[-1]) > 8 else messages[0]


def redact_url(url: str) -> str:
    """`url` for a failure message, with secrets masked however the URL encodes them.

    httpx normalises escapes its own way (`p@ss w` becomes `p@ss%20w`, which is none of
    the encodings `redact` knows) and a target's Location may use any other, so secrets
    are masked in the URL as written, then again with its escapes decoded.
    """
    return redact(unquote(redact(url)))


def size_words(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    if size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} bytes"


def holds_secret(text: str) -> bool:
    """Whether `text` holds a registered secret value (raw or in an encoding that
    `prober.redaction` knows): the masked text then differs."""
    return redact(text) != text


def body_holds_secret(json_body: Any, content: bytes | None) -> bool:
    if json_body is not None:
        return holds_secret(json.dumps(json_body, ensure_ascii=False))
    return content is not None and holds_secret(content.decode("utf-8", errors="replace"))
