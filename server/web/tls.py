"""A locally generated, self-signed certificate for https://localhost (Office only loads HTTPS task panes).

Made with `cryptography` on first start and kept in the app data folder; renewed automatically when it is
about to expire or no longer names every loopback address. The private key is written owner-only. The
installer (`deskpilot install`) replaces this with a certificate from a local CA it adds to the trust store.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["INSTALLED_CERT", "INSTALLED_KEY", "LOOPBACK_SANS", "ensure_certificate"]

LOOPBACK_SANS: list[x509.GeneralName] = [
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
]
# Browsers and macOS reject server certificates valid for longer than 398 days, even self-signed ones.
VALIDITY = dt.timedelta(days=397)
RENEW_BEFORE = dt.timedelta(days=30)
# Written by `deskpilot install` (signed by the local CA it trusts); preferred while it is still good.
INSTALLED_CERT, INSTALLED_KEY = "installed.pem", "installed-key.pem"


def _still_good(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE
    return fresh and all(name in sans for name in LOOPBACK_SANS)


def ensure_certificate(tls_dir: Path) -> tuple[Path, Path]:
    """Return (cert, key) PEM paths: the installer's CA-issued pair if good, else a self-signed one."""
    installed, installed_key = tls_dir / INSTALLED_CERT, tls_dir / INSTALLED_KEY
    if installed_key.is_file() and _still_good(installed):
        return installed, installed_key
    cert_path, key_path = tls_dir / "localhost.pem", tls_dir / "localhost-key.pem"
    if key_path.is_file() and _still_good(cert_path):
        return cert_path, key_path
    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Deskpilot (this computer only)"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(LOOPBACK_SANS), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
