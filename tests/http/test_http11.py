"""prober.http11's fast path for plain responses never disagrees with h11: whatever it
accepts, h11 parses to the same status, headers and length; everything else goes to h11."""

from __future__ import annotations

import h11
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from prober.http11 import _plain_head
from tests.conftest import PROPERTY_SETTINGS


def h11_head(method: bytes, head: bytes) -> tuple[int, list[tuple[bytes, bytes]]] | None:
    """What h11 makes of a response head to `method`, or None if it refuses it."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"x")]))
    connection.send(h11.EndOfMessage())
    try:
        connection.receive_data(head + b"\r\n\r\n")
        event = connection.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(event, h11.Response):
        return None
    return event.status_code, list(event.headers.raw_items())


PLAIN_ROWS = [
    # id, head, fast path takes it
    ("nginx", b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 15", True),
    ("no-reason", b"HTTP/1.1 200\r\nContent-Length: 0", True),
    ("empty-reason", b"HTTP/1.1 503 \r\nContent-Length: 3", True),
    (
        "odd-case-and-spaces",
        b"HTTP/1.1 404 Not Found\r\ncOnTeNt-LeNgTh:   7  \r\nX-A:\t b c \t",
        True,
    ),
    ("empty-value", b"HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 1", True),
    ("close", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1", True),
    ("obs-text-value", b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\nContent-Length: 1", True),
    ("http10", b"HTTP/1.0 200 OK\r\nContent-Length: 1", False),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", False),
    ("no-length", b"HTTP/1.1 200 OK\r\nServer: x", False),
    ("two-lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1", False),
    ("signed-length", b"HTTP/1.1 200 OK\r\nContent-Length: +1", False),
    ("informational", b"HTTP/1.1 100 Continue", False),
    ("no-content", b"HTTP/1.1 204 No Content\r\nContent-Length: 5", False),
    ("not-modified", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5", False),
    ("folded-header", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 1", False),
    ("space-before-colon", b"HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 1", False),
    ("nul-in-value", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 1", False),
    ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 1", False),
    ("garbage", b"SSH-2.0-OpenSSH_9.2", False),
]


@pytest.mark.parametrize(
    ("head", "fast"), [row[1:] for row in PLAIN_ROWS], ids=[row[0] for row in PLAIN_ROWS]
)
def test_fast_path_takes_only_plain_heads(head: bytes, fast: bool) -> None:
    """The fast path takes plain Content-Length heads, and exactly as h11 reads them."""
    parsed = _plain_head(b"GET", head)
    assert (parsed is not None) == fast
    if parsed is not None:
        status, headers, length, _ = parsed
        assert h11_head(b"GET", head) == (status, headers)
        assert length == int(dict((k.lower(), v) for k, v in headers)[b"content-length"])


def test_head_request_goes_to_h11() -> None:
    """A response to HEAD has no body whatever it announces: h11's business."""
    assert _plain_head(b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10") is None


_BYTE_TEXT = st.binary(max_size=12) | st.sampled_from(
    [b"", b" ", b"\t", b"OK", b"a b", b"\xff", b"\x00", b"\r", b"\n", b":", b"1", b"-1", b"0"]
)


@PROPERTY_SETTINGS
@given(
    status=st.sampled_from([b"200", b"404", b"503", b"100", b"204", b"099", b"2000", b"abc"]),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"http/1.1", b"HTTP/2"]),
    reason=_BYTE_TEXT,
    fields=st.lists(
        st.tuples(
            st.sampled_from(
                [b"Content-Length", b"content-length", b"X-A", b"Connection", b"X A", b""]
            )
            | st.binary(max_size=6),
            st.sampled_from([b":", b": ", b":\t", b" :", b""]),
            _BYTE_TEXT,
        ),
        max_size=5,
    ),
)
@example(
    status=b"200", version=b"HTTP/1.1", reason=b"OK", fields=[(b"Content-Length", b": ", b"5")]
)
def test_property_fast_path_never_disagrees_with_h11(
    status: bytes, version: bytes, reason: bytes, fields: list[tuple[bytes, bytes, bytes]]
) -> None:
    """Any head: either the fast path declines, or h11 reads it to the same result."""
    head = version + b" " + status + (b" " + reason if reason else b"")
    head += b"".join(b"\r\n" + name + colon + value for name, colon, value in fields)
    parsed = _plain_head(b"GET", head)
    if parsed is not None:
        assert h11_head(b"GET", head) == (parsed[0], parsed[1])
