"""prober's HTTP: one seam, two paths, everything a probe's request needs on the way.

    HttpClient ── session() ──▶ HttpSession.send(HttpRequest) ──▶ HttpResponse | HttpFailure
                                   │ redirects, content decoding, the path to take
                       ┌───────────┴────────────┐
                  _lean (HTTP/1.1)          _full (httpcore + h2)
                  _wire ◀ _streams          proxies · HTTP/2 · client certificates
                       └────── _resolver (c-ares) · _eyeballs (RFC 8305) · _tls ──────┘

The only package that imports httpx and httpcore. A failing target is an `HttpFailure`
with a reason, never an exception (`_failures` is the one boundary). Unit tests replace
both paths with `MemoryTransport`.

The re-exports resolve lazily, so the config's validators (`check_nameserver`,
`check_proxy_url`) do not pay for importing httpcore and the codecs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prober.http._client import HttpClient, HttpSession, NetworkSettings
    from prober.http._compression import ACCEPT_ENCODING
    from prober.http._eyeballs import IP_PROTOCOLS, IpProtocol
    from prober.http._failures import REASON_OF_PHASE
    from prober.http._memory import MemoryTransport, respond
    from prober.http._messages import HttpFailure, HttpRequest, HttpResponse
    from prober.http._oauth2 import ClientCredentials, TokenError, TokenSource
    from prober.http._proxies import ProxyRoute, check_proxy_url
    from prober.http._resolver import ResolutionError, Resolver, check_nameserver
    from prober.http._target import Call, basic_credentials
    from prober.http._tls import TLS_VERSIONS, TlsSettings, TlsSetupError

__all__ = [
    "ACCEPT_ENCODING",
    "IP_PROTOCOLS",
    "REASON_OF_PHASE",
    "TLS_VERSIONS",
    "Call",
    "ClientCredentials",
    "HttpClient",
    "HttpFailure",
    "HttpRequest",
    "HttpResponse",
    "HttpSession",
    "IpProtocol",
    "MemoryTransport",
    "NetworkSettings",
    "ProxyRoute",
    "ResolutionError",
    "Resolver",
    "TlsSettings",
    "TlsSetupError",
    "TokenError",
    "TokenSource",
    "basic_credentials",
    "check_nameserver",
    "check_proxy_url",
    "respond",
]

_HOMES = {
    "ACCEPT_ENCODING": "prober.http._compression",
    "Call": "prober.http._target",
    "ClientCredentials": "prober.http._oauth2",
    "HttpClient": "prober.http._client",
    "HttpFailure": "prober.http._messages",
    "HttpRequest": "prober.http._messages",
    "HttpResponse": "prober.http._messages",
    "HttpSession": "prober.http._client",
    "IP_PROTOCOLS": "prober.http._eyeballs",
    "IpProtocol": "prober.http._eyeballs",
    "MemoryTransport": "prober.http._memory",
    "NetworkSettings": "prober.http._client",
    "ProxyRoute": "prober.http._proxies",
    "REASON_OF_PHASE": "prober.http._failures",
    "ResolutionError": "prober.http._resolver",
    "Resolver": "prober.http._resolver",
    "TLS_VERSIONS": "prober.http._tls",
    "TlsSettings": "prober.http._tls",
    "TlsSetupError": "prober.http._tls",
    "TokenError": "prober.http._oauth2",
    "TokenSource": "prober.http._oauth2",
    "basic_credentials": "prober.http._target",
    "check_nameserver": "prober.http._resolver",
    "check_proxy_url": "prober.http._proxies",
    "respond": "prober.http._memory",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'prober.http' has no attribute {name!r}")
