"""TLS for Hilum's gRPC services: server and client credentials from the [grpc] settings' PEM files, and client
channels that carry the settings' bearer token (grpc_access.py checks it on the server).

Servers and their clients read the same settings: tls_cert_file/tls_key_file are the server's identity and,
with tls_require_client_cert, the identity a client presents; tls_ca_file is the CA both sides trust.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from hilum.common.grpc_access import BearerToken
from hilum.common.settings import GrpcSection

_PAIR = "HILUM_GRPC__TLS_CERT_FILE and HILUM_GRPC__TLS_KEY_FILE"


def _read(path: Path, setting: str) -> bytes:
    """The PEM file a setting names, or an error that names the setting."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {setting} {path}: {exc.strerror}") from exc


def _key_and_chain(section: GrpcSection) -> tuple[bytes, bytes] | None:
    """PEM (private key, certificate chain) from tls_key_file and tls_cert_file; None when neither is set."""
    if section.tls_cert_file is None and section.tls_key_file is None:
        return None
    if section.tls_cert_file is None or section.tls_key_file is None:
        raise ValueError(f"{_PAIR} must be set together (only one of them is set)")
    return (_read(section.tls_key_file, "HILUM_GRPC__TLS_KEY_FILE"),
            _read(section.tls_cert_file, "HILUM_GRPC__TLS_CERT_FILE"))


def _ca(section: GrpcSection) -> bytes | None:
    """The PEM of tls_ca_file, if set."""
    return None if section.tls_ca_file is None else _read(section.tls_ca_file, "HILUM_GRPC__TLS_CA_FILE")


def server_credentials(section: GrpcSection) -> grpc.ServerCredentials | None:
    """Credentials of a service port: None (plaintext) when no TLS setting is set.

    With tls_require_client_cert, a client must present a certificate that chains to tls_ca_file.
    """
    key_and_chain = _key_and_chain(section)
    if key_and_chain is None:
        if section.tls_ca_file is not None or section.tls_require_client_cert:
            raise ValueError(f"TLS is asked for but the server has no certificate: set {_PAIR}")
        return None
    if section.tls_require_client_cert and section.tls_ca_file is None:
        raise ValueError("HILUM_GRPC__TLS_REQUIRE_CLIENT_CERT needs HILUM_GRPC__TLS_CA_FILE, "
                         "the CA that client certificates must chain to")
    return grpc.ssl_server_credentials(
        [key_and_chain], root_certificates=_ca(section), require_client_auth=section.tls_require_client_cert
    )


def channel_credentials(section: GrpcSection) -> grpc.ChannelCredentials | None:
    """Credentials of a client: None (plaintext) unless tls_ca_file or tls_cert_file is set.

    The server is checked against tls_ca_file (the system's roots when unset); with tls_require_client_cert
    the client presents tls_cert_file/tls_key_file (read only then, as a client may not be able to read a key).
    """
    if section.tls_require_client_cert:
        key_and_chain = _key_and_chain(section)
        if key_and_chain is None:
            raise ValueError(f"HILUM_GRPC__TLS_REQUIRE_CLIENT_CERT: a client needs {_PAIR} to present")
        key, chain = key_and_chain
        return grpc.ssl_channel_credentials(root_certificates=_ca(section), private_key=key, certificate_chain=chain)
    if section.tls_ca_file is None and section.tls_cert_file is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=_ca(section))


def client_channel(address: str, section: GrpcSection | None, options: list[tuple[str, int]]) -> grpc.Channel:
    """A channel to a Hilum service at address: TLS as section's settings say, plaintext without a section; every call
    carries section's bearer token, if it names one."""
    credentials = None if section is None else channel_credentials(section)
    if credentials is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        channel = grpc.secure_channel(address, credentials, options=options)
    if section is not None and section.bearer_token:
        return grpc.intercept_channel(channel, BearerToken(section.bearer_token))
    return channel
