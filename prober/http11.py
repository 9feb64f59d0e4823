"""One HTTP/1.1 exchange on a `prober.transport.Stream`, parsed by h11.

h11 does the careful part (framing: Content-Length, chunked, close-delimited bodies;
header validation; size limits on the head); this module only moves bytes between it and
the stream and stamps the moments `prober.http` turns into phases. It replaces httpcore's
connection, whose locks, trace callbacks, stream objects and nested timeouts were most of
the client's CPU per probe (py-spy, bench/step_overhead.py).

A response whose body exceeds the caller's cap stops being read at once (`BodyTooLarge`),
and the connection is then unusable. Nothing here has a timeout: the caller's
`asyncio.timeout` bounds the whole exchange.
"""

from __future__ import annotations

import time

import h11

from prober.transport import Stream

__all__ = ["MAX_HEAD_SIZE", "BodyTooLarge", "Exchange", "Http11Connection", "ProtocolFault"]

#: The largest response head (status line + headers) accepted, as most servers and
#: proxies allow; a bigger one is a protocol failure, not a memory problem.
MAX_HEAD_SIZE = 64 * 1024


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

    __slots__ = ("_h11", "stream")

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)

    @property
    def reusable(self) -> bool:
        connection = self._h11
        return (
            connection.our_state is h11.IDLE
            and not connection.trailing_data[0]  # bytes past the body: the framing lied
            and not self.stream.expired
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
        connection = self._h11
        try:
            data = connection.send(h11.Request(method=method, target=target, headers=headers))
            if body:
                data += connection.send(h11.Data(data=body))
            data += connection.send(h11.EndOfMessage())
        except h11.LocalProtocolError as error:
            raise ValueError(f"invalid request: {error}") from None
        exchange.sent_start = time.perf_counter()
        await self.stream.write(data)
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
        while True:
            event = await self._next_event()
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

    async def _next_event(self) -> object:
        connection = self._h11
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as error:
                if connection.their_state is h11.SEND_RESPONSE and "too long" in str(error):
                    # h11's words for a head past max_incomplete_event_size.
                    raise ProtocolFault(
                        f"invalid response: head larger than {MAX_HEAD_SIZE // 1024} KiB"
                    ) from None
                raise ProtocolFault(f"invalid response: {error}") from None
            if event is h11.NEED_DATA:
                data = await self.stream.read()
                if not data and connection.their_state is h11.SEND_RESPONSE:
                    raise ProtocolFault("server closed the connection without a response")
                connection.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise ProtocolFault("server closed the connection mid-response")
            return event


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
