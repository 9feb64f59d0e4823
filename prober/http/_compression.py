"""Response content codings (RFC 9110 §8.4): which ones prober asks for, and decoding a
received body within a size cap.

`ACCEPT_ENCODING` is what a request says by default: every coding decoded here, as real
clients do, since a request without `Accept-Encoding` accepts any coding and many servers
compress whatever the request says. `decode_body` undoes a `Content-Encoding` list (last
applied first) and never produces more than `limit` bytes: a small body that inflates
past the cap (a decompression bomb) raises `DecodedTooLarge` after doing at most `limit`
bytes of work per coding, so memory stays bounded whatever the target sends.

The codecs are the well-kept bindings: zlib (gzip, deflate), Google's `brotli` (br) and
`zstandard` (zstd); each is driven through its incremental interface with an output bound,
never its one-shot `decompress`, which has none. `deflate` is the zlib format by the RFC,
but servers also send raw DEFLATE; both are accepted, as browsers and httpx do.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import brotli
import zstandard

__all__ = [
    "ACCEPT_ENCODING",
    "CODINGS",
    "BadEncoding",
    "DecodedTooLarge",
    "decode_body",
]

#: What `Accept-Encoding` says unless a step sets its own (or `compression: none`).
ACCEPT_ENCODING = "gzip, deflate, br, zstd"

_IDENTITY = frozenset({"", "identity"})


class DecodedTooLarge(Exception):
    """The decoded body would be larger than the cap."""


class BadEncoding(Exception):
    """The body is not valid in the coding its `Content-Encoding` names, or the coding is
    one prober cannot decode. The message names the coding."""


def _gzip(data: bytes, limit: int) -> bytes:
    # 16 + MAX_WBITS: the gzip wrapper; members one after another are one body (RFC 1952).
    out = bytearray()
    while data:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += decoder.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            raise DecodedTooLarge
        if not decoder.eof:
            raise BadEncoding("gzip: truncated stream")
        data = decoder.unused_data
    return bytes(out)


def _deflate(data: bytes, limit: int) -> bytes:
    try:
        return _inflate(data, limit, zlib.MAX_WBITS)
    except zlib.error:
        return _inflate(data, limit, -zlib.MAX_WBITS)


def _inflate(data: bytes, limit: int, wbits: int) -> bytes:
    decoder = zlib.decompressobj(wbits)
    out = decoder.decompress(data, limit + 1)
    if len(out) > limit:
        raise DecodedTooLarge
    if not decoder.eof:
        raise BadEncoding("deflate: truncated stream")
    return out


def _brotli(data: bytes, limit: int) -> bytes:
    decoder = brotli.Decompressor()
    out = bytearray(decoder.process(data, output_buffer_limit=limit + 1))
    while len(out) <= limit and not decoder.can_accept_more_data():
        # The output buffer filled: brotli holds more, to be drained with empty input.
        more = decoder.process(b"", output_buffer_limit=limit + 1 - len(out))
        if not more:
            break
        out += more
    if len(out) > limit:
        raise DecodedTooLarge
    if not decoder.is_finished():
        raise BadEncoding("br: truncated stream")
    return bytes(out)


def _zstd(data: bytes, limit: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(data), read_across_frames=True
    )
    out = reader.read(limit + 1)
    if len(out) > limit:
        raise DecodedTooLarge
    # The bounded reader stops quietly at a truncated frame; a frame-by-frame pass (bounded
    # now: the whole output is known to fit) tells whether every frame ended.
    rest = data
    while rest:
        decoder = zstandard.ZstdDecompressor().decompressobj()
        decoder.decompress(rest)
        if not decoder.eof:
            raise BadEncoding("zstd: truncated stream")
        rest = decoder.unused_data
    return out


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}

#: The content codings `decode_body` undoes.
CODINGS = frozenset(_DECODERS)


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """`body` with every coding of `content_encoding` undone (the last listed first), at
    most `limit` bytes; raises `DecodedTooLarge` or `BadEncoding`."""
    if not content_encoding:
        return body
    codings = [coding.strip().lower() for coding in content_encoding.split(",")]
    for coding in reversed(codings):
        if coding in _IDENTITY:
            continue
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise BadEncoding(f"unsupported Content-Encoding {coding!r}")
        if not body:
            continue  # an empty body stays empty whatever it is labelled (HEAD, 204, …)
        try:
            body = decoder(body, limit)
        except (zlib.error, brotli.error, zstandard.ZstdError) as error:
            raise BadEncoding(f"{coding}: {error}") from None
    return body
