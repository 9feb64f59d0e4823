"""prober.http._wire's fast paths never disagree with h11: whatever plain response head they
accept, h11 parses to the same status, headers and length, and whatever plain request they
write, h11 would write byte for byte; everything else goes to h11."""

from __future__ import annotations

import asyncio

import h11
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from prober.http._wire import (
    HEAD_TOO_LARGE,
    MAX_BODY_EVENTS,
    MAX_HEAD_SIZE,
    YIELD_EVERY_EVENTS,
    Exchange,
    Http11Connection,
    ProtocolFault,
    _plain_head,
    _plain_request,
)
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


def h11_request(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes | None:
    """The bytes h11 writes for a request, or None if it refuses it."""
    connection = h11.Connection(h11.CLIENT)
    try:
        data = connection.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            data += connection.send(h11.Data(data=body))
        data += connection.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        return None
    return data


HOST = (b"Host", b"127.0.0.1:8080")
REQUEST_ROWS = [
    # id, method, target, headers, body, fast path writes it
    ("get", b"GET", b"/health", [HOST, (b"User-Agent", b"prober/1 (synthetic)")], b"", True),
    (
        "post-json",
        b"POST",
        b"/api/v1/chat?x=1",
        [HOST, (b"Content-Type", b"application/json"), (b"Content-Length", b"2")],
        b"{}",
        True,
    ),
    ("host-not-first", b"GET", b"/", [(b"X-A", b"1"), HOST, (b"X-B", b"2")], b"", True),
    ("inner-space-value", b"GET", b"/", [HOST, (b"Authorization", b"Bearer a.b")], b"", True),
    ("empty-value", b"GET", b"/", [HOST, (b"X-Empty", b"")], b"", True),
    ("obs-text-value", b"GET", b"/", [HOST, (b"X-Name", "café".encode())], b"", True),
    ("no-host", b"GET", b"/", [(b"X-A", b"1")], b"", False),
    ("two-hosts", b"GET", b"/", [HOST, HOST], b"", False),
    ("connection-close", b"GET", b"/", [HOST, (b"Connection", b"close")], b"", False),
    ("expect", b"POST", b"/", [HOST, (b"Expect", b"100-continue")], b"", False),
    ("chunked", b"POST", b"/", [HOST, (b"Transfer-Encoding", b"chunked")], b"", False),
    ("body-without-length", b"POST", b"/", [HOST], b"x", False),
    ("length-mismatch", b"POST", b"/", [HOST, (b"Content-Length", b"3")], b"x", False),
    ("newline-in-value", b"GET", b"/", [HOST, (b"X-A", b"a\r\nX-B: b")], b"", False),
    ("leading-space-value", b"GET", b"/", [HOST, (b"X-A", b" a")], b"", False),
    ("space-in-name", b"GET", b"/", [HOST, (b"X A", b"a")], b"", False),
    ("space-in-target", b"GET", b"/a b", [HOST], b"", False),
    ("bad-method", b"G T", b"/", [HOST], b"", False),
]


@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "fast"),
    [row[1:] for row in REQUEST_ROWS],
    ids=[row[0] for row in REQUEST_ROWS],
)
def test_fast_path_writes_plain_requests_as_h11_does(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes, fast: bool
) -> None:
    """Plain requests are written here, byte for byte as h11 writes them; the rest is h11's."""
    head = _plain_request(method, target, headers, body)
    assert (head is not None) == fast
    if head is not None:
        assert head + body == h11_request(method, target, headers, body)


@PROPERTY_SETTINGS
@given(
    method=st.sampled_from([b"GET", b"POST", b"HEAD", b"", b"G T"]) | st.binary(max_size=4),
    target=st.sampled_from([b"/", b"/a?b=c", b"", b"/a b"]) | st.binary(max_size=6),
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [b"Host", b"host", b"Content-Length", b"X-A", b"Connection", b"Expect", b""]
            )
            | st.binary(max_size=6),
            _BYTE_TEXT,
        ),
        max_size=5,
    ),
    body=st.sampled_from([b"", b"x", b"{}"]),
)
@example(method=b"GET", target=b"/", headers=[(b"Host", b"x")], body=b"")
def test_property_request_fast_path_never_disagrees_with_h11(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """Any request: either the fast path declines, or h11 writes exactly the same bytes."""
    head = _plain_request(method, target, headers, body)
    if head is not None:
        assert head + body == h11_request(method, target, headers, body)


# --- limits: head size and the pieces of a body, however the bytes arrive -------------------


class _ScriptedStream:
    """A stream whose reads return `reads` one by one, then EOF; records what is written."""

    expired = False

    def __init__(self, *reads: bytes) -> None:
        self._reads = list(reads)
        self.written = b""

    async def read(self) -> bytes:
        return self._reads.pop(0) if self._reads else b""

    async def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass


def _exchange(*reads: bytes, cap: int = 1 << 20) -> Exchange:
    connection = Http11Connection(_ScriptedStream(*reads))  # type: ignore[arg-type]
    exchange = Exchange()
    asyncio.run(connection.exchange(b"GET", b"/", [(b"Host", b"x")], b"", cap, exchange))
    return exchange


def _head(size: int, framing: bytes) -> bytes:
    """A response head of exactly `size` bytes before its blank line."""
    start = b"HTTP/1.1 200 OK\r\n" + framing + b"\r\nX-Pad: "
    return start + b"a" * (size - len(start))


HEAD_ROWS = [
    # id, framing, how the head arrives
    ("plain-one-read", b"Content-Length: 0", "one"),
    ("plain-small-reads", b"Content-Length: 0", "split"),
    ("chunked-one-read", b"Transfer-Encoding: chunked", "one"),
    ("chunked-small-reads", b"Transfer-Encoding: chunked", "split"),
]


@pytest.mark.parametrize(
    ("framing", "arrival"), [r[1:] for r in HEAD_ROWS], ids=[r[0] for r in HEAD_ROWS]
)
def test_head_over_the_limit_is_refused_however_it_arrives(framing: bytes, arrival: str) -> None:
    """A head over MAX_HEAD_SIZE fails in the docs' words, whole in one read or not."""
    body = b"0\r\n\r\n" if b"chunked" in framing else b""
    raw = _head(MAX_HEAD_SIZE + 1, framing) + b"\r\n\r\n" + body
    reads = [raw] if arrival == "one" else [raw[i : i + 4096] for i in range(0, len(raw), 4096)]
    with pytest.raises(ProtocolFault, match=f"^{HEAD_TOO_LARGE}$"):
        _exchange(*reads)
    assert HEAD_TOO_LARGE == "response head larger than 64 KiB"


@pytest.mark.parametrize(
    ("framing", "arrival"), [r[1:] for r in HEAD_ROWS], ids=[r[0] for r in HEAD_ROWS]
)
def test_head_at_the_limit_passes(framing: bytes, arrival: str) -> None:
    """A head of exactly MAX_HEAD_SIZE bytes is read."""
    body = b"0\r\n\r\n" if b"chunked" in framing else b""
    raw = _head(MAX_HEAD_SIZE, framing) + b"\r\n\r\n" + body
    reads = [raw] if arrival == "one" else [raw[i : i + 4096] for i in range(0, len(raw), 4096)]
    assert _exchange(*reads).status == 200


def _one_byte_chunks(count: int) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1\r\nx\r\n" * count
        + b"0\r\n\r\n"
    )


CHUNK_ROWS = [
    # id, chunks, outcome (None: read whole)
    ("at-the-budget", MAX_BODY_EVENTS - 1, None),
    ("past-the-budget", MAX_BODY_EVENTS + 1, f"more than {MAX_BODY_EVENTS} pieces"),
]


@pytest.mark.parametrize(
    ("count", "fault"), [r[1:] for r in CHUNK_ROWS], ids=[r[0] for r in CHUNK_ROWS]
)
def test_body_pieces_are_budgeted(count: int, fault: str | None) -> None:
    """A body in more pieces than MAX_BODY_EVENTS fails, however few bytes it has."""
    raw = _one_byte_chunks(count)
    if fault is None:
        assert _exchange(raw).body == b"x" * count
    else:
        with pytest.raises(ProtocolFault, match=fault):
            _exchange(raw)


def test_many_chunks_in_one_read_let_other_tasks_run() -> None:
    """Parsing one read full of 1-byte chunks gives the loop to other tasks as it goes."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> None:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        connection = Http11Connection(_ScriptedStream(_one_byte_chunks(4096)))  # type: ignore[arg-type]
        exchange = Exchange()
        await connection.exchange(b"GET", b"/", [(b"Host", b"x")], b"", 1 << 20, exchange)
        task.cancel()
        assert exchange.body == b"x" * 4096

    asyncio.run(main())
    assert ticks >= 4096 // YIELD_EVERY_EVENTS
