"""Which proxy a request takes: explicit, environment by scheme, NO_PROXY, credentials."""

from __future__ import annotations

import pytest

from prober.http._proxies import ProxyRoute, check_proxy_url, proxy_for, split_proxy_url

PROXY = ProxyRoute("http://127.0.0.1:3128")


@pytest.mark.parametrize(
    ("scheme", "host", "port", "explicit", "env", "expected"),
    [
        ("https", "api.test", 443, None, {}, None),
        ("https", "api.test", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128"}, PROXY),
        ("https", "api.test", 443, None, {"https_proxy": "127.0.0.1:3128", "HTTPS_PROXY": "http://127.0.0.9:1"}, PROXY),
        ("http", "api.test", 80, None, {"HTTPS_PROXY": "http://127.0.0.1:3128"}, None),
        ("http", "api.test", 80, None, {"HTTP_PROXY": "http://127.0.0.1:3128"}, PROXY),
        ("http", "api.test", 80, None, {"HTTP_PROXY": "http://127.0.0.1:3128", "REQUEST_METHOD": "GET"}, None),
        ("https", "api.test", 443, None, {"ALL_PROXY": "http://127.0.0.1:3128"}, PROXY),
        ("https", "api.test", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "*"}, None),
        ("https", "api.test", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "test"}, None),
        ("https", "api.test", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": ".api.test"}, None),
        ("https", "myapi.test", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "api.test"}, PROXY),
        ("https", "API.Test.", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "no_proxy": "api.test"}, None),
        ("https", "10.1.2.3", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "10.0.0.0/8"}, None),
        ("https", "11.1.2.3", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "10.0.0.0/8"}, PROXY),
        ("https", "[fd00::5]", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "fd00::/8"}, None),
        ("https", "api.test", 8443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "api.test:443"}, PROXY),
        ("https", "api.test", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "api.test:443"}, None),
        ("https", "127.0.0.1", 443, None, {"HTTPS_PROXY": "http://127.0.0.1:3128"}, PROXY),
        ("https", "api.test", 443, "http://127.0.0.1:3128", {"NO_PROXY": "*"}, PROXY),
        ("https", "api.test", 443, "", {"HTTPS_PROXY": "http://127.0.0.9:1"}, None),
    ],
    ids=[
        "none", "https-env", "lower-wins", "scheme-picks", "http-env", "httpoxy", "all-proxy",
        "no-proxy-star", "no-proxy-suffix", "no-proxy-dot", "no-proxy-not-substring",
        "case-and-dot", "cidr-v4", "cidr-v4-outside", "cidr-v6", "port-mismatch", "port-match",
        "loopback-not-exempt", "explicit-ignores-env", "explicit-empty-is-direct",
    ],
)
def test_proxy_for(
    scheme: str, host: str, port: int, explicit: str | None, env: dict[str, str], expected: ProxyRoute | None
) -> None:
    """The route follows curl's reading of the environment unless the config says."""
    assert proxy_for(scheme, host, port, explicit, env) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.test:3128", ProxyRoute("http://proxy.test:3128")),
        ("proxy.test:3128", ProxyRoute("http://proxy.test:3128")),
        ("http://proxy.test", ProxyRoute("http://proxy.test:80")),
        ("http://u%40x:p%3Aw@proxy.test:3128", ProxyRoute("http://proxy.test:3128", "u@x", "p:w")),
        ("http://[::1]:3128", ProxyRoute("http://[::1]:3128")),
    ],
    ids=["plain", "no-scheme", "default-port", "credentials", "ipv6"],
)
def test_split(url: str, expected: ProxyRoute) -> None:
    """Credentials leave the URL and become basic auth, decoded."""
    assert split_proxy_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [("https://proxy.test:3128", "must be http://"), ("socks5://proxy.test", "must be http://"), ("http://:3128", "no host")],
    ids=["https", "socks", "no-host"],
)
def test_bad_proxy_urls(url: str, message: str) -> None:
    """A proxy URL prober cannot use is refused at load, saying why."""
    with pytest.raises(ValueError, match=message):
        check_proxy_url(url)


def test_empty_and_templated_pass_the_load_check() -> None:
    """An empty proxy (none) and a template (checked once rendered) pass."""
    assert check_proxy_url("") == ""
    assert check_proxy_url("http://u:${secret.PROXY_PASSWORD}@proxy:3128").startswith("http://")
