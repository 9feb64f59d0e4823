"""Byte streams on asyncio's transports and protocols: the sockets under `prober.http._wire`.

No anyio, no per-read timeout scopes, no stream objects per operation: under load those
layers (httpcore's default backend) were a third of the prober's CPU per probe (py-spy,
bench/daemon_throughput.py). A request's single deadline is the caller's
`asyncio.timeout`, which cancels whatever await is pending here.

- `open_stream` → `loop.create_connection` with a small `Protocol` that buffers what
  arrives (TCP_NODELAY is set by asyncio).
- `Stream.read` returns buffered bytes or waits for the next `data_received`; reading is
  paused while more than `READ_BUFFER_LIMIT` bytes wait, so a huge body cannot fill memory
  faster than the caller consumes it (the caller stops at its body cap).
- `Stream.start_tls` → `loop.start_tls` on the same protocol.

Errors are the operating system's and the ssl module's own (`OSError`, `ssl.SSLError`);
`prober.http` classifies them by the phase they happened in.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

__all__ = ["READ_BUFFER_LIMIT", "Stream", "open_stream"]

READ_BUFFER_LIMIT = 256 * 1024


class _BufferingProtocol(asyncio.Protocol):
    __slots__ = ("_drained", "_reading_paused", "_waiter", "buffer", "eof", "error", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if (
            len(self.buffer) > READ_BUFFER_LIMIT
            and not self._reading_paused
            and self.transport is not None
        ):
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport: HTTP/1.1 has nothing to send after the peer's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def take(self) -> bytes:
        chunk = bytes(self.buffer)
        self.buffer.clear()
        if self._reading_paused and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False
        return chunk


class Stream:
    """One connection's bytes. Reads wait for data; a peer's EOF reads as b''."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: _BufferingProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self) -> bytes:
        """Whatever has arrived (waiting for something); b'' at the peer's EOF.

        Raises the connection's error (e.g. `ConnectionResetError`) if it ended in one."""
        protocol = self._protocol
        while not protocol.buffer and not protocol.eof:
            protocol._waiter = asyncio.get_running_loop().create_future()
            try:
                await protocol._waiter
            finally:
                protocol._waiter = None
        if protocol.buffer:
            return protocol.take()
        if protocol.error is not None:
            raise protocol.error
        return b""

    async def write(self, data: bytes) -> None:
        if self._transport.is_closing() or self._protocol.eof:
            if self._protocol.error is not None:
                raise self._protocol.error
            raise ConnectionResetError("connection closed by the peer")
        self._transport.write(data)
        if self._protocol._drained is not None:
            await self._protocol._drained
            if self._protocol.error is not None:
                raise self._protocol.error

    @property
    def expired(self) -> bool:
        """Closed by the peer, or bytes arrived unasked: not reusable for a next request."""
        return self._protocol.eof or bool(self._protocol.buffer) or self._transport.is_closing()

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return cast("ssl.SSLObject | None", self._transport.get_extra_info("ssl_object"))

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport, self._protocol, context, server_hostname=server_hostname
            )
        except BaseException:
            self._transport.abort()
            raise
        if transport is None:  # pragma: no cover - only for non-TLS-capable transports
            raise ssl.SSLError("TLS is not supported on this connection")
        self._transport = self._protocol.transport = transport

    def close(self) -> None:
        # A graceful TLS close waits for the peer's close_notify (up to 30 s) before the
        # socket is released, and a plain close waits to flush what is unsent to a peer
        # that may be reading nothing: a probe has read what it needs, so it never waits.
        self._transport.abort()


async def open_stream(host: str, port: int) -> Stream:
    """A TCP connection to an address (no name resolution: `prober.http` resolves)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(_BufferingProtocol, host, port)
    return Stream(transport, protocol)
