"""The endpoints cannot take the prober down: a bounded number of connections, a deadline for
every request head (slowloris), one render shared between concurrent scrapers per format,
and every render reported to the lag monitor. In-process servers on 127.0.0.1."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from prober.server import RenderCache, StatusServer, parse_listen

DEADLINE = 30.0  # generous: the machine is shared and noisy


class CountingCollector(Collector):
    """One gauge; counts how often it was collected (= how often /metrics was rendered)."""

    def __init__(self) -> None:
        self.collects = 0
        self._lock = threading.Lock()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            self.collects += 1
        yield GaugeMetricFamily("test_value", "A value.", value=1.0)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_server(
    *,
    max_connections: int = 8,
    read_timeout: float = 10.0,
    clock: Any = time.monotonic,
    busy: list[tuple[float, float]] | None = None,
) -> tuple[StatusServer, CountingCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = CountingCollector()
    registry.register(collector)
    server = StatusServer(
        ("127.0.0.1", 0),
        registry,
        ready=lambda: True,
        status=lambda: {"journeys": []},
        page=lambda: "<html></html>",
        max_connections=max_connections,
        read_timeout=read_timeout,
        clock=clock,
        on_busy=(lambda start, end: busy.append((start, end))) if busy is not None else None,
    )
    return server.start(), collector


@pytest.fixture
def servers() -> Iterator[list[StatusServer]]:
    started: list[StatusServer] = []
    yield started
    for server in started:
        server.stop()


def get(
    server: StatusServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type", "")
    finally:
        connection.close()


def closed_by_server(sock: socket.socket, deadline: float = DEADLINE) -> bool:
    """Does the server close this connection (EOF or reset) within the deadline?"""
    sock.settimeout(deadline)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def connect(server: StatusServer) -> socket.socket:
    return socket.create_connection(server.address, timeout=10)


def test_parse_listen_rejects_what_cannot_be_bound() -> None:
    """A port out of range or a missing port is a ValueError, not a bind-time crash."""
    assert parse_listen("127.0.0.1:9469") == ("127.0.0.1", 9469)
    assert parse_listen("[::1]:80") == ("::1", 80)
    for bad in ("127.0.0.1", "host:99999", "host:abc"):
        with pytest.raises(ValueError, match="expected HOST:PORT"):
            parse_listen(bad)
    with pytest.raises(ValueError, match=r"256\.1\.1\.1 is not an IP address"):
        parse_listen("256.1.1.1:9")


def test_connections_beyond_the_cap_are_closed(servers: list[StatusServer]) -> None:
    """With the cap held by idle connections, one more is closed at once, and a scrape
    works again as soon as a slot is free."""
    server, _ = make_server(max_connections=3)
    servers.append(server)
    idle = [connect(server) for _ in range(3)]
    end = time.monotonic() + DEADLINE
    while server.open_connections < 3 and time.monotonic() < end:
        time.sleep(0.01)
    assert server.open_connections == 3
    extra = connect(server)
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert closed_by_server(extra)
    extra.close()
    idle.pop().close()
    end = time.monotonic() + DEADLINE
    while server.open_connections > 2 and time.monotonic() < end:
        time.sleep(0.01)
    assert get(server, "/healthz")[0] == 200
    for sock in idle:
        sock.close()


@pytest.mark.parametrize(
    "behaviour",
    ["idle", "slow-head", "idle-after-request"],
    ids=["never-sends", "one-byte-at-a-time", "keep-alive-idle"],
)
def test_every_connection_has_a_read_deadline(servers: list[StatusServer], behaviour: str) -> None:
    """A connection that does not deliver a complete request head within the read timeout
    is closed: silent, trickling (slowloris) or idle between keep-alive requests."""
    server, _ = make_server(read_timeout=0.5)
    servers.append(server)
    sock = connect(server)
    if behaviour == "slow-head":
        closed = False
        end = time.monotonic() + DEADLINE
        request = b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 1000
        for byte in request:  # bounded: the head has a few thousand bytes
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() > end:
                break
        assert closed or closed_by_server(sock)
    else:
        if behaviour == "idle-after-request":
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(10)
            answer = b""
            for _ in range(100):  # bounded: the answer is a few segments at most
                answer += sock.recv(4096)
                if answer.endswith(b"\r\n\r\nok\n"):
                    break
            assert answer.startswith(b"HTTP/1.1 200")
        assert closed_by_server(sock)
    sock.close()


def test_one_render_per_interval_shared_per_format(servers: list[StatusServer]) -> None:
    """Within one render interval every scrape of a format gets the same exposition: the
    registry is collected once per format, the content type follows the Accept header."""
    clock = FrozenClock()
    server, collector = make_server(clock=clock)
    servers.append(server)
    bodies = [get(server, "/metrics") for _ in range(5)]
    assert collector.collects == 1
    assert {body for _, body, _ in bodies} == {bodies[0][1]}
    assert bodies[0][2].startswith("text/plain")
    status, body, content_type = get(
        server, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert (status, content_type.split(";")[0]) == (200, "application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert collector.collects == 2
    clock.now += 1.0
    get(server, "/metrics")
    assert collector.collects == 3


def test_concurrent_scrapers_share_one_render(servers: list[StatusServer]) -> None:
    """Scrapers arriving together wait for the one render in progress instead of each
    rendering their own."""
    clock = FrozenClock()
    server, collector = make_server(clock=clock, max_connections=32)
    servers.append(server)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(get(server, "/metrics")[0]))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert results == [200] * 16
    assert collector.collects == 1


def test_pages_served_are_reported_as_busy_time(servers: list[StatusServer]) -> None:
    """Serving a page (metrics, status JSON, status page; rendered or from the cache) is
    reported to the lag monitor, so a run that overlapped it is marked lag_affected;
    /healthz and /readyz are not."""
    busy: list[tuple[float, float]] = []
    clock = FrozenClock()
    server, _ = make_server(clock=clock, busy=busy)
    servers.append(server)
    for path in ("/metrics", "/metrics", "/api/status", "/", "/healthz", "/readyz"):
        assert get(server, path)[0] == 200
    assert len(busy) == 4
    assert all(start <= end for start, end in busy)


def test_render_cache_keys_are_independent() -> None:
    """Two keys render separately; a key renders again once its interval has passed."""
    clock = FrozenClock()
    cache = RenderCache(interval=1.0, clock=clock)
    calls: list[str] = []

    def render(name: str) -> bytes:
        calls.append(name)
        return name.encode()

    assert cache.get("a", lambda: render("a")) == b"a"
    assert cache.get("b", lambda: render("b")) == b"b"
    assert cache.get("a", lambda: render("a")) == b"a"
    clock.now += 0.999
    cache.get("a", lambda: render("a"))
    clock.now += 0.001
    cache.get("a", lambda: render("a"))
    assert calls == ["a", "b", "a"]
