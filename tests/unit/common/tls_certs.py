"""Throwaway PEM files for the TLS tests: a CA, a server certificate for localhost/127.0.0.1, a client certificate,
and the [grpc] settings a server or client would use with them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hilum.common.settings import GrpcSection


@dataclass(frozen=True)
class TlsFiles:
    """Paths of one throwaway CA and the server and client certificates it signed."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server(self, require_client_cert: bool = False, health_port: int = 0) -> GrpcSection:
        """Settings of a TLS server (mutual TLS with require_client_cert), optionally with a plaintext health port."""
        return GrpcSection(tls_cert_file=self.server_cert, tls_key_file=self.server_key, tls_ca_file=self.ca,
                           tls_require_client_cert=require_client_cert, health_port=health_port)

    def client(self, with_cert: bool = False) -> GrpcSection:
        """Settings of a client that checks the server against the CA and, with_cert, presents its own certificate."""
        if not with_cert:
            return GrpcSection(tls_ca_file=self.ca)
        return GrpcSection(tls_ca_file=self.ca, tls_cert_file=self.client_cert, tls_key_file=self.client_key,
                           tls_require_client_cert=True)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
          extensions: list[x509.ExtensionType]) -> x509.Certificate:
    """A certificate valid from a minute ago for a day (long enough for any test run)."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=isinstance(extension, x509.BasicConstraints))
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, stem: str, key: ec.EllipticCurvePrivateKey,
           certificate: x509.Certificate) -> tuple[Path, Path]:
    """Write <stem>.crt and <stem>.key (unencrypted PKCS#8) and return their paths."""
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def write_tls_files(folder: Path, ca_name: str = "Hilum Test CA") -> TlsFiles:
    """A fresh CA under folder, with a server certificate (DNS:localhost, IP:127.0.0.1) and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_cert = _sign(ca_name, ca_key, ca_name, ca_key, [
        x509.BasicConstraints(ca=True, path_length=None),
        x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                      key_encipherment=False, data_encipherment=False, key_agreement=False,
                      encipher_only=False, decipher_only=False),
    ])
    server_cert = _sign("localhost", server_key, ca_name, ca_key, [
        x509.BasicConstraints(ca=False, path_length=None),
        x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
    ])
    client_cert = _sign("hilum-test-client", client_key, ca_name, ca_key, [
        x509.BasicConstraints(ca=False, path_length=None),
        x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
    ])
    ca_path = folder / "ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_paths = _write(folder, "server", server_key, server_cert)
    client_paths = _write(folder, "client", client_key, client_cert)
    return TlsFiles(ca_path, *server_paths, *client_paths)
