"""One HTTP/1.1 exchange on a `prober.http._streams.Stream`, parsed by h11.

h11 does the careful part (framing: Content-Length, chunked, close-delimited bodies;
header validation; size limits on the head); this module only moves bytes between it and
the stream and stamps the moments `prober.http._lean` turns into phases. It replaces httpcore's
connection, whose locks, trace callbacks, stream objects and nested timeouts were most of
the client's CPU per probe (py-spy, bench/step_overhead.py).

Requests are written the same way: a request with a valid method, target and headers, one
Host, at most one Content-Length that matches the body, and none of the headers that change
h11's state machine (Connection, Expect, Upgrade, Transfer-Encoding) is serialized here
(`_plain_request`) byte for byte as h11 would; anything else, and every refusal, is h11's.
h11 is brought in only when a response needs it, and is then told of the request first.

Most responses a probe sees are the plainest HTTP/1.1 there is: a status line, a few
headers, one Content-Length, the body. Those are read on a fast path (`_plain_response`)
that checks each line as strictly as h11 does and costs a fifth of h11's ~120 µs per
response; anything else (1xx, 204/304, HEAD, HTTP/1.0, chunked, no or repeated
Content-Length, any line that does not match exactly) goes to h11 from the first byte, so
h11 still decides every unusual case and words every protocol error.

A response whose body exceeds the caller's cap stops being read at once (`BodyTooLarge`),
and the connection is then unusable. Nothing here has a timeout: the caller's
`asyncio.timeout` bounds the whole exchange.
"""

from __future__ import annotations

import asyncio
import re
import time

import h11

from prober.http._streams import Stream

__all__ = [
    "HEAD_TOO_LARGE",
    "MAX_BODY_EVENTS",
    "MAX_HEAD_SIZE",
    "BodyTooLarge",
    "Exchange",
    "Http11Connection",
    "ProtocolFault",
]

#: The largest response head (status line + headers) accepted, as most servers and
#: proxies allow; a bigger one is a protocol failure, not a memory problem.
MAX_HEAD_SIZE = 64 * 1024
HEAD_TOO_LARGE = f"response head larger than {MAX_HEAD_SIZE // 1024} KiB"
#: A CPU budget beside the byte budget (the body cap): a body may arrive in at most this
#: many pieces (h11 events: chunks, or reads of a close-delimited body). Each piece costs
#: the same parsing whatever its size, so a target streaming 1-byte chunks makes the
#: prober parse a million events for a 1 MiB body; past this it is a protocol failure.
MAX_BODY_EVENTS = 16 * 1024
#: Every this many pieces of one response, other tasks get the loop.
YIELD_EVERY_EVENTS = 64

# RFC 9110's token (a method, a header name), as h11 spells it.
_TOKEN_PATTERN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
# What the fast path accepts, as RFC 9112 and h11 define it: `HTTP/1.1 NNN reason`, and
# `token: field-value` with no control character but HTAB (so no CR, LF or NUL anywhere).
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?")
# What the request fast path writes, as h11 validates it before writing: a method token, a
# target of visible ASCII, header names that are tokens and values that are field-content.
_TOKEN = re.compile(_TOKEN_PATTERN)
_REQUEST_TARGET = re.compile(rb"[\x21-\x7e]+")
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
# Headers that change how h11 frames the request or runs the connection: h11 writes those.
_STATEFUL_HEADERS = frozenset({b"connection", b"expect", b"transfer-encoding", b"upgrade"})
_HEADER_LINE = re.compile(
    rb"(" + _TOKEN_PATTERN + rb"):[ \t]*((?:[\x21-\x7e\x80-\xff]"
    rb"(?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[ \t]*"
)


class ProtocolFault(Exception):
    """The peer broke HTTP/1.1 (garbage, a lying Content-Length, closed mid-message)."""


class BodyTooLarge(Exception):
    """The body is larger than the cap (announced, or counted while reading)."""


class Exchange:
    """What one request/response produced, with its timestamps (time.perf_counter())."""

    __slots__ = ("body", "body_end", "headers", "headers_end", "sent_start", "status")

    def __init__(self) -> None:
        self.sent_start = 0.0
        self.headers_end = 0.0
        self.body_end = 0.0
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""


class Http11Connection:
    """A client connection: one request at a time, kept alive while both sides allow it."""

    __slots__ = ("_clean", "_h11", "_pending", "stream")

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        # Made only for an exchange the fast paths leave to h11: most connections never need it.
        self._h11: h11.Connection | None = None
        self._pending = b""  # read by the fast path, then handed to h11
        self._clean = True  # False once a response said close, or sent more than it framed

    @property
    def reusable(self) -> bool:
        connection = self._h11
        return (
            self._clean
            and not self.stream.expired
            and (
                connection is None
                or (
                    connection.our_state is h11.IDLE
                    and not connection.trailing_data[0]  # bytes past the body: the framing lied
                )
            )
        )

    def close(self) -> None:
        self.stream.close()

    async def exchange(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        cap: int,
        exchange: Exchange,
    ) -> None:
        """Send a request and read its response into `exchange` (filled as it goes, so a
        caller that is interrupted still sees how far it got)."""
        head = _plain_request(method, target, headers, body)
        data = self._h11_request(method, target, headers, body) if head is None else head + body
        exchange.sent_start = time.perf_counter()
        await self.stream.write(data)
        if await self._plain_response(method, cap, exchange):
            if self._h11 is not None and self._h11.our_state is h11.MUST_CLOSE:
                self._clean = False  # h11 wrote this request, and it said close
            self._h11 = None  # it saw neither this response nor (maybe) this request
            return
        if head is not None:
            # Written already; h11 must see it go before it can read the response.
            self._h11_request(method, target, headers, body)
        connection = self._h11
        assert connection is not None
        event = await self._next_event()
        while isinstance(event, h11.InformationalResponse):
            event = await self._next_event()
        if not isinstance(event, h11.Response):  # pragma: no cover - h11 yields nothing else here
            raise ProtocolFault(f"unexpected {type(event).__name__} before the response")
        exchange.headers_end = time.perf_counter()
        exchange.status = event.status_code
        exchange.headers = event.headers.raw_items()
        if _has_body(method, event.status_code):
            length = _content_length(exchange.headers)
            if length is not None and length > cap:
                raise BodyTooLarge
        chunks: list[bytes] = []
        received = 0
        events = 0
        while True:
            event = await self._next_event()
            events += 1
            if events > MAX_BODY_EVENTS:
                raise ProtocolFault(f"response body in more than {MAX_BODY_EVENTS} pieces (chunks)")
            if events % YIELD_EVERY_EVENTS == 0:
                await asyncio.sleep(0)  # one response's pieces must not hold the loop
            if isinstance(event, h11.Data):
                received += len(event.data)
                if received > cap:
                    raise BodyTooLarge
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # pragma: no cover - h11 yields nothing else inside a body
                raise ProtocolFault(f"unexpected {type(event).__name__} in the body")
        exchange.body_end = time.perf_counter()
        exchange.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()

    def _h11_request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        """The request as h11 writes it, h11's state moved past it; its refusal as ValueError."""
        if self._h11 is None:
            self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
        connection = self._h11
        try:
            data = connection.send(h11.Request(method=method, target=target, headers=headers))
            if body:
                data += connection.send(h11.Data(data=body))
            data += connection.send(h11.EndOfMessage())
        except h11.LocalProtocolError as error:
            raise ValueError(f"invalid request: {error}") from None
        return data

    async def _plain_response(self, method: bytes, cap: int, exchange: Exchange) -> bool:
        """Read a plain Content-Length response into `exchange`; False (having read nothing
        into it) when the response is anything else: h11 then parses it from the start."""
        buffer = bytearray()
        searched = 0  # the terminator is not in buffer[:searched] (a trickled head stays linear)
        while (end := buffer.find(b"\r\n\r\n", searched)) < 0:
            if len(buffer) > MAX_HEAD_SIZE:
                break  # h11 refuses it in its own words
            searched = max(0, len(buffer) - 3)
            data = await self.stream.read()
            if not data:
                break  # h11 reads the same EOF and says what was missing
            buffer += data
        else:
            if end > MAX_HEAD_SIZE:
                # Arrived whole: h11 limits only a head it is still waiting for.
                raise ProtocolFault(HEAD_TOO_LARGE)
            head = _plain_head(method, bytes(buffer[:end]))
            if head is not None:
                status, headers, length, close = head
                exchange.headers_end = time.perf_counter()
                exchange.status, exchange.headers = status, headers
                if length > cap:
                    raise BodyTooLarge
                body = buffer[end + 4 :]
                while len(body) < length:
                    data = await self.stream.read()
                    if not data:
                        raise ProtocolFault(
                            "invalid response: peer closed connection without sending complete"
                            f" message body: received {len(body)} bytes, expected {length}"
                        )
                    body += data
                exchange.body_end = time.perf_counter()
                exchange.body = bytes(body[:length])
                # Bytes past the announced body mean the framing lied: never reuse.
                self._clean = not close and len(body) == length
                return True
        self._pending = bytes(buffer)
        return False

    async def _next_event(self) -> object:
        connection = self._h11
        assert connection is not None
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as error:
                if connection.their_state is h11.SEND_RESPONSE and "too long" in str(error):
                    # h11's words for a head past max_incomplete_event_size.
                    raise ProtocolFault(HEAD_TOO_LARGE) from None
                raise ProtocolFault(f"invalid response: {error}") from None
            if event is h11.NEED_DATA:
                data, self._pending = self._pending, b""
                if not data:
                    data = await self.stream.read()
                if not data and connection.their_state is h11.SEND_RESPONSE:
                    raise ProtocolFault("server closed the connection without a response")
                connection.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise ProtocolFault("server closed the connection mid-response")
            return event


def _plain_request(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes | None:
    """The head h11 would write for a plain request (Host lines first, as h11 puts them),
    else None: the caller then has h11 write it or refuse it."""
    if _TOKEN.fullmatch(method) is None or _REQUEST_TARGET.fullmatch(target) is None:
        return None
    hosts: list[bytes] = []
    lines: list[bytes] = []
    length: bytes | None = None
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            return None
        lower = name.lower()
        line = name + b": " + value + b"\r\n"
        if lower == b"host":
            hosts.append(line)
        elif lower == b"content-length":
            if length is not None:
                return None
            length = value
            lines.append(line)
        elif lower in _STATEFUL_HEADERS:
            return None
        else:
            lines.append(line)
    if len(hosts) != 1:
        return None
    if length is None:
        if body:
            return None
    elif not length.isdigit() or int(length) != len(body):
        return None
    return b"".join([method, b" ", target, b" HTTP/1.1\r\n", *hosts, *lines, b"\r\n"])


def _plain_head(
    method: bytes, head: bytes
) -> tuple[int, list[tuple[bytes, bytes]], int, bool] | None:
    """(status, headers, content length, says close) of a plain response head, else None."""
    lines = head.split(b"\r\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        return None
    status = int(status_line.group(1))
    if not _has_body(method, status):  # HEAD, 1xx, 204 and 304 are h11's
        return None
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    close = False
    for line in lines[1:]:
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            return None
        name, value = match.group(1), match.group(2)
        lower = name.lower()
        if lower == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif lower == b"transfer-encoding":
            return None
        elif lower == b"connection" and b"close" in value.lower():
            close = True
        headers.append((name, value))
    if length is None:
        return None
    return status, headers, length, close


def _has_body(method: bytes, status: int) -> bool:
    """Whether a response carries a body (RFC 9110 §6.4.1): not to HEAD, not 1xx/204/304.

    Their Content-Length describes a body that is never sent, so the cap must not apply.
    """
    return method != b"HEAD" and not (100 <= status < 200 or status in (204, 304))


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
