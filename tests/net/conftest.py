"""Real network parts for tests/net: one nginx and two tinyproxies (open, and with basic
auth) for the whole folder; each test builds its own prober client against them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.net.servers import Nginx, Tinyproxy, nginx, tinyproxy

PROXY_USER, PROXY_PASSWORD = "probe", "proxy-pw-7781"


@pytest.fixture(scope="package")
def web() -> Iterator[Nginx]:
    """nginx with plain HTTP, TLS (h2 and HTTP/1.1 by ALPN) and a listener that requires a
    client certificate."""
    with nginx() as server:
        yield server


@pytest.fixture(scope="package")
def proxy() -> Iterator[Tinyproxy]:
    """An open forward proxy (CONNECT allowed to any port)."""
    with tinyproxy() as server:
        yield server


@pytest.fixture(scope="package")
def auth_proxy() -> Iterator[Tinyproxy]:
    """A forward proxy that wants basic auth."""
    with tinyproxy(username=PROXY_USER, password=PROXY_PASSWORD) as server:
        yield server
