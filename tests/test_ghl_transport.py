"""`KeepAliveTransport` against a real loopback server that writes exactly the bytes a test
chooses: framing (length, chunks, until close), keep-alive reuse, and the errors that tell a
caller whether a request may have reached GHL."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest

from ghlsync.ghl import GHLClient
from ghlsync.ghl._transport import KeepAliveTransport, default_transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request: (head, body) by Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


@asynccontextmanager
async def server(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server running `handler` per connection; yields (base URL, connections
    seen as a one-item counter)."""
    seen = [0]

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen[0] += 1
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=ssl_context)
    port = srv.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}", seen
    finally:
        srv.close()


def answer(body: bytes, *extra: bytes, status: bytes = b"200 OK") -> bytes:
    head = [b"HTTP/1.1 " + status, b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        head, body = await read_request(reader)
        path = head.split(b" ")[1]
        writer.write(answer(b'{"path": "%s", "got": %d}' % (path, len(body))))
        await writer.drain()


async def test_requests_reuse_one_kept_alive_connection() -> None:
    async with (
        server(keep_answering) as (url, seen),
        httpx2.AsyncClient(transport=KeepAliveTransport(), base_url=url) as http,
    ):
        for n in range(5):
            r = await http.post(f"/contacts/{n}", json={"n": n})
            assert r.status_code == 200
            assert r.json() == {"path": f"/contacts/{n}", "got": len(b'{"n":%d}' % n)}
        assert seen[0] == 1
        # Concurrent requests each get a connection; afterwards they are all reused.
        answers = await asyncio.gather(*(http.get(f"/c/{n}") for n in range(4)))
        assert [a.json()["path"] for a in answers] == [f"/c/{n}" for n in range(4)]
        assert seen[0] == 4


async def test_what_the_server_receives_is_what_httpx2_would_send() -> None:
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        heads.append(head + body)
        writer.write(answer(b"{}"))
        await writer.drain()

    async with (
        server(record) as (url, _),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        await http.put(f"{url}/x?a=1&b=%20", json={"é": 1}, headers={"Version": "v"})
    head = heads[0]
    assert head.startswith(b"PUT /x?a=1&b=%20 HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in head.lower()
    assert b"\r\nVersion: v\r\n" in head
    assert head.endswith(b"\r\n\r\n" + '{"é":1}'.encode())


@pytest.mark.parametrize(
    ("reply", "body", "reused"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;x=y\r\nabcd\r\n3\r\nefg\r\n0\r\nTrailer: t\r\n\r\n",
            b"abcdefg",
            True,
        ),
        (answer(b"bye", b"Connection: close"), b"bye", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"after"), b"after", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
    ],
)
async def test_answer_framing(reply: bytes, body: bytes, reused: bool) -> None:
    async def reply_twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await read_request(reader)
            writer.write(reply)
            await writer.drain()

    async with (
        server(reply_twice) as (url, seen),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        assert (await http.get(url)).content == body
        assert (await http.get(url)).content == body
    assert seen[0] == (1 if reused else 2)


async def test_a_body_without_length_runs_until_the_close() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        await writer.drain()

    async with (
        server(until_close) as (url, _),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        assert (await http.get(url)).text == "all of it"


async def test_gzip_is_decoded_by_httpx2() -> None:
    packed = gzip.compress(b'{"ok": true}')

    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(packed, b"Content-Encoding: gzip"))
        await writer.drain()

    async with (
        server(gzipped) as (url, _),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        assert (await http.get(url)).json() == {"ok": True}


async def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"1"))  # says nothing of closing, then closes
        await writer.drain()

    async with (
        server(one_then_close) as (url, seen),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        assert (await http.get(url)).text == "1"
        await asyncio.sleep(0.05)  # the close reaches the idle connection
        assert (await http.get(url)).text == "1"
    assert seen[0] == 2


async def test_errors_say_whether_the_request_may_have_arrived() -> None:
    async def silent_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    transport = KeepAliveTransport()
    async with httpx2.AsyncClient(transport=transport, timeout=0.3) as http:
        async with server(silent_close) as (url, _):
            with pytest.raises(httpx2.RemoteProtocolError, match="without sending a response"):
                await http.post(url, json={})
        async with server(cut_body) as (url, _):
            with pytest.raises(httpx2.ReadError):
                await http.get(url)
        async with server(stall) as (url, _):
            with pytest.raises(httpx2.ReadTimeout):
                await http.get(url)
        async with server(garbage) as (url, _):
            with pytest.raises(httpx2.RemoteProtocolError):
                await http.get(url)
        with pytest.raises(httpx2.ConnectError):  # nothing listens there any more
            await http.get(url)


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b'{"whole": "answer"}', b"X-A: 1"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3\r\n{"w\r\n10\r\nhole": "answer"}\r\n0\r\n\r\n',
    ],
)
async def test_an_answer_arriving_a_byte_at_a_time_is_read_whole(reply: bytes) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await read_request(reader)
            for i in range(len(reply)):
                writer.write(reply[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)

    async with (
        server(trickle) as (url, seen),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        for _ in range(2):
            assert (await http.get(url)).json() == {"whole": "answer"}
    assert seen[0] == 1


async def test_a_connection_with_bytes_nobody_asked_for_is_not_reused() -> None:
    async def answer_twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer(b"asked") + answer(b"stray"))
            await writer.drain()

    async with (
        server(answer_twice) as (url, seen),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        assert (await http.get(url)).text == "asked"
        assert (await http.get(url)).text == "asked"  # not the stray answer
    assert seen[0] == 2


async def test_a_bad_chunk_size_is_a_protocol_error() -> None:
    async def bad_chunk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with (
        server(bad_chunk) as (url, _),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        with pytest.raises(httpx2.RemoteProtocolError, match="chunk size"):
            await http.get(url)


async def test_a_request_the_server_does_not_take_times_out_writing() -> None:
    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with (
        server(never_read) as (url, _),
        httpx2.AsyncClient(transport=KeepAliveTransport(), timeout=0.3) as http,
    ):
        with pytest.raises(httpx2.WriteTimeout):
            await http.post(url, content=b"x" * (64 * 1024 * 1024))


async def test_a_connection_reset_while_writing_is_a_write_error() -> None:
    async def close_unread(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.2)  # closing with the request unread resets the connection

    async with (
        server(close_unread) as (url, _),
        httpx2.AsyncClient(transport=KeepAliveTransport(), timeout=5) as http,
    ):
        with pytest.raises(httpx2.WriteError):
            await http.post(url, content=b"x" * (64 * 1024 * 1024))


async def test_a_cancelled_request_leaves_no_connection_behind() -> None:
    stalled = asyncio.Event()

    async def stall_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not stalled.is_set():
            stalled.set()
            await read_request(reader)
            await asyncio.sleep(5)
        await keep_answering(reader, writer)

    async with (
        server(stall_once) as (url, seen),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        waiting = asyncio.create_task(http.get(f"{url}/first"))
        await stalled.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await http.get(f"{url}/second")).json()["path"] == "/second"
    assert seen[0] == 2


@pytest.mark.parametrize("value", [b"plain", "caf\u00e9".encode(), "caf\u00e9".encode("latin-1")])
async def test_header_values_decode_as_httpx2_decodes_them(value: bytes) -> None:
    async def with_value(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}", b"X-Name: " + value))
        await writer.drain()

    async with (
        server(with_value) as (url, _),
        httpx2.AsyncClient(transport=KeepAliveTransport()) as http,
    ):
        r = await http.get(url)
    expected = httpx2.Headers([(b"content-length", b"2"), (b"x-name", value)])
    assert r.headers.encoding == expected.encoding
    assert r.headers["x-name"] == expected["x-name"]
    assert r.is_closed and r.elapsed.total_seconds() >= 0  # read whole, as httpx2 records it


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 with a certificate only `ca` (its own file) trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile = tmp_path / "key.pem"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca, keyfile)
    return context, ca


async def test_tls_is_verified_against_the_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, ca = _self_signed(tmp_path)
    async with server(keep_answering, context) as (url, _):
        # Not trusted: the handshake fails before anything is sent.
        async with httpx2.AsyncClient(transport=KeepAliveTransport()) as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get(f"{url}/x")
        # Trusted through SSL_CERT_FILE (httpx2's trust_env): it answers over TLS.
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        async with httpx2.AsyncClient(transport=KeepAliveTransport()) as http:
            assert (await http.get(f"{url}/x")).json()["path"] == "/x"


def test_the_client_uses_it_unless_a_proxy_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(default_transport(), KeepAliveTransport)
    client = GHLClient(tokens=object())  # type: ignore[arg-type]
    assert isinstance(client._http._transport, KeepAliveTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert default_transport() is None  # httpx2's own transport, which speaks to proxies
