"""TLS: the handshake and messages inside trio.SSLStream, with a throwaway CA (trustme)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trustme

from grainlike import ConfigError
from grainlike.wire import (
    FramedStream,
    Goodbye,
    authenticate_as_client,
    authenticate_as_server,
    decode,
    encode,
    tls_client_context,
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
