"""Content codings: every coding decodes, stacks undo in order, and no body inflates past
the cap or is silently cut short."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from prober.http._compression import (
    ACCEPT_ENCODING,
    CODINGS,
    BadEncoding,
    DecodedTooLarge,
    decode_body,
)

TEXT = b'{"gzipped": true, "text": "' + b"probe " * 500 + b'"}'
LIMIT = 1024 * 1024


def _raw_deflate(data: bytes) -> bytes:
    encoder = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return encoder.compress(data) + encoder.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


def test_every_decoded_coding_has_an_encoder_here() -> None:
    """The table below covers every coding the module claims, and Accept-Encoding offers them."""
    assert set(ENCODERS) == CODINGS
    offered = {coding.strip() for coding in ACCEPT_ENCODING.split(",")}
    assert offered == CODINGS - {"x-gzip"}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_round_trip(coding: str) -> None:
    """A body in each coding decodes to what was encoded."""
    assert decode_body(ENCODERS[coding](TEXT), coding, LIMIT) == TEXT


@pytest.mark.parametrize(
    ("header", "encode"),
    [
        (None, lambda data: data),
        ("", lambda data: data),
        ("identity", lambda data: data),
        ("GZIP", gzip.compress),
        ("deflate", _raw_deflate),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
        ("br, identity, zstd", lambda data: zstandard.ZstdCompressor().compress(brotli.compress(data))),
        ("gzip", lambda data: gzip.compress(data[:100]) + gzip.compress(data[100:])),
        ("zstd", lambda data: zstandard.ZstdCompressor().compress(data[:100]) + zstandard.ZstdCompressor().compress(data[100:])),
    ],
    ids=["absent", "empty", "identity", "upper-case", "raw-deflate", "stacked", "stacked-identity", "gzip-members", "zstd-frames"],
)
def test_header_forms(header: str | None, encode: Callable[[bytes], bytes]) -> None:
    """Codings are undone last-applied first; case, identity and multi-member bodies are read."""
    assert decode_body(encode(TEXT), header, LIMIT) == TEXT


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_bomb_stops_at_the_cap(coding: str) -> None:
    """64 MiB of zeros in a few KiB fails at a 1 MiB cap instead of inflating."""
    bomb = ENCODERS[coding](bytes(64 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024
    with pytest.raises(DecodedTooLarge):
        decode_body(bomb, coding, LIMIT)


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_exactly_the_cap_passes(coding: str) -> None:
    """A body that decodes to exactly the cap is allowed; one byte more is not."""
    data = b"a" * 4096
    assert decode_body(ENCODERS[coding](data), coding, 4096) == data
    with pytest.raises(DecodedTooLarge):
        decode_body(ENCODERS[coding](data + b"a"), coding, 4096)


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_truncated_body_is_an_error(coding: str) -> None:
    """A stream cut short is a named error, never a silently shorter body."""
    encoded = ENCODERS[coding](TEXT)
    with pytest.raises(BadEncoding, match=coding.removeprefix("x-")):
        decode_body(encoded[: len(encoded) // 2], coding, LIMIT)


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_garbage_is_an_error(coding: str) -> None:
    """Bytes that are not in the named coding are a named error."""
    with pytest.raises(BadEncoding, match=coding.removeprefix("x-")):
        decode_body(b"this is not compressed at all", coding, LIMIT)


def test_unknown_coding_is_named() -> None:
    """A coding prober cannot decode says which."""
    with pytest.raises(BadEncoding, match="unsupported Content-Encoding 'compress'"):
        decode_body(b"\x1f\x9d...", "compress", LIMIT)


def test_empty_body_stays_empty() -> None:
    """A labelled but empty body (HEAD, 204) is not an error."""
    assert decode_body(b"", "gzip", LIMIT) == b""


@given(data=st.binary(max_size=4096), coding=st.sampled_from(sorted(ENCODERS)))
def test_any_bytes_round_trip(data: bytes, coding: str) -> None:
    """Any body survives each coding unchanged."""
    assert decode_body(ENCODERS[coding](data), coding, LIMIT) == data
