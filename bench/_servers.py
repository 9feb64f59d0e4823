"""Loopback servers the daemon benchmarks measure against: nginx (the fast target) and
blackbox_exporter (the anchor), both Debian packages, each in its own process."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["blackbox_exporter", "cpu_seconds", "free_port", "nginx"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / 100.0


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process (this one by default), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def nginx(delay_ms: int = 0) -> Iterator[str]:
    """nginx answering `GET /health` with a tiny JSON body; yields its base URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {folder};
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location /health {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
  }}
}}
""")
        process = subprocess.Popen(
            [binary, "-c", str(conf), "-p", folder], stderr=subprocess.DEVNULL
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_http(url + "/health")
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def blackbox_exporter() -> Iterator[tuple[str, int]]:
    """blackbox_exporter with an http_2xx module; yields (base URL, pid)."""
    binary = shutil.which("prometheus-blackbox-exporter")
    if binary is None:
        raise SystemExit("apt-get install prometheus-blackbox-exporter")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "blackbox.yml"
        conf.write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n")
        process = subprocess.Popen(
            [binary, f"--config.file={conf}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_http(url + "/-/healthy")
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(timeout=10)
