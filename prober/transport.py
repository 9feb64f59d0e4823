"""A network backend for httpcore written directly on asyncio's transports and protocols.

httpcore's default backend goes through anyio: a task group and cancel scopes per
connect, a `fail_after` scope per read and write. Under load that layer was a third of
the prober's CPU per probe (py-spy, bench/daemon_throughput.py). This backend keeps
httpcore (and h11's careful HTTP/1.1 parsing) and replaces only the sockets:

- `connect_tcp` → `loop.create_connection` with a small `Protocol` that buffers what
  arrives; TCP_NODELAY is set by asyncio.
- `read` returns buffered bytes or waits for the next `data_received`; reading is paused
  while more than `READ_BUFFER_LIMIT` bytes wait, so a huge body cannot fill memory
  faster than the caller consumes it (the caller stops at its body cap).
- `start_tls` → `loop.start_tls` (the handshake is timed by httpcore's trace).
- Timeouts use `asyncio.timeout` (no extra task); errors are httpcore's own exception
  types, as the anyio backend raises them, so the classification in `prober.http` does
  not change.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any, cast

import httpcore

__all__ = ["READ_BUFFER_LIMIT", "AsyncioBackend"]

READ_BUFFER_LIMIT = 256 * 1024


class _BufferingProtocol(asyncio.Protocol):
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

    def take(self, max_bytes: int) -> bytes:
        chunk = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if (
            self._reading_paused
            and len(self.buffer) <= READ_BUFFER_LIMIT // 2
            and self.transport is not None
        ):
            self.transport.resume_reading()
            self._reading_paused = False
        return chunk

    async def wait_readable(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def drained(self) -> None:
        if self._drained is not None:
            await self._drained


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _BufferingProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            try:
                async with asyncio.timeout(timeout):
                    while not protocol.buffer and not protocol.eof:
                        await protocol.wait_readable()
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out while reading") from None
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(
                str(protocol.error) or type(protocol.error).__name__
            ) from protocol.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("connection closed")
        self._transport.write(buffer)
        try:
            async with asyncio.timeout(timeout):
                await self._protocol.drained()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out while writing") from None
        if self._protocol.error is not None:
            raise httpcore.WriteError(str(self._protocol.error)) from self._protocol.error

    async def aclose(self) -> None:
        if self._transport.get_extra_info("ssl_object") is not None:
            # A graceful TLS close waits for the peer's close_notify (up to 30 s) before the
            # socket is released; a probe has read what it needs, so it does not wait.
            self._transport.abort()
        else:
            self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from None
        except (ssl.SSLError, OSError, ConnectionError) as error:
            self._transport.close()
            raise httpcore.ConnectError(str(error)) from error
        if transport is None:  # pragma: no cover - only for non-TLS-capable transports
            raise httpcore.ConnectError("TLS is not supported on this connection")
        self._protocol.transport = transport
        return AsyncioStream(self._protocol.transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # A keep-alive connection with bytes waiting or closed by the peer has expired.
            return self._protocol.eof or bool(self._protocol.buffer)
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                if socket_options:
                    sock = await _connected_socket(host, port, local, socket_options)
                    transport, protocol = await loop.create_connection(
                        _BufferingProtocol, sock=sock
                    )
                else:
                    transport, protocol = await loop.create_connection(
                        _BufferingProtocol, host, port, local_addr=local
                    )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from error
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_BufferingProtocol, path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {path}") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from error
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connected_socket(
    host: str, port: int, local: tuple[str, int] | None, socket_options: Iterable[Any]
) -> socket.socket:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        for option in socket_options:
            sock.setsockopt(*option)
        sock.setblocking(False)
        if local is not None:
            sock.bind(local)
        await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock
