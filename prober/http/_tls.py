"""TLS settings → `ssl.SSLContext`, rebuilt when a certificate file changes on disk.

`TlsSettings` is what a target (or notifier) says: the CA bundle to trust (default:
certifi's), a client certificate and key (with the key's password, a secret) for mTLS,
the lowest protocol version, and `insecure_skip_verify`. `server_name` (SNI and the name
checked) is applied per request by the HTTP layer, not here.

Building a context parses the whole CA bundle (milliseconds of CPU), so `TlsContexts`
keeps one per settings and hands it out while the files stay the same. Before each
session it compares the files' identity (device, inode, size, mtime in ns — `stat`
follows symlinks, which is how a Kubernetes Secret volume swaps its files atomically):
a rotated certificate is picked up by the next run, without a restart, and a file that
cannot be read then fails that run as a setup fault (`TlsSetupError`), never as the
target's `tls` fault. A context in use by a run in flight is left alone.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Literal

import certifi

__all__ = ["TLS_VERSIONS", "TlsContexts", "TlsSettings", "TlsSetupError"]

TlsVersion = Literal["TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3"]
TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS1.0": ssl.TLSVersion.TLSv1,
    "TLS1.1": ssl.TLSVersion.TLSv1_1,
    "TLS1.2": ssl.TLSVersion.TLSv1_2,
    "TLS1.3": ssl.TLSVersion.TLSv1_3,
}


class TlsSetupError(Exception):
    """The TLS settings cannot be used (a file unreadable, a key that does not match or
    will not decrypt): the operator's fault, not the target's."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = None
    min_version: TlsVersion | None = None
    insecure_skip_verify: bool = False

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(path for path in (self.ca_file, self.cert_file, self.key_file) if path)

    @property
    def has_client_certificate(self) -> bool:
        return self.cert_file is not None


def _identity(path: str) -> tuple[int, int, int, int]:
    status = os.stat(path)
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def build_context(settings: TlsSettings, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A client context for `settings`; raises `TlsSetupError` naming the file at fault."""
    if settings.insecure_skip_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        ca_file = settings.ca_file or certifi.where()
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise TlsSetupError(f"cannot use ca_file {ca_file}: {_words(error)}") from None
    if settings.min_version is not None:
        context.minimum_version = TLS_VERSIONS[settings.min_version]
    if settings.cert_file is not None:
        password = settings.key_password
        try:
            context.load_cert_chain(
                settings.cert_file, settings.key_file, password=(lambda: password or "")
            )
        except (OSError, ssl.SSLError, ValueError) as error:
            files = settings.cert_file + (f" / {settings.key_file}" if settings.key_file else "")
            raise TlsSetupError(f"cannot use client certificate {files}: {_words(error)}") from None
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def _words(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


class TlsContexts:
    """One context per (settings, ALPN list), rebuilt when one of its files changes."""

    def __init__(self) -> None:
        self._built: dict[
            tuple[TlsSettings, tuple[str, ...]],
            tuple[tuple[tuple[int, int, int, int], ...], ssl.SSLContext],
        ] = {}

    def get(self, settings: TlsSettings, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
        key = (settings, alpn)
        try:
            identity = tuple(_identity(path) for path in settings.files)
        except OSError as error:
            raise TlsSetupError(
                f"cannot read {error.filename}: {error.strerror or error}"
            ) from None
        built = self._built.get(key)
        if built is not None and built[0] == identity:
            return built[1]
        context = build_context(settings, alpn)
        self._built[key] = (identity, context)
        return context


def earliest_expiry(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> float | None:
    """The earliest `notAfter` (unix seconds) of the chain the peer presented, as
    verified (the path to the trusted root), or as sent when verification was skipped.

    Python exposes the chain publicly only from 3.13; the same method of the C-level
    object is there from 3.10, so that is what is read. Where neither answers, the leaf's
    expiry is given (`getpeercert`)."""
    if ssl_object is None:
        return None
    inner = getattr(ssl_object, "_sslobj", None)
    expiries: list[float] = []
    for method in ("get_verified_chain", "get_unverified_chain"):
        reader = getattr(inner, method, None)
        try:
            chain = reader() if reader is not None else None
        except (ssl.SSLError, ValueError):
            chain = None
        for certificate in chain or ():
            not_after = certificate.get_info().get("notAfter")
            if not_after:
                expiries.append(float(ssl.cert_time_to_seconds(not_after)))
        if expiries:
            return min(expiries)
    leaf = ssl_object.getpeercert()
    not_after = leaf.get("notAfter") if leaf else None
    return float(ssl.cert_time_to_seconds(str(not_after))) if not_after else None
