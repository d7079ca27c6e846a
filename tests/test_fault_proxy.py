"""FaultProxy in front of the real MariaDB, driven by PyMySQL: each mode, switching, stopping."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pymysql
import pytest

from secretclient.errors import InvalidParameter
from secretclient.testing import FaultProxy, MariaDB

# A reset right after the TCP handshake surfaces as 2003 or 2013, depending on which call of
# PyMySQL's connect sees it first.
CONNECTION_FAILED = (2003, 2013)


@pytest.fixture
def proxy(mariadb_proxy: FaultProxy) -> FaultProxy:
    return mariadb_proxy  # the plugin's fixture, under a short name


def _connect(mariadb: MariaDB, proxy: FaultProxy, **kw: Any) -> pymysql.connections.Connection:
    kw.setdefault("read_timeout", 5)
    return mariadb.connect(host=proxy.host, port=proxy.port, connect_timeout=2, **kw)


def _query(conn: pymysql.connections.Connection, value: int) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT %s + 1", (value,))
        return int(cur.fetchone()[0])


def test_pass_through_reaches_the_server(mariadb: MariaDB, proxy: FaultProxy) -> None:
    assert proxy.mode == "pass" and proxy.port not in (0, mariadb.port)
    with _connect(mariadb, proxy) as conn:
        assert _query(conn, 41) == 42
        assert proxy.active == 1
    assert proxy.accepted == 1


def test_delay_holds_each_chunk(mariadb: MariaDB, proxy: FaultProxy) -> None:
    with _connect(mariadb, proxy) as conn:
        proxy.delay(0.2)
        assert proxy.mode == "delay"
        started = time.monotonic()
        assert _query(conn, 1) == 2
        # The query goes one way and the result comes back: two delayed chunks at least.
        assert time.monotonic() - started >= 0.4
        proxy.pass_through()
        assert _query(conn, 2) == 3


def test_blackhole_times_out_open_and_new_connections(mariadb: MariaDB, proxy: FaultProxy) -> None:
    conn = _connect(mariadb, proxy, read_timeout=0.3)
    proxy.blackhole()
    with pytest.raises(pymysql.err.OperationalError) as err:
        _query(conn, 1)
    assert err.value.args[0] == 2013
    with pytest.raises(pymysql.err.OperationalError) as err:
        _connect(mariadb, proxy, read_timeout=0.3)  # accepted, but the greeting never comes
    assert err.value.args[0] == 2013
    proxy.pass_through()
    with _connect(mariadb, proxy) as conn:
        assert _query(conn, 5) == 6


def test_blackhole_holds_data_until_healed(mariadb: MariaDB, proxy: FaultProxy) -> None:
    conn = _connect(mariadb, proxy)
    proxy.blackhole()
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(_query(conn, 9)))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and results == []
    proxy.pass_through()
    worker.join(5)
    assert results == [10]
    conn.close()


def test_reset_refuses_new_connections_and_keeps_open_ones(mariadb: MariaDB, proxy: FaultProxy) -> None:
    conn = _connect(mariadb, proxy)
    proxy.reset()
    with pytest.raises(pymysql.err.OperationalError) as err:
        _connect(mariadb, proxy)
    assert err.value.args[0] in CONNECTION_FAILED
    assert _query(conn, 1) == 2
    proxy.reset(existing=True)
    with pytest.raises(pymysql.err.OperationalError) as err:
        _query(conn, 1)
    assert err.value.args[0] in (2006, 2013)
    proxy.pass_through()
    with _connect(mariadb, proxy) as fresh:
        assert _query(fresh, 3) == 4


def test_drop_connections_is_one_shot(mariadb: MariaDB, proxy: FaultProxy) -> None:
    old = _connect(mariadb, proxy)
    proxy.drop_connections()
    with pytest.raises(pymysql.err.OperationalError):
        _query(old, 1)
    assert proxy.mode == "pass"
    with _connect(mariadb, proxy) as conn:
        assert _query(conn, 7) == 8
    old.close()


def test_unreachable_target_closes_the_client(mariadb: MariaDB) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # bound, not listening: connecting is refused
        with FaultProxy("127.0.0.1", dead_port, connect_timeout=1) as p:
            with pytest.raises(pymysql.err.OperationalError) as err:
                pymysql.connect(host=p.host, port=p.port, user="x", connect_timeout=2, read_timeout=2)
    assert err.value.args[0] in CONNECTION_FAILED


def test_stop_is_bounded_and_refuses_afterwards(mariadb: MariaDB) -> None:
    p = FaultProxy(mariadb.host, mariadb.port).start()
    conn = _connect(mariadb, p)
    p.blackhole()
    held = socket.create_connection((p.host, p.port), timeout=2)  # waits in the blackhole
    deadline = time.monotonic() + 2
    while p.active < 2 and time.monotonic() < deadline:  # the accept thread hands it over
        time.sleep(0.01)
    assert p.running and p.active == 2
    started = time.monotonic()
    p.stop()
    assert time.monotonic() - started < 2
    assert not p.running and p.active == 0
    with pytest.raises(pymysql.err.OperationalError) as err:
        _connect(mariadb, p)
    assert err.value.args[0] == 2003
    held.close()
    conn.close()


def test_expires_after_max_lifetime(mariadb: MariaDB) -> None:
    p = FaultProxy(mariadb.host, mariadb.port, max_lifetime=0.2).start()
    try:
        deadline = time.monotonic() + 5
        while p.running:
            assert time.monotonic() < deadline, "the proxy did not stop itself"
            time.sleep(0.02)
        with pytest.raises(pymysql.err.OperationalError) as err:
            _connect(mariadb, p)
        assert err.value.args[0] == 2003
    finally:
        p.stop()


@pytest.mark.parametrize("seconds", [-1, 301])
def test_bad_delay_is_refused_and_changes_nothing(seconds: float) -> None:
    p = FaultProxy("127.0.0.1", 9)
    with pytest.raises(InvalidParameter, match="delay"):
        p.delay(seconds)
    assert p.mode == "pass"
