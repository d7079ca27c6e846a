"""A secret with ``"SSL": true`` never logs in to PostgreSQL in plain text, even through a
man in the middle that answers libpq's SSLRequest with 'N' ("no TLS here") and forwards the
rest to a server that would accept a plain-text login.

The proxy is real TCP on 127.0.0.1 in front of the session's (plain-text) PostgreSQL: a client
that went on after the 'N' would log in, so these tests can fail.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import selectors
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rotation import DatabaseError, LoginFailed
from rotation._pg_conn import pg_connect
from rotation.dbconn import ConnectOptions
from secretclient.client import SecretClient
from secretclient.db import ClientMisconfigured, ErrorKind
from secretclient.db.psycopg import connect
from secretclient.model import DbCredentials
from secretclient.stores.embedded import EmbeddedStore

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_LIFETIME = 60.0  # the proxy stops by itself after this many seconds


class TlsStrippingProxy:
    """Answers every SSLRequest (and GSSENCRequest) with 'N', then forwards whatever the client
    sends next to ``upstream`` and back. ``plaintext_bytes`` counts what a client sent in clear
    after being told there is no TLS (its StartupMessage, with the user name, and then its
    password exchange)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.refused = 0
        self.plaintext_bytes = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.host, self.port = self._server.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tls-stripper", daemon=True)

    def __enter__(self) -> TlsStrippingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _accept(self) -> None:
        deadline = threading.Timer(_LIFETIME, self._stop.set)
        deadline.daemon = True
        deadline.start()
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()
        deadline.cancel()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            client.settimeout(5.0)
            try:
                while True:
                    head = _read_exactly(client, 8)
                    length, code = struct.unpack("!II", head)
                    if length == 8 and code in (_SSL_REQUEST, _GSSENC_REQUEST):
                        with self._lock:
                            self.refused += 1
                        client.sendall(b"N")
                        continue
                    self._forward(client, head)
                    return
            except (OSError, ConnectionError):
                return  # the client gave up after the 'N': what it should do

    def _forward(self, client: socket.socket, first: bytes) -> None:
        with socket.create_connection(self.upstream, timeout=5.0) as upstream:
            self._count(len(first))
            upstream.sendall(first)
            sel = selectors.DefaultSelector()
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            for _ in range(10_000):  # bounded: a login is a few dozen packets
                if self._stop.is_set():
                    return
                for key, _ in sel.select(timeout=0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    if key.fileobj is client:
                        self._count(len(data))
                    key.data.sendall(data)

    def _count(self, n: int) -> None:
        with self._lock:
            self.plaintext_bytes += n


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


@pytest.fixture
def stripped(postgresql) -> Iterator[tuple[Any, TlsStrippingProxy, str, str]]:
    """A role on the plain-text server, and the stripping proxy in front of that server."""
    user, password = f"strip_{secrets.token_hex(3)}", "pw-" + secrets.token_hex(10)
    postgresql.create_user(user, password)
    with TlsStrippingProxy((postgresql.host, postgresql.port)) as proxy:
        yield postgresql, proxy, user, password


def _doc(proxy: TlsStrippingProxy, user: str, password: str, ssl: bool) -> dict[str, Any]:
    return {"engine": "postgres", "username": user, "password": password, "host": proxy.host,
            "port": proxy.port, "dbname": "postgres", "SSL": ssl}


def test_the_proxy_really_lets_a_plain_text_login_through(stripped) -> None:
    """The control: without SSL: true, libpq's 'prefer' takes the 'N' and logs in in clear."""
    import psycopg

    _pg, proxy, user, password = stripped
    with psycopg.connect(host=proxy.host, port=proxy.port, user=user, password=password, dbname="postgres",
                         sslmode="prefer") as conn:
        assert conn.execute("SELECT current_user").fetchone() == (user,)
    assert proxy.refused >= 1 and proxy.plaintext_bytes > 0


def test_connect_with_ssl_true_fails_typed_and_sends_nothing_in_clear(stripped) -> None:
    pg, proxy, user, password = stripped
    store = EmbeddedStore()
    store.create_secret("pg/strip", json.dumps(_doc(proxy, user, password, ssl=True)))
    client = SecretClient(store, rotation_aware=False)
    try:
        with pytest.raises(ClientMisconfigured) as info:
            connect("pg/strip", client=client, sslrootcert=str(pg.directory / "no-such-ca.pem"))
        assert [a.kind for a in info.value.attempts] == [ErrorKind.CLIENT_CONFIG]
        with pytest.raises(ClientMisconfigured):  # the default: the system CAs
            connect("pg/strip", client=client)
    finally:
        client.close()
    assert password not in str(info.value)
    assert proxy.refused >= 2 and proxy.plaintext_bytes == 0
    assert pg.failed_logins(user) == 0


def test_rotation_login_with_ssl_true_fails_typed_and_sends_nothing_in_clear(stripped) -> None:
    pg, proxy, user, password = stripped
    creds = DbCredentials.from_mapping(_doc(proxy, user, password, ssl=True))
    ca = str(pg.directory / "no-such-ca.pem")  # never read: the 'N' comes before any certificate
    for options in (ConnectOptions(), ConnectOptions(ca_file=ca), ConnectOptions(ca_file=ca, verify_identity=False)):
        with pytest.raises(DatabaseError) as info:
            pg_connect(creds, options)
        assert not isinstance(info.value, LoginFailed)  # not "wrong password": the channel is refused
        assert "SSL" in str(info.value) and password not in str(info.value)
    assert proxy.refused >= 2 and proxy.plaintext_bytes == 0
    assert pg.failed_logins(user) == 0
