"""The one place where the parts a command runs are built from the config.

`prober run`, `prober run-once` and `prober demo` differ only in what they start; the HTTP
clients, the rate limits and the journey runner come from here, so the two cannot drift
apart (run-once once ignored `max_requests_per_second`).

Settings read once rather than per run (`proxy_url`, `tls.key_password`) are rendered
here: an unset `${env.X}` / `${secret.X}` in them is a config error naming its path, at
start-up (exit 2) or at a reload (which then keeps the running config).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from prober.config import ProberConfig, TlsOptions
from prober.http import HttpClient, NetworkSettings, TlsSettings
from prober.journey import JourneyRunner
from prober.notify.channels import read_setting, secret_setting
from prober.ratelimit import HostRateLimits

__all__ = ["build_runner", "target_client"]


def tls_settings(
    options: TlsOptions, path: str, environ: Mapping[str, str] | None = None
) -> TlsSettings:
    password = (
        secret_setting(options.key_password, f"{path}.key_password", environ)
        if options.key_password is not None
        else None
    )
    return TlsSettings(
        ca_file=options.ca_file,
        cert_file=options.cert_file,
        key_file=options.key_file,
        key_password=password,
        min_version=options.min_version,
        insecure_skip_verify=options.insecure_skip_verify,
    )


def _proxy(text: str | None, path: str, environ: Mapping[str, str] | None) -> str | None:
    return None if text is None else read_setting(text, path, environ)


def target_client(config: ProberConfig, environ: Mapping[str, str] | None = None) -> HttpClient:
    """The HTTP client every journey of `config` sends through."""
    target = config.target
    options = target.tls_options()
    settings = NetworkSettings(
        tls=tls_settings(options, "target.tls", environ),
        server_name=options.server_name,
        proxy_url=_proxy(target.proxy_url, "target.proxy_url", environ),
        http2=target.http2,
        ip_protocol=target.ip_protocol,
        ip_protocol_fallback=target.ip_protocol_fallback,
        nameservers=config.resolver.nameservers,
    )
    return HttpClient(settings, environ=environ)


def build_runner(
    config: ProberConfig,
    *,
    base_url: str | None = None,
    limits: HostRateLimits | None = None,
    client: HttpClient | None = None,
    wall_clock: Callable[[], float] = time.time,
    environ: Mapping[str, str] | None = None,
) -> JourneyRunner:
    """The journey runner for `config`, its requests throttled per host by `limits`
    (made from the config when not given)."""
    if limits is None:
        limits = HostRateLimits(config.defaults.max_requests_per_second)
    throttle: Callable[[str], Awaitable[None]] = limits.acquire
    return JourneyRunner(
        config,
        client or target_client(config, environ),
        base_url=base_url,
        wall_clock=wall_clock,
        environ=environ,
        throttle=throttle,
    )
