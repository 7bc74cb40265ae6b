"""TLS contexts for ``trio.SSLStream``, for dispatchers that listen on untrusted networks.

The HMAC handshake proves who holds the key but does not encrypt: without TLS, anyone on the
path reads the tasks and results, and a man in the middle can relay the handshake and then
inject messages of its own.  Run the handshake inside the TLS stream.

The easy path needs no certificate authority: the dispatcher makes a self-signed certificate
next to its key file (``ensure_self_signed``), and workers pin exactly that certificate by
its SHA-256 fingerprint (``tls_client_context_pinned``), read from the certificate file or
given as ``SHA256:AB:CD:...``.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
import socket
import ssl
import string
from pathlib import Path
from typing import Final

from .._exceptions import ConfigError
from .._permissions import check_private_directories, check_private_file

__all__ = [
    "TLS_CERT_NAME",
    "TLS_KEY_NAME",
    "certificate_fingerprint",
    "ensure_self_signed",
    "parse_fingerprint",
    "tls_client_context",
    "tls_client_context_pinned",
    "tls_server_context",
]

#: The self-signed certificate's file, next to the key file.
TLS_CERT_NAME: Final = "tls-cert.pem"
#: Its private key's file (mode 0600), next to the key file.
TLS_KEY_NAME: Final = "tls-key.pem"
#: How long a generated certificate is valid.  Pinning ignores the dates (the pin is the
#: trust), so this matters only to other tools that look at the certificate.
_VALIDITY: Final = datetime.timedelta(days=3650)


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


# -- a self-signed certificate, pinned -----------------------------------------------------------


def parse_fingerprint(text: str) -> bytes:
    """The SHA-256 digest in ``SHA256:AB:CD:...`` (the prefix and the colons are optional).

    Raises:
        ConfigError: ``text`` is not 32 bytes of hex.
    """
    body = text.strip()
    if body[:7].upper() == "SHA256:":
        body = body[7:]
    digits = body.replace(":", "")
    if len(digits) != 64 or not set(digits) <= set(string.hexdigits):
        raise ConfigError(
            f"TLS fingerprint {text!r}: expected SHA256: and 64 hex digits, as "
            "`grainlike run --tls auto` prints it"
        )
    return bytes.fromhex(digits)


def _format_fingerprint(digest: bytes) -> str:
    # The spelling of `openssl x509 -noout -fingerprint -sha256`, so users can compare.
    return "SHA256:" + ":".join(f"{byte:02X}" for byte in digest)


def certificate_fingerprint(cert: str | os.PathLike[str]) -> str:
    """The SHA-256 fingerprint of the (first) certificate in a PEM file, as ``SHA256:AB:...``.

    The file is a pin's source, so it must be one that only you (or root) can replace.

    Raises:
        ConfigError: The file cannot be read, holds no certificate, or others may replace it.
    """
    check_private_file(cert, what="TLS certificate", secret=False)
    try:
        text = Path(cert).read_text(encoding="ascii")
        start = text.index(ssl.PEM_HEADER)
        end = text.index(ssl.PEM_FOOTER, start) + len(ssl.PEM_FOOTER)
        der = ssl.PEM_cert_to_DER_cert(text[start:end])
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"TLS certificate {os.fspath(cert)!r}: cannot read a certificate from it: {exc}"
        ) from None
    return _format_fingerprint(hashlib.sha256(der).digest())


class _PinnedSSLObject(ssl.SSLObject):
    """An ``SSLObject`` whose handshake fails unless the peer shows the pinned certificate."""

    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the peer's certificate is in
        context = self.context
        assert isinstance(context, _PinnedContext)
        der = self.getpeercert(binary_form=True)
        seen = hashlib.sha256(der).digest() if der is not None else None
        if seen is None or not secrets.compare_digest(seen, context.pin):
            shown = "no certificate" if seen is None else _format_fingerprint(seen)
            raise ssl.SSLCertVerificationError(
                f"the dispatcher's TLS certificate is {shown}, not the pinned "
                f"{_format_fingerprint(context.pin)}"
            )


class _PinnedContext(ssl.SSLContext):
    pin: bytes
    sslobject_class = _PinnedSSLObject


def tls_client_context_pinned(fingerprint: str) -> ssl.SSLContext:
    """A client context that trusts exactly one certificate: the one with ``fingerprint``.

    The pinned certificate is the trust anchor, so neither a CA nor the host name is
    consulted; instead the handshake fails (``trio.BrokenResourceError`` from an
    ``SSLStream``, caused by ``ssl.SSLCertVerificationError``) unless the dispatcher presents
    that very certificate, and TLS itself proves it holds the certificate's private key.
    Use it like ``tls_client_context``'s; ``server_hostname`` is then only sent, not checked.

    Args:
        fingerprint: ``SHA256:AB:CD:...``, as ``certificate_fingerprint`` gives it.

    Raises:
        ConfigError: ``fingerprint`` is malformed.
    """
    context = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.pin = parse_fingerprint(fingerprint)
    # Both ends are grainlike: TLS 1.3, which also has no renegotiation to a second certificate.
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # Chain and host name checks are replaced, not dropped: _PinnedSSLObject compares the
    # whole certificate, which no CA could have issued to anyone else.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def ensure_self_signed(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The dispatcher's self-signed certificate and private key in ``directory``.

    Made on first use (an ECDSA P-256 key, mode 0600, and a certificate for this host) and
    reused afterwards, so that workers keep the pin; to replace them, delete both files.

    Returns:
        (certificate, private key) paths, named ``TLS_CERT_NAME`` and ``TLS_KEY_NAME``.

    Raises:
        ConfigError: Only one of the two exists, either is open to others, or they cannot be
            written.
    """
    folder = Path(directory)
    cert, key = folder / TLS_CERT_NAME, folder / TLS_KEY_NAME
    if not cert.exists() and not key.exists():
        _generate(cert, key)
    elif not (cert.exists() and key.exists()):
        missing, present = (key, cert) if cert.exists() else (cert, key)
        raise ConfigError(
            f"TLS files: {str(present)!r} is there but {str(missing)!r} is not; delete "
            f"{str(present)!r} to make a new certificate (workers then need the new pin)"
        )
    check_private_file(key, what="TLS private key")
    check_private_file(cert, what="TLS certificate", secret=False)
    return cert, key


def _generate(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"grainlike dispatcher {host}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        # Not a CA: it signs nothing, so no other certificate can chain to it.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_private_directories(cert.parent, what=f"TLS private key {str(key)!r}")
        # The key first: a certificate on disk means its key is there too.
        _write_new(key, key_pem)
        _write_new(cert, certificate.public_bytes(serialization.Encoding.PEM))
    except FileExistsError:
        return  # another dispatcher made them at the same moment: use those
    except OSError as exc:
        raise ConfigError(f"TLS files in {str(cert.parent)!r}: cannot make them: {exc}") from exc


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) so it appears complete or not at all; fails if it exists."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
