"""The local certificate authority and the localhost certificate it signs.

The CA exists so that one certificate can be trusted once (in the browser/OS store Office's web view uses)
while the server certificate itself stays short-lived (browsers refuse server certificates valid for more
than 398 days) and can be renewed without touching the trust store again. The CA is name-constrained to
localhost, 127.0.0.1 and ::1, so even a stolen CA key cannot mint a certificate for any real site. Its key
is written owner-only in the app data folder and never leaves it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deskpilot.server.web.tls import INSTALLED_CERT, INSTALLED_KEY, LOOPBACK_SANS, RENEW_BEFORE, VALIDITY

__all__ = ["CA_CERT", "CA_KEY", "CA_NAME", "ensure_ca", "ensure_server_cert", "fingerprint", "issued_by"]

CA_NAME = "Deskpilot Local CA"
CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
CA_VALIDITY = dt.timedelta(days=3650)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 fingerprint, upper-case hex with colons (as certutil and browsers print it)."""
    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def ca_good(cert_path: Path, key_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (OSError, ValueError):
        return False
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=365)
    return fresh and cert.public_key() == key.public_key()


def ensure_ca(ca_dir: Path) -> tuple[Path, Path, bool]:
    """Return (cert, key, created): the existing CA if it is usable, else a new one."""
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    if ca_good(cert_path, key_path):
        return cert_path, key_path, False
    ca_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ca_dir, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Deskpilot (this computer only)"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    constraints = x509.NameConstraints(
        permitted_subtrees=[
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_network("127.0.0.1/32")),
            x509.IPAddress(ipaddress.ip_network("::1/128")),
        ],
        excluded_subtrees=None,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(constraints, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True


def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def server_good(cert_path: Path, key_path: Path, ca_pem: bytes) -> bool:
    try:
        cert_pem = cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE
    return (
        fresh
        and cert.public_key() == key.public_key()
        and issued_by(cert_pem, ca_pem)
        and all(n in sans for n in LOOPBACK_SANS)
    )


def ensure_server_cert(tls_dir: Path, ca_cert: Path, ca_key: Path) -> tuple[Path, Path, bool]:
    """Return (cert, key, created) for the localhost certificate signed by the CA, in the server's tls dir."""
    cert_path, key_path = tls_dir / INSTALLED_CERT, tls_dir / INSTALLED_KEY
    ca_pem = ca_cert.read_bytes()
    if server_good(cert_path, key_path, ca_pem):
        return cert_path, key_path, False
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca = x509.load_pem_x509_certificate(ca_pem)
    signing_key = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    ca_public = ca.public_key()
    # ensure_ca makes the CA with an EC key; cryptography types a loaded key as any kind of key.
    if not isinstance(signing_key, ec.EllipticCurvePrivateKey) or not isinstance(
        ca_public, ec.EllipticCurvePublicKey
    ):
        raise ValueError(f"the CA in {ca_cert.parent} is not one Deskpilot made: its key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
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
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False)
        .sign(signing_key, hashes.SHA256())
    )
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True
