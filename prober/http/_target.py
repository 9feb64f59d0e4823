"""A request made ready to send: its URL parsed once (`Target`), its headers and body
encoded (`Call`), whichever path then carries it."""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx

from prober.http._compression import ACCEPT_ENCODING
from prober.redaction import register_secret

__all__ = ["Call", "Target", "encode", "is_ip_literal", "origin", "parse_target"]


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed request URL, ready to send."""

    url: str  # without userinfo
    scheme: str
    host: str  # as connected to: an IP literal without brackets, or an IDNA-encoded name
    port: int
    raw_path: bytes
    host_header: bytes
    userinfo: tuple[str, str] | None = None  # `user:password@` of the URL, decoded

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Call:
    """One exchange for a path to carry: no redirects, nothing left to decide."""

    target: Target
    method: bytes
    headers: list[tuple[bytes, bytes]]  # Host first
    body: bytes
    max_body_size: int
    timeout: float  # the request's whole timeout, for messages
    http2: bool


@functools.lru_cache(maxsize=4096)
def parse_target(url: str, params: tuple[tuple[str, str], ...]) -> Target:
    """Parse (and cache) a URL: a journey's URLs repeat every run, and parsing them with
    httpx.URL is a visible share of the CPU per request."""
    parsed = httpx.URL(url)
    if params:
        parsed = parsed.copy_merge_params(dict(params))
    if parsed.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {parsed.scheme!r} in {url!r}")
    if not parsed.host:
        raise httpx.InvalidURL(f"no host in URL {url!r}")
    userinfo = None
    if parsed.userinfo:
        user, _, password = parsed.userinfo.decode("ascii").partition(":")
        userinfo = (unquote(user), unquote(password))
        register_secret(userinfo[1])
        parsed = parsed.copy_with(userinfo=b"")
    default_port = 443 if parsed.scheme == "https" else 80
    host = parsed.raw_host
    bracketed = b"[" + host + b"]" if b":" in host else host  # IPv6 literal in Host
    port = parsed.port
    host_header = (
        bracketed if port in (None, default_port) else bracketed + b":" + str(port).encode()
    )
    return Target(
        url=str(parsed),
        scheme=parsed.scheme,
        host=host.decode("ascii"),
        port=port or default_port,
        raw_path=parsed.raw_path,
        host_header=host_header,
        userinfo=userinfo,
    )


@functools.lru_cache(maxsize=1024)
def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def basic_credentials(username: str, password: str) -> str:
    """An `Authorization: Basic` value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def encode(
    target: Target,
    headers: tuple[tuple[str, str], ...],
    json_body: Any,
    content: bytes | None,
    *,
    compression: bool = True,
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Request headers (Host first, as httpx sends them) and body bytes.

    `Accept-Encoding` offers every coding prober decodes unless the headers set one; with
    `compression` off it asks for `identity`. A URL's `user:password@` becomes basic auth
    unless the headers carry an `Authorization` of their own."""
    raw: list[tuple[bytes, bytes]] = [(b"Host", target.host_header)]
    names = set()
    for name, value in headers:
        raw.append((name.encode("ascii"), value.encode("utf-8")))
        names.add(name.lower())
    if "accept-encoding" not in names:
        raw.append((b"Accept-Encoding", ACCEPT_ENCODING.encode() if compression else b"identity"))
    if target.userinfo is not None and "authorization" not in names:
        raw.append((b"Authorization", basic_credentials(*target.userinfo).encode("utf-8")))
    if json_body is not None:
        body = json.dumps(
            json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        if "content-type" not in names:
            raw.append((b"Content-Type", b"application/json"))
    else:
        body = content or b""
    if body or json_body is not None:
        raw.append((b"Content-Length", str(len(body)).encode("ascii")))
    return raw, body
