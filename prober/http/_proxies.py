"""Which forward proxy a request goes through: the config's `proxy_url`, else the
environment's `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and `NO_PROXY`, as curl and httpx
read them.

- The variable is picked by the request's scheme; the lower-case spelling wins over the
  upper-case one, and `HTTP_PROXY` in upper case is ignored when `REQUEST_METHOD` is set
  (the CGI "httpoxy" rule curl and Python follow).
- `NO_PROXY` is a comma list: `*` (no proxy at all), host names matching themselves and
  their subdomains (`example.com` and `.example.com` both match `api.example.com`), IP
  addresses, CIDR ranges (`10.0.0.0/8`, `fd00::/8`), each optionally with `:port`.
  Loopback is not exempt unless listed (as in curl).
- An explicit `proxy_url` (a target's or a notifier's) is used for every request it makes,
  whatever the environment says (`NO_PROXY` included, as in httpx); `proxy_url: ""` turns
  the environment's proxy off for it.
- Credentials in the proxy URL (`http://user:pass@proxy:3128`) become the proxy's basic
  auth and are taken out of the URL, so they are never shown with it.

Only `http://` proxies are spoken (CONNECT for https targets), as blackbox_exporter and
most egress proxies do; another scheme is a config error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["ProxyRoute", "check_proxy_url", "proxy_for", "split_proxy_url"]


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """Where a request goes through: the proxy's URL (no credentials) and its basic auth."""

    url: str
    username: str | None = None
    password: str | None = None



def split_proxy_url(url: str) -> ProxyRoute:
    """A proxy URL as a route: the credentials out of the URL, percent-escapes decoded."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise ValueError(f"proxy URL must be http:// (CONNECT is used for https), got {parts.scheme}://")
    if not parts.hostname:
        raise ValueError("proxy URL has no host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port or 80
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyRoute(f"http://{host}:{port}", username, password)


def check_proxy_url(value: str) -> str:
    """`value` if it is a usable proxy URL (or empty, meaning none), else a ValueError
    saying why (config validation). Templates are checked after rendering."""
    if value and "${" not in value:
        try:
            split_proxy_url(value)
        except ValueError as error:
            raise ValueError(str(error)) from None
    return value


def _environment_proxy(scheme: str, env: Mapping[str, str]) -> str | None:
    names = [f"{scheme}_proxy", "all_proxy"]
    for name in names:
        lower = env.get(name)
        if lower:
            return lower
        if name == "http_proxy" and "REQUEST_METHOD" in env:
            continue
        upper = env.get(name.upper())
        if upper:
            return upper
    return None


def _no_proxy_entries(env: Mapping[str, str]) -> list[str]:
    raw = env.get("no_proxy") or env.get("NO_PROXY") or ""
    return [entry.strip().lower() for entry in raw.split(",") if entry.strip()]


def _bypassed(host: str, port: int, entries: list[str]) -> bool:
    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in entries:
        if entry == "*":
            return True
        pattern, entry_port = entry, None
        if pattern.startswith("["):  # [v6]:port or [v6]
            close = pattern.find("]")
            rest = pattern[close + 1 :]
            pattern = pattern[1:close]
            entry_port = rest[1:] if rest.startswith(":") else None
        elif pattern.count(":") == 1:
            pattern, entry_port = pattern.split(":")
        if entry_port is not None and entry_port != str(port):
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(pattern, strict=False):
                    return True
            except ValueError:
                pass
            continue
        pattern = pattern.lstrip("*").lstrip(".").rstrip(".")
        if pattern and (host == pattern or host.endswith("." + pattern)):
            return True
    return False


def proxy_for(
    scheme: str, host: str, port: int, explicit: str | None, env: Mapping[str, str]
) -> ProxyRoute | None:
    """The proxy a request to `scheme://host:port` goes through, or None for direct.
    `explicit` is the config's rendered `proxy_url` (None: not set; "": none)."""
    if explicit is not None:
        return split_proxy_url(explicit) if explicit else None
    url = _environment_proxy(scheme, env)
    if not url or _bypassed(host, port, _no_proxy_entries(env)):
        return None
    return split_proxy_url(url)
