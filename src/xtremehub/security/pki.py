"""A local certificate authority for TLS between XtremeHub components (``xhub security init``).

For one machine or a small cluster: a CA (ECDSA P-256, 10 years), a server certificate whose
subject alternative names are the given host names and IP addresses, and client certificates
for mutual TLS. Private keys are written with mode 0600 in a 0700 directory. For a larger
deployment use your organisation's CA: every component takes certificate and key paths.

Files in the directory::

    ca.pem  ca-key.pem  server.pem  server-key.pem  client.pem  client-key.pem

Example:
    >>> import tempfile
    >>> files = init_pki(tempfile.mkdtemp(), hosts=["localhost", "127.0.0.1"])
    >>> oct(files.server_key.stat().st_mode & 0o777), files.ca_cert.name
    ('0o600', 'ca.pem')
    >>> ctx = server_ssl_context(files.server_cert, files.server_key, client_ca=files.ca_cert)
    >>> ctx.verify_mode.name
    'CERT_REQUIRED'
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xtremehub.errors import ConfigError
from xtremehub.security.keyservice_store import write_private

__all__ = ["PKIFiles", "client_ssl_context", "init_pki", "issue_certificate", "server_ssl_context"]

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class PKIFiles:
    """The paths ``init_pki`` wrote (or found)."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "XtremeHub"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private(path, pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not host or any(c.isspace() for c in host):
                raise ConfigError(f"host {host!r} is neither an IP address nor a DNS name") from None
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{directory}: cannot load the CA (ca.pem, ca-key.pem): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{directory / 'ca-key.pem'}: not an EC private key")
    return cert, key


def _new_ca(directory: Path, days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("XtremeHub local CA"))
        .issuer_name(_name("XtremeHub local CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + days * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca-key.pem", key)
    _write_cert(directory / "ca.pem", cert)


def issue_certificate(
    directory: Path | str, name: str, hosts: Sequence[str] = (), *, client: bool = False, days: int = 825
) -> tuple[Path, Path]:
    """Issue ``<name>.pem`` and ``<name>-key.pem`` from the CA in ``directory``.

    A server certificate (``client=False``) names ``hosts`` as subject alternative names;
    a client certificate's common name is ``name``. Returns ``(cert, key)`` paths.
    """
    directory = Path(directory)
    ca_cert, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + days * _DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if not client:
        if not hosts:
            raise ConfigError("a server certificate needs at least one host name or IP address")
        builder = builder.add_extension(_san(hosts), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path, key_path


def init_pki(
    directory: Path | str,
    hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    *,
    client_name: str = "client",
    force: bool = False,
    days: int = 3650,
) -> PKIFiles:
    """Create (or complete) a local CA with a server certificate for ``hosts`` and a client certificate.

    An existing CA is kept and reused; existing server and client certificates are kept unless
    ``force`` (e.g. to add hosts).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    if not (directory / "ca.pem").exists():
        _new_ca(directory, days)
    if force or not (directory / "server.pem").exists():
        issue_certificate(directory, "server", list(hosts))
    if force or not (directory / "client.pem").exists():
        issue_certificate(directory, "client", client=True)
        if client_name != "client":
            issue_certificate(directory, client_name, client=True)
    return PKIFiles(
        directory,
        directory / "ca.pem",
        directory / "ca-key.pem",
        directory / "server.pem",
        directory / "server-key.pem",
        directory / "client.pem",
        directory / "client-key.pem",
    )


def server_ssl_context(
    cert_file: Path | str, key_file: Path | str, client_ca: Path | str | None = None
) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca``, clients must present a certificate it signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
        if client_ca is not None:
            ctx.load_verify_locations(str(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert_file} / {key_file}: {exc}") from None
    return ctx


def client_ssl_context(
    ca_file: Path | str | None, cert_file: Path | str | None = None, key_file: Path | str | None = None
) -> ssl.SSLContext:
    """A verifying client context trusting ``ca_file`` (system CAs if None), with an optional client certificate."""
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_file is not None:
            ctx.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS trust or client certificate ({ca_file}, {cert_file}): {exc}") from None
    return ctx
