"""TLS contexts for ``trio.SSLStream``, for dispatchers that listen on untrusted networks.

The HMAC handshake proves who holds the key but does not encrypt: without TLS, anyone on the
path reads the tasks and results, and a man in the middle can relay the handshake.
Run the handshake inside the TLS stream.
"""

from __future__ import annotations

import os
import ssl

from .._exceptions import ConfigError

__all__ = ["tls_client_context", "tls_server_context"]


def tls_server_context(
    cert: str | os.PathLike[str], key: str | os.PathLike[str] | None = None
) -> ssl.SSLContext:
    """A server context for a dispatcher: its certificate chain and private key (PEM files).

    Use it as ``trio.SSLStream(stream, context, server_side=True)``.

    Args:
        cert: The certificate chain; it may hold the private key too.
        key: The private key, when it is not in ``cert``.

    Raises:
        ConfigError: A file is missing, or is not a valid certificate or key.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        where = os.fspath(cert) if key is None else f"{os.fspath(cert)}, {os.fspath(key)}"
        raise ConfigError(f"TLS certificate {where!r}: cannot load it: {exc}") from exc
    return context


def tls_client_context(cafile: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A client context for workers and clients, verifying the dispatcher's certificate.

    Use it as ``trio.SSLStream(stream, context, server_hostname=HOST)``; the host name is checked
    against the certificate.

    Args:
        cafile: The CA certificates (PEM) that signed the dispatcher's certificate;
            ``None`` trusts the system's CAs.

    Raises:
        ConfigError: ``cafile`` is missing or holds no valid certificate.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"TLS CA file {os.fspath(cafile or '')!r}: cannot load it: {exc}"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
