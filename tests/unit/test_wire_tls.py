"""TLS: the handshake and messages inside trio.SSLStream, with a throwaway CA (trustme) and
with the self-signed certificate of ``--tls auto``, pinned."""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import stat
from pathlib import Path

import pytest
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from grainlike import ConfigError
from grainlike.wire import (
    TLS_CERT_NAME,
    TLS_KEY_NAME,
    FramedStream,
    Goodbye,
    authenticate_as_client,
    authenticate_as_server,
    certificate_fingerprint,
    decode,
    encode,
    ensure_self_signed,
    parse_fingerprint,
    tls_client_context,
    tls_client_context_pinned,
    tls_server_context,
)

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA file, server certificate, server key) for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("pki")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    authority.cert_pem.write_to_path(str(paths[0]))
    issued.cert_chain_pems[0].write_to_path(str(paths[1]))
    issued.private_key_pem.write_to_path(str(paths[2]))
    return paths


async def test_the_handshake_and_messages_cross_tls_over_tcp(pki: tuple[Path, Path, Path]) -> None:
    cafile, cert, key = pki
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def dispatcher() -> None:
        raw = await listeners[0].accept()
        tls = trio.SSLStream(raw, tls_server_context(cert, key), server_side=True)
        framed = FramedStream(tls)
        await authenticate_as_server(framed, KEY)
        await framed.send(encode(Goodbye("over TLS")))
        await framed.aclose()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(dispatcher)
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            tls = trio.SSLStream(raw, tls_client_context(cafile), server_hostname="127.0.0.1")
            framed = FramedStream(tls)
            await authenticate_as_client(framed, KEY)
            assert decode(await framed.receive()) == Goodbye("over TLS")
            await framed.aclose()
    await listeners[0].aclose()


async def test_a_client_refuses_a_certificate_its_ca_did_not_sign(
    pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, cert, key = pki
    stranger = tmp_path / "stranger.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    client_raw, server_raw = trio.testing.memory_stream_pair()
    server = trio.SSLStream(server_raw, tls_server_context(cert, key), server_side=True)
    client = trio.SSLStream(client_raw, tls_client_context(stranger), server_hostname="localhost")

    async def serve() -> None:
        with pytest.raises(trio.BrokenResourceError):
            await server.do_handshake()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            with pytest.raises(trio.BrokenResourceError) as info:
                await client.do_handshake()
            await client_raw.aclose()  # the server learns that its peer left
    assert "CERTIFICATE_VERIFY_FAILED" in repr(info.value.__cause__)


def test_missing_or_invalid_tls_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.pem"):
        tls_server_context(tmp_path / "absent.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"junk\.pem"):
        tls_server_context(junk)
    with pytest.raises(ConfigError, match=r"junk\.pem"):
        tls_client_context(junk)


# -- --tls auto: a self-signed certificate next to the key, pinned by the workers ----------------


def make_pair(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(mode=0o700)
    return ensure_self_signed(directory)


async def handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> tuple[object, Goodbye | None]:
    """Connect over real TCP on 127.0.0.1, then authenticate and pass one message."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    received: Goodbye | None = None

    async def dispatcher() -> None:
        raw = await listeners[0].accept()
        framed = FramedStream(trio.SSLStream(raw, server_context, server_side=True))
        try:
            await authenticate_as_server(framed, KEY)
            await framed.send(encode(Goodbye("pinned")))
        except trio.BrokenResourceError:
            pass  # the client refused the certificate and hung up
        finally:
            await framed.aclose()

    error: object = None
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(dispatcher)
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            framed = FramedStream(
                trio.SSLStream(raw, client_context, server_hostname="some.other.name")
            )
            try:
                await authenticate_as_client(framed, KEY)
                message = decode(await framed.receive())
                assert isinstance(message, Goodbye)
                received = message
            except trio.BrokenResourceError as exc:
                error = exc.__cause__
            finally:
                await framed.aclose()
    await listeners[0].aclose()
    return error, received


def test_a_self_signed_pair_is_made_once_with_a_0600_key(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        cert, key = make_pair(tmp_path / "grainlike")
    finally:
        os.umask(previous)
    assert (cert.name, key.name) == (TLS_CERT_NAME, TLS_KEY_NAME)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key.read_text()
    assert "PRIVATE KEY" not in cert.read_text()
    fingerprint = certificate_fingerprint(cert)
    assert re.fullmatch(r"SHA256(:[0-9A-F]{2}){32}", fingerprint)
    assert ensure_self_signed(cert.parent) == (cert, key)  # reused: workers keep the pin
    assert certificate_fingerprint(cert) == fingerprint
    assert sorted(p.name for p in cert.parent.iterdir()) == [TLS_CERT_NAME, TLS_KEY_NAME]


def test_the_fingerprint_is_the_sha256_of_the_certificate(tmp_path: Path) -> None:
    cert, _ = make_pair(tmp_path / "grainlike")
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(Encoding.DER)
    assert parse_fingerprint(certificate_fingerprint(cert)) == hashlib.sha256(der).digest()


async def test_a_pinned_worker_completes_the_handshake_with_its_dispatcher(
    tmp_path: Path,
) -> None:
    cert, key = make_pair(tmp_path / "grainlike")
    pinned = tls_client_context_pinned(certificate_fingerprint(cert))
    error, received = await handshake(tls_server_context(cert, key), pinned)
    assert (error, received) == (None, Goodbye("pinned"))


async def test_a_pinned_worker_refuses_any_other_certificate(tmp_path: Path) -> None:
    cert, _ = make_pair(tmp_path / "ours")
    other_cert, other_key = make_pair(tmp_path / "theirs")
    pinned = tls_client_context_pinned(certificate_fingerprint(cert))
    error, received = await handshake(tls_server_context(other_cert, other_key), pinned)
    assert received is None
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert f"not the pinned {certificate_fingerprint(cert)}" in str(error)
    assert certificate_fingerprint(other_cert) in str(error)


async def test_a_pinned_worker_refuses_a_certificate_a_ca_vouches_for(
    pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, ca_cert, ca_key = pki  # valid for 127.0.0.1: only the pin says no
    cert, _ = make_pair(tmp_path / "ours")
    pinned = tls_client_context_pinned(certificate_fingerprint(cert))
    error, received = await handshake(tls_server_context(ca_cert, ca_key), pinned)
    assert received is None
    assert isinstance(error, ssl.SSLCertVerificationError)


@pytest.mark.parametrize(
    "text",
    ["SHA256:" + ":".join(["AB"] * 32), "sha256:" + "ab" * 32, "ab" * 32, " " + "AB" * 32 + "\n"],
)
def test_a_fingerprint_is_read_with_or_without_prefix_and_colons(text: str) -> None:
    assert parse_fingerprint(text) == bytes([0xAB] * 32)


@pytest.mark.parametrize("text", ["", "SHA256:", "ab" * 31, "SHA1:" + "ab" * 32, "zz" * 32])
def test_a_malformed_fingerprint_is_a_config_error_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"TLS fingerprint {text!r}")):
        tls_client_context_pinned(text)


def test_half_a_pair_is_refused_rather_than_replaced(tmp_path: Path) -> None:
    cert, key = make_pair(tmp_path / "grainlike")
    key.unlink()
    with pytest.raises(ConfigError, match=re.escape(f"delete {str(cert)!r}")):
        ensure_self_signed(cert.parent)


def test_a_tls_key_others_may_read_is_refused(tmp_path: Path) -> None:
    _, key = make_pair(tmp_path / "grainlike")
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"TLS private key .* has mode 0644"):
        ensure_self_signed(key.parent)


def test_no_pair_is_made_in_a_directory_others_may_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match="has mode 0777"):
        ensure_self_signed(shared)
    assert list(shared.iterdir()) == []


def test_a_file_without_a_certificate_has_no_fingerprint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"junk\.pem.*cannot read a certificate"):
        certificate_fingerprint(junk)


def test_a_pinned_certificate_others_may_replace_is_refused(tmp_path: Path) -> None:
    cert, _ = make_pair(tmp_path / "grainlike")
    cert.chmod(0o666)
    with pytest.raises(ConfigError, match=r"TLS certificate .* has mode 0666: others may change"):
        certificate_fingerprint(cert)
