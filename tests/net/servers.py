"""Real network parts on loopback, each a Debian package in its own process: nginx (TLS,
client certificates, HTTP/2, gzip) and tinyproxy (a forward proxy with CONNECT).

Certificates come from a `trustme.CA`: the server's for `localhost`, 127.0.0.1 and ::1, and
a client certificate nginx requires on its mTLS listener. Every server is stopped when its
context exits; start-up waits on a deadline, never a fixed sleep.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["Nginx", "Tinyproxy", "free_port", "nginx", "tinyproxy"]

START_DEADLINE = 20.0

#: A JSON body long enough that nginx's gzip (gzip_min_length 20) compresses it.
JSON_BODY = '{"status":"ok","padding":"' + "x" * 2048 + '"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + START_DEADLINE
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {START_DEADLINE:g}s")


@contextmanager
def _run(argv: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class Nginx:
    """Base URLs of one nginx: plain HTTP/1.1, TLS (h2 and http/1.1 by ALPN), and TLS that
    requires a client certificate from `ca`."""

    http: str
    https: str
    mtls: str
    ca: trustme.CA
    ca_file: Path
    client_cert_file: Path  # the client's certificate and key, one PEM file
    client_key_file: Path
    client_chain_file: Path
    folder: Path

    def access_log(self) -> str:
        path = self.folder / "access.log"
        return path.read_text() if path.exists() else ""


_LOCATIONS = f"""
    location = /health {{ default_type application/json; return 200 '{JSON_BODY}'; }}
    location = /echo-protocol {{ default_type text/plain; return 200 '$server_protocol'; }}
    location = /client {{ default_type text/plain; return 200 '$ssl_client_s_dn'; }}
    location = /auth {{
      if ($http_authorization = "") {{ return 401; }}
      default_type text/plain; return 200 '$http_authorization';
    }}
"""


@contextmanager
def nginx() -> Iterator[Nginx]:
    """nginx on three loopback ports (see `Nginx`); access log in `$protocol $status`."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    client = ca.issue_cert("probe-client@example.test", common_name="probe-client")
    http_port, https_port, mtls_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="prober-nginx-") as name:
        folder = Path(name)
        ca_file = folder / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        server_chain, server_key = folder / "server.pem", folder / "server.key"
        server.private_key_pem.write_to_path(str(server_key))
        for index, blob in enumerate(server.cert_chain_pems):
            blob.write_to_path(str(server_chain), append=index > 0)
        client_cert, client_key = folder / "client.pem", folder / "client.key"
        client.cert_chain_pems[0].write_to_path(str(client_cert))
        client.private_key_pem.write_to_path(str(client_key))
        client_chain = folder / "client-chain.pem"
        client.private_key_and_cert_chain_pem.write_to_path(str(client_chain))
        conf = folder / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
  log_format probe '$server_port $server_protocol $status $ssl_protocol';
  access_log {folder}/access.log probe;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  gzip on;
  gzip_min_length 20;
  gzip_types application/json text/plain;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_certificate {server_chain};
  ssl_certificate_key {server_key};
  server {{
    listen 127.0.0.1:{http_port};
    {_LOCATIONS}
  }}
  server {{
    listen 127.0.0.1:{https_port} ssl http2;
    {_LOCATIONS}
  }}
  server {{
    listen 127.0.0.1:{mtls_port} ssl http2;
    ssl_client_certificate {ca_file};
    ssl_verify_client on;
    {_LOCATIONS}
  }}
}}
""")
        argv = [binary, "-c", str(conf), "-p", str(folder)]
        with _run(argv, mtls_port, folder / "stderr.log"):
            for port in (http_port, https_port):
                _wait_listening(port, _Alive(), folder / "stderr.log")
            yield Nginx(
                http=f"http://127.0.0.1:{http_port}",
                https=f"https://localhost:{https_port}",
                mtls=f"https://localhost:{mtls_port}",
                ca=ca,
                ca_file=ca_file,
                client_cert_file=client_cert,
                client_key_file=client_key,
                client_chain_file=client_chain,
                folder=folder,
            )


class _Alive:
    """A stand-in process for `_wait_listening` once the real one is known to run."""

    def poll(self) -> None:
        return None


@dataclass(frozen=True)
class Tinyproxy:
    """A forward proxy: `url` (`http://127.0.0.1:PORT`), with basic auth when
    `username` is set; `log()` holds its request lines."""

    url: str
    port: int
    username: str | None
    password: str | None
    folder: Path

    def log(self) -> str:
        path = self.folder / "tinyproxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url_with_credentials(self) -> str:
        assert self.username
        assert self.password
        return f"http://{self.username}:{self.password}@127.0.0.1:{self.port}"


@contextmanager
def tinyproxy(*, username: str | None = None, password: str | None = None) -> Iterator[Tinyproxy]:
    """tinyproxy on a free loopback port, allowing CONNECT to any port (no ConnectPort line)."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="prober-tinyproxy-") as name:
        folder = Path(name)
        auth = f"BasicAuth {username} {password}\n" if username else ""
        conf = folder / "tinyproxy.conf"
        conf.write_text(
            f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\n"
            f"Allow 127.0.0.1\nLogFile \"{folder}/tinyproxy.log\"\nLogLevel Connect\n"
            f"PidFile \"{folder}/tinyproxy.pid\"\nDisableViaHeader Yes\n{auth}"
        )
        with _run([binary, "-d", "-c", str(conf)], port, folder / "stderr.log"):
            yield Tinyproxy(f"http://127.0.0.1:{port}", port, username, password, folder)


def client_context(ca_file: Path) -> ssl.SSLContext:
    """An ssl context trusting `ca_file` (for checking the servers from the tests' side)."""
    return ssl.create_default_context(cafile=str(ca_file))
