"""TLS settings: contexts built once, rebuilt when a file rotates, setup faults named."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from prober.http._tls import TlsContexts, TlsSettings, TlsSetupError, build_context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_client(ca: trustme.CA, folder: Path, name: str = "client", password: bytes | None = None) -> tuple[Path, Path]:
    leaf = ca.issue_cert(f"{name}@example.test")
    cert, key = folder / "client.pem", folder / "client.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    if password is None:
        leaf.private_key_pem.write_to_path(str(key))
    else:
        private = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password),
            )
        )
    return cert, key


def test_same_files_same_context(ca: trustme.CA, tmp_path: Path) -> None:
    """While no file changes, every session gets the one context built."""
    cert, key = write_client(ca, tmp_path)
    contexts = TlsContexts()
    settings = TlsSettings(cert_file=str(cert), key_file=str(key))
    assert contexts.get(settings) is contexts.get(settings)


def test_rotated_certificate_is_picked_up(ca: trustme.CA, tmp_path: Path) -> None:
    """A certificate swapped on disk (as a Kubernetes Secret does) gives a new context."""
    folder = tmp_path / "v1"
    folder.mkdir()
    _cert, _key = write_client(ca, folder, "first")
    link = tmp_path / "current"
    link.symlink_to(folder)
    settings = TlsSettings(cert_file=str(link / "client.pem"), key_file=str(link / "client.key"))
    contexts = TlsContexts()
    first = contexts.get(settings)
    second_folder = tmp_path / "v2"
    second_folder.mkdir()
    write_client(ca, second_folder, "second")
    swap = tmp_path / "swap"
    swap.symlink_to(second_folder)
    os.replace(swap, link)  # the atomic swap Kubernetes does with its ..data link
    assert contexts.get(settings) is not first


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (TlsSettings(ca_file="/nonexistent/ca.pem"), "cannot read /nonexistent/ca.pem: No such file"),
        (TlsSettings(cert_file="/nonexistent/c.pem"), "cannot read /nonexistent/c.pem"),
    ],
    ids=["missing-ca", "missing-cert"],
)
def test_missing_files_are_setup_faults(settings: TlsSettings, message: str) -> None:
    """A file that is not there is the operator's fault, named."""
    with pytest.raises(TlsSetupError, match=message):
        TlsContexts().get(settings)


def test_garbage_ca_is_a_setup_fault(tmp_path: Path) -> None:
    """A CA file that is not PEM says which file."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TlsSetupError, match=f"cannot use ca_file {bad}"):
        build_context(TlsSettings(ca_file=str(bad)))


def test_encrypted_key_needs_its_password(ca: trustme.CA, tmp_path: Path) -> None:
    """An encrypted key loads with key_password, and the wrong one is a setup fault."""
    cert, key = write_client(ca, tmp_path, password=b"key-pass")
    build_context(TlsSettings(cert_file=str(cert), key_file=str(key), key_password="key-pass"))
    with pytest.raises(TlsSetupError, match="cannot use client certificate"):
        build_context(TlsSettings(cert_file=str(cert), key_file=str(key), key_password="wrong"))


def test_options_reach_the_context(ca: trustme.CA, tmp_path: Path) -> None:
    """min_version, insecure_skip_verify and the CA land in the context."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    strict = build_context(TlsSettings(ca_file=str(ca_file), min_version="TLS1.3"))
    assert strict.minimum_version == ssl.TLSVersion.TLSv1_3
    assert strict.verify_mode == ssl.CERT_REQUIRED
    assert strict.check_hostname
    assert len(strict.get_ca_certs()) == 1
    loose = build_context(TlsSettings(insecure_skip_verify=True))
    assert loose.verify_mode == ssl.CERT_NONE
    assert not loose.check_hostname
