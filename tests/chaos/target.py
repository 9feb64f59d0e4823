"""A hostile HTTP target on loopback: every way a broken API or network can misbehave.

`ChaosTarget` runs an asyncio server in a thread of its own (so the test process's own
event loops are not involved) on 127.0.0.1 with OS-picked ports: a plain HTTP listener
whose path picks the misbehaviour (`CASES`), and two TLS listeners, one with an expired
certificate from a CA the caller may trust (`ca_file`), one with a self-signed certificate.

It counts the connections open on its side (`open_connections`): a client that leaks
sockets leaves them open here, since the server only closes when the client does or when
its misbehaviour ends. Every misbehaviour is bounded in time (`HOLD`) and bytes, so a
test that goes wrong cannot pin a thread or fill memory.

Run it by hand with `python -m tests.chaos.target` to point a prober at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOLD = 30.0  # seconds: the longest any misbehaviour keeps a connection
HUGE_BODY = 50 * 1024 * 1024
HEADER_LIMIT = 64 * 1024
_CHUNK = b"x" * 65536

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[bool]]


def _response(
    status: int = 200,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    *,
    length: int | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{version} {status} X"]
    if length is not None or version == "HTTP/1.1":
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the client gets a TCP RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bool:
    writer.write(_response(200, b'{"ok": true}', (("Content-Type", "application/json"),)))
    return True


async def _reset_before(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> bool:
    _reset(writer)
    return False


async def _reset_mid_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> bool:
    writer.write(_response(200, b"x" * 1000, length=100_000))
    await writer.drain()
    await asyncio.sleep(0.05)
    _reset(writer)
    return False


async def _slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bool:
    """Headers, then silence until the client gives up."""
    writer.write(_response(200, b"", length=10))
    await writer.drain()
    await _until_closed(reader)
    return False


async def _silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bool:
    """Not even a status line."""
    await _until_closed(reader)
    return False


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bool:
    """A body of 1,000 bytes, one byte every 100 ms: it never finishes inside a timeout."""
    writer.write(_response(200, b"", length=1000))
    for _ in range(1000):
        if reader.at_eof() or writer.is_closing():
            break
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.1)
    return False


async def _huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bool:
    """50 MiB, chunked (no length announced: the client must count), until the client hangs up."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    sent = 0
    chunk = b"%x\r\n%s\r\n" % (len(_CHUNK), _CHUNK)
    while sent < HUGE_BODY and not writer.is_closing():
        writer.write(chunk)
        await writer.drain()
        sent += len(_CHUNK)
    writer.write(b"0\r\n\r\n")
    return False


async def _invalid_utf8(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> bool:
    body = b'{"status": "\xff\xfe ok \xc3\x28"}'
    writer.write(_response(200, body, (("Content-Type", "application/json; charset=utf-8"),)))
    return True


async def _invalid_json(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> bool:
    writer.write(
        _response(200, b'{"status": "ok", "n": tru', (("Content-Type", "application/json"),))
    )
    return True


async def _huge_header(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> bool:
    writer.write(_response(200, b"ok", (("X-Huge", "h" * (1024 * 1024)),)))
    return False


async def _http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bool:
    """A valid HTTP/1.0 response whose body ends where the connection does."""
    writer.write(_response(200, b'{"status": "ok"}', version="HTTP/1.0"))
    return False


async def _redirect_loop(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> bool:
    writer.write(_response(302, b"", (("Location", path),)))
    return True


async def _length_short(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> bool:
    """Content-Length says 2; 30 bytes follow. The extra bytes must not become the next response."""
    writer.write(_response(200, b'{"status": "ok"} trailing junk', length=2))
    return True


async def _length_long(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> bool:
    """Content-Length says 1,000; 16 bytes follow, then the connection ends."""
    writer.write(_response(200, b'{"status": "ok"}', length=1000))
    return False


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bool:
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 this is not HTTP\r\n\r\n")
    return False


async def _until_closed(reader: asyncio.StreamReader) -> None:
    try:
        async with asyncio.timeout(HOLD):
            while await reader.read(65536):
                pass
    except (TimeoutError, OSError):
        pass


#: path → misbehaviour. Anything else is a 404.
CASES: dict[str, Handler] = {
    "/ok": _ok,
    "/reset-before": _reset_before,
    "/reset-mid-body": _reset_mid_body,
    "/slowloris": _slowloris,
    "/silence": _silence,
    "/trickle": _trickle,
    "/huge": _huge,
    "/invalid-utf8": _invalid_utf8,
    "/invalid-json": _invalid_json,
    "/huge-header": _huge_header,
    "/http10": _http10,
    "/redirect-loop": _redirect_loop,
    "/length-short": _length_short,
    "/length-long": _length_long,
    "/garbage": _garbage,
}


class ChaosTarget:
    """`with ChaosTarget() as target:` serves until exit; see the module docstring."""

    def __init__(self) -> None:
        self.open_connections = 0
        self.accepted = 0
        self.requests: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._files = tempfile.TemporaryDirectory(prefix="chaos-")
        self.ca = trustme.CA()
        self.ca_file = str(Path(self._files.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.port = self.expired_port = self.self_signed_port = 0

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def expired_url(self) -> str:
        return f"https://127.0.0.1:{self.expired_port}/ok"

    @property
    def self_signed_url(self) -> str:
        return f"https://127.0.0.1:{self.self_signed_port}/ok"

    def __enter__(self) -> ChaosTarget:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._files.cleanup()

    async def _start(self) -> None:
        plain = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        expired = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._expired_context()
        )
        self_signed = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._self_signed_context()
        )
        self._servers = [plain, expired, self_signed]
        self.port, self.expired_port, self.self_signed_port = (
            server.sockets[0].getsockname()[1] for server in self._servers
        )

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    def _expired_context(self) -> ssl.SSLContext:
        now = datetime.datetime.now(datetime.UTC)
        leaf = self.ca.issue_cert(
            "127.0.0.1",
            "localhost",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(context)
        return context

    def _self_signed_context(self) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        directory = Path(self._files.name)
        (directory / "self-signed.pem").write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(directory / "self-signed.pem")
        return context

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open_connections += 1
        self.accepted += 1
        try:
            while True:
                path = await self._read_request(reader)
                if path is None:
                    break
                self.requests[path] = self.requests.get(path, 0) + 1
                handler = CASES.get(path.partition("?")[0])
                if handler is None:
                    writer.write(_response(404))
                    keep = True
                else:
                    keep = await handler(reader, writer, path)
                if not keep or writer.is_closing():
                    break
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass  # the client went away: part of the game
        finally:
            self.open_connections -= 1
            self._tasks.discard(task)
            if not writer.is_closing():
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.drain()
                writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> str | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip() or 0)
        if length:
            await reader.readexactly(min(length, HEADER_LIMIT))
        return parts[1]


def main() -> None:  # pragma: no cover - a manual tool
    with ChaosTarget() as target:
        print(f"chaos target on {target.url('')} (paths: {', '.join(CASES)})")
        print(f"expired TLS: {target.expired_url}  self-signed TLS: {target.self_signed_url}")
        print(f"CA of the expired certificate: {target.ca_file}")
        threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    main()
