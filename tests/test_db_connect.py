"""Rotation-aware PyMySQL connections against a real MariaDB.

Rotations are done here by direct SQL (ALTER USER) plus store updates, the way the rotation
engine's set/end steps do it, but independent of that engine.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from typing import Any

import pymysql
import pytest
from db_support import Account

from secretclient import InvalidParameter, SecretNotFound, StoreUnavailable
from secretclient.db import (
    AccountUnavailable,
    ClientMisconfigured,
    Connector,
    CredentialsRejected,
    DatabaseUnreachable,
    ErrorKind,
    RetryPolicy,
    SecretUnavailable,
    connect,
)
from secretclient.model import CURRENT, PENDING, PREVIOUS
from secretclient.testing import FaultProxy


def _query(conn, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()


def test_connect_uses_the_secret_and_keeps_caller_kwargs(account):
    conn = connect(account.secret, client=account.client, autocommit=True, init_command="SET @marker = 42")
    with conn:
        user, database, marker = _query(conn, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1), DATABASE(), @marker")
        assert (user, database, marker) == (account.user, account.database, 42)
        assert conn.get_autocommit() is True
        assert conn.credential_version == "v1"
        assert isinstance(conn, pymysql.connections.Connection)  # the proxy is transparent
    assert account.failed_logins() == 0


def test_user_and_password_come_only_from_the_secret(account):
    for bad in ({"password": "x"}, {"user": "root"}, {"passwd": "x"}):
        with pytest.raises(InvalidParameter, match="come from the secret"):
            connect(account.secret, client=account.client, **bad)
    with pytest.raises(InvalidParameter):
        connect(account.secret)


def test_single_user_rotation_recovers_with_one_rejected_login(account):
    connector = Connector(account.secret, account.client)
    connector.connect()[0].close()
    new_version = account.rotate()
    conn, creds = connector.connect()
    conn.close()
    assert creds.version_id == new_version
    stats = connector.stats()
    assert (stats.connects, stats.rejected, stats.recovered, stats.store_reads) == (2, 1, 1, 1)
    assert account.failed_logins() == 1
    # The cache now holds the new version: the next connect is a plain login.
    connector.connect()[0].close()
    assert connector.stats().rejected == 1


def test_pending_is_used_between_set_and_end_and_remembered(account):
    connector = Connector(account.secret, account.client)
    connector.connect()[0].close()
    pending = account.rotate(promote=False)  # password changed, ACSCurrent not yet moved
    conn, creds = connector.connect()
    conn.close()
    assert creds.version_id == pending
    assert account.failed_logins() == 1
    # Later logins go straight to the credentials that worked, while ACSCurrent is stale.
    for _ in range(3):
        connector.connect()[0].close()
    assert account.failed_logins() == 1
    account.promote(pending)
    assert connector.connect()[1].version_id == pending


def test_previous_is_used_when_current_does_not_log_in(account):
    # Alternating users: ACSCurrent names the _rt account whose password is not set (yet);
    # ACSPrevious (the first account) still logs in.
    rt_user = account.user + "_rt"
    account.db.create_user(rt_user, "something-else", grants=(f"ALL ON {account.database}.*",))
    account.put(rt_user, account.new_password(), None)  # becomes ACSCurrent, v1 ACSPrevious
    conn, creds = Connector(account.secret, account.client).connect()
    with conn:
        assert _query(conn, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")[0] == account.user
    assert creds.version_id == "v1"
    assert account.db.failed_logins(rt_user) == 1


def test_secret_two_rotations_old_recovers_with_at_most_two_store_calls(account):
    connector = Connector(account.secret, account.client)
    connector.connect()[0].close()  # the cache holds v1
    account.rotate()
    newest = account.rotate()  # the database is two rotations ahead of the cache
    before = account.store.total()
    conn, creds = connector.connect()
    conn.close()
    store_calls = account.store.total() - before
    print(f"store calls to recover from a secret two rotations old: {store_calls}")
    assert creds.version_id == newest
    assert store_calls <= 2
    assert account.failed_logins() == 1


def test_wrong_secret_fails_fast_with_few_failed_logins(account):
    # Nothing rotates: ACSCurrent and ACSPrevious both hold passwords the database never had.
    account.put(account.user, "wrong-" + secrets.token_hex(8), None)
    account.put(account.user, "wrong-" + secrets.token_hex(8), None)
    policy = RetryPolicy(total=3.0)
    started = time.monotonic()
    with pytest.raises(CredentialsRejected) as info:
        connect(account.secret, client=account.client, policy=policy)
    elapsed = time.monotonic() - started
    err = info.value
    assert isinstance(err, pymysql.err.OperationalError)
    assert err.args[0] == 1045
    assert elapsed < policy.total
    assert "v3" in str(err) and "v2" in str(err) and CURRENT in str(err) and PREVIOUS in str(err)
    assert [a.version_id for a in err.attempts] == ["v3", "v2"]
    # One failed login per distinct wrong password (the documented bound is 3).
    assert account.failed_logins() == 2


def test_a_rejected_password_is_never_sent_twice(account):
    same = "wrong-" + secrets.token_hex(8)
    account.put(account.user, same, None)
    account.put(account.user, same, None)  # ACSCurrent and ACSPrevious: same bad password
    with pytest.raises(CredentialsRejected) as info:
        connect(account.secret, client=account.client)
    assert len(info.value.attempts) == 1
    assert account.failed_logins() == 1


def test_pending_rejected_then_promoted_is_tried_once_more(account):
    """A search that meets ACSPending before the rotation's set step sends it again once it
    is promoted to ACSCurrent, and only then."""
    connector = Connector(account.secret, account.client, policy=RetryPolicy(backoff=account_backoff()))
    account.put(account.user, "wrong-" + secrets.token_hex(8), None)  # a bad ACSCurrent
    pending_pw = account.new_password()
    pending = account.put(account.user, pending_pw, [PENDING])
    sent: list[str] = []

    def login(**kw: Any):
        sent.append(kw["password"].decode())
        if len(sent) == 3:  # ACSPending was just rejected: the rotation's set and end steps run now
            account.set_password(account.user, pending_pw)
            account.promote(pending)
        return pymysql.connect(**kw)

    conn, creds = connector.connect({}, login)
    conn.close()
    assert creds.version_id == pending
    # bad ACSCurrent, ACSPending (rejected: not set yet), ACSPrevious (rejected: just changed),
    # then the pending password once more, now as ACSCurrent.
    assert sent[1:] == [pending_pw, account.passwords[0], pending_pw] and len(set(sent)) == 3
    assert account.failed_logins() == 3


def account_backoff():
    from secretclient import Backoff

    return Backoff(base=0.01, cap=0.05)


def test_locked_account_stops_at_once(account):
    account.db.execute("ALTER USER %s@'%%' ACCOUNT LOCK", (account.user,))
    with pytest.raises(AccountUnavailable) as info:
        connect(account.secret, client=account.client)
    assert [a.kind for a in info.value.attempts] == [ErrorKind.ACCOUNT_UNAVAILABLE]
    assert info.value.args[0] == 4151
    assert "unlock" in str(info.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_database_is_bounded(mariadb):
    acc = Account(mariadb, port=_closed_port())
    policy = RetryPolicy(total=0.5, max_attempts=50, backoff=account_backoff())
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable) as info:
        connect(acc.secret, client=acc.client, policy=policy)
    assert time.monotonic() - started < policy.total + 0.5
    assert len(info.value.attempts) > 1  # network errors are retried with the same credentials
    assert {a.errno for a in info.value.attempts} == {2003}
    assert f"127.0.0.1:{acc.port}" in str(info.value)  # says where it tried, so a wrong host is obvious


def test_silent_server_cannot_hang_the_login(account):
    with FaultProxy(account.db.host, account.db.port) as proxy:
        proxy.blackhole()
        policy = RetryPolicy(total=0.6, max_attempts=2)
        started = time.monotonic()
        with pytest.raises(DatabaseUnreachable):
            connect(account.secret, client=account.client, policy=policy, host=proxy.host, port=proxy.port)
        assert time.monotonic() - started < 3
        proxy.pass_through()
        conn = connect(account.secret, client=account.client, policy=policy, host=proxy.host, port=proxy.port)
        # The login's read timeout is not left on the session (the caller asked for none).
        assert conn._read_timeout is None
        assert _query(conn, "SELECT 1") == (1,) and conn._sock.gettimeout() is None
        conn.close()


def test_login_arguments_follow_the_policy_caller_and_rotation(account):
    """What reaches PyMySQL: the handshake bound unless the caller or the policy says otherwise,
    and the new password (not reused arguments) after a rotation."""
    sent: list[dict[str, Any]] = []

    def login(**kw: Any):
        sent.append(kw)
        return pymysql.connect(**kw)

    for policy, kwargs in ((RetryPolicy(total=5), {}), (RetryPolicy(handshake_timeout=None), {}),
                           (RetryPolicy(), {"read_timeout": 7})):
        connector = Connector(account.secret, account.client, policy=policy)
        conn, _ = connector.connect(kwargs, login)
        assert conn._read_timeout == kwargs.get("read_timeout")  # ours is taken off, theirs kept
        conn.close()
    assert 4.9 < sent[0]["read_timeout"] <= 5 and "read_timeout" not in sent[1] and sent[2]["read_timeout"] == 7
    connector.connect(kwargs, login)[0].close()
    account.rotate()
    connector.connect(kwargs, login)[0].close()
    # The cached version once more (rejected: the client has not seen the rotation), then the new one.
    assert sent[3]["password"] == sent[2]["password"] == sent[4]["password"] != sent[5]["password"]
    assert sent[5]["password"].decode() == account.passwords[-1] and len(sent) == 6


def test_store_errors_surface_typed(account):
    account.store.fail_with = StoreUnavailable("store down", code="ServiceUnavailable")
    with pytest.raises(SecretUnavailable) as info:
        connect(account.secret, client=account.client)
    assert isinstance(info.value.__cause__, StoreUnavailable)
    account.store.fail_with = None
    with pytest.raises(SecretNotFound):
        connect("db/no-such-secret", client=account.client)


@pytest.mark.filterwarnings("error::DeprecationWarning")  # never PyMySQL's deprecated reconnect
def test_ping_reconnect_logs_in_with_fresh_credentials(account):
    conn = connect(account.secret, client=account.client, autocommit=True)
    cursor = conn.cursor()
    first_id = conn.thread_id()
    new_version = account.rotate()
    account.db.execute(f"KILL CONNECTION {int(first_id)}")
    conn.ping(reconnect=True)
    assert conn.credential_version == new_version
    assert conn.thread_id() != first_id
    cursor.execute("SELECT 1")  # cursors made before the reconnect keep working
    assert cursor.fetchone() == (1,)
    conn.ping(reconnect=True)  # alive: no new login
    assert conn.credential_version == new_version
    conn.close()
    account.rotate()
    conn.connect()
    assert _query(conn, "SELECT 2") == (2,)
    # connect() on an open session closes it first and logs in again.
    second_id, third_version = conn.thread_id(), account.rotate()
    conn.connect()
    assert conn.credential_version == third_version and conn.thread_id() != second_id
    assert conn._read_timeout is None  # the login's handshake bound is not left on the session
    conn.close()


def test_tls_secret_means_verified_tls(mariadb_tls):
    acc = Account(mariadb_tls, ssl=True)
    with connect(acc.secret, client=acc.client, ssl_ca=str(mariadb_tls.ca_file)) as conn:
        cipher = _query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[1]
        assert cipher
    # SQLAlchemy hands URL TLS options over as an ``ssl`` dict: honoured the same way.
    conn, _ = Connector(acc.secret, acc.client).connect({"ssl": {"ca": str(mariadb_tls.ca_file)}})
    assert _query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[1]
    conn.close()
    # Without the private CA the certificate does not verify: an error, not an unverified
    # or plaintext session.
    with pytest.raises(ClientMisconfigured) as info:
        connect(acc.secret, client=acc.client)
    assert [a.kind for a in info.value.attempts] == [ErrorKind.CLIENT_CONFIG]
    with pytest.raises(ClientMisconfigured, match="ssl_disabled"):
        connect(acc.secret, client=acc.client, ssl_disabled=True)
    with pytest.raises(ClientMisconfigured, match="CA"):
        connect(acc.secret, client=acc.client, ssl_ca="/nonexistent/ca.pem")
    assert acc.failed_logins() == 0


def test_ssl_false_means_plaintext_and_absent_leaves_pymysql_default(mariadb_tls):
    no_tls = Account(mariadb_tls, ssl=False)
    with connect(no_tls.secret, client=no_tls.client) as conn:
        assert _query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[1] == ""
    # The caller's TLS options win over SSL: false.
    with connect(no_tls.secret, client=no_tls.client, ssl_ca=str(mariadb_tls.ca_file)) as conn:
        assert _query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[1]
    unspecified = Account(mariadb_tls, ssl=None)
    with connect(unspecified.secret, client=unspecified.client) as conn:  # PyMySQL's "preferred" TLS
        assert _query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[1]


def test_tls_secret_against_a_server_without_tls_fails(mariadb):
    acc = Account(mariadb, ssl=True)
    with pytest.raises(ClientMisconfigured) as info:
        connect(acc.secret, client=acc.client)
    assert info.value.args[0] == 2026


def test_no_secret_in_messages_or_logs(account, caplog):
    caplog.set_level(logging.DEBUG)
    connector = Connector(account.secret, account.client)
    connector.connect()[0].close()
    account.rotate()
    connector.connect()[0].close()
    account.set_password(account.user, account.new_password())  # changed behind the secret's back
    with pytest.raises(CredentialsRejected) as info:
        connector.connect()
    texts = [caplog.text, str(info.value), repr(info.value), repr(info.value.attempts), repr(connector),
             str(connector.stats())]
    assert "rejected" in caplog.text  # the failure was logged, without values
    for text in texts:
        for password in account.passwords:
            assert password not in text
