"""The error classifier and the retry policy: real PyMySQL errors provoked against MariaDB,
plus the shapes PyMySQL and SQLAlchemy wrap them in."""

from __future__ import annotations

import dataclasses
import secrets
import socket
import ssl

import pymysql
import pytest
import sqlalchemy.exc

from secretclient import Backoff, InvalidParameter
from secretclient.db import ErrorKind, RetryPolicy, classify
from secretclient.model import Stage
from secretclient.testing import FaultProxy


def _error_of(fn) -> BaseException:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def _user(mariadb, prefix: str, **kw) -> tuple[str, str]:
    name, password = f"{prefix}_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    mariadb.create_user(name, password, **kw)
    return name, password


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wrong_password_is_bad_credentials(mariadb):
    user, _ = _user(mariadb, "cls")
    exc = _error_of(lambda: mariadb.connect(user, "not-the-password"))
    verdict = classify(exc)
    assert (verdict.kind, verdict.errno, verdict.sqlstate) == (ErrorKind.BAD_CREDENTIALS, 1045, "28000")
    assert verdict.kind.retryable


def test_unknown_user_is_bad_credentials(mariadb):
    exc = _error_of(lambda: mariadb.connect(f"nobody_{secrets.token_hex(3)}", "x"))
    assert classify(exc).kind is ErrorKind.BAD_CREDENTIALS


def test_max_user_connections_is_server_busy(mariadb):
    user, password = _user(mariadb, "busy")
    mariadb.execute("ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS 1", (user,))
    with mariadb.connect(user, password):
        exc = _error_of(lambda: mariadb.connect(user, password))
    verdict = classify(exc)
    assert (verdict.kind, verdict.errno) == (ErrorKind.SERVER_BUSY, 1226)


def test_locked_account_is_account_unavailable(mariadb):
    user, password = _user(mariadb, "locked")
    mariadb.execute("ALTER USER %s@'%%' ACCOUNT LOCK", (user,))
    verdict = classify(_error_of(lambda: mariadb.connect(user, password)))
    assert (verdict.kind, verdict.errno) == (ErrorKind.ACCOUNT_UNAVAILABLE, 4151)
    assert not verdict.kind.retryable


def test_expired_password_is_account_unavailable(mariadb):
    user, password = _user(mariadb, "expired")
    mariadb.execute("ALTER USER %s@'%%' PASSWORD EXPIRE", (user,))
    # MariaDB lets the login through in sandbox mode; the first statement fails with 1820.
    with mariadb.connect(user, password) as conn:
        exc = _error_of(lambda: conn.cursor().execute("SELECT 1"))
    assert (classify(exc).kind, classify(exc).errno) == (ErrorKind.ACCOUNT_UNAVAILABLE, 1820)


def test_refused_port_is_network():
    exc = _error_of(lambda: pymysql.connect(host="127.0.0.1", port=_closed_port(), user="u", password="p",
                                            connect_timeout=2))
    assert (classify(exc).kind, classify(exc).errno) == (ErrorKind.NETWORK, 2003)


def test_connection_lost_mid_session_is_network(mariadb):
    with FaultProxy(mariadb.host, mariadb.port) as proxy:
        conn = pymysql.connect(host=proxy.host, port=proxy.port, user=mariadb.admin_user,
                               password=mariadb.admin_password, connect_timeout=2, read_timeout=5)
        proxy.drop_connections()
        exc = _error_of(lambda: conn.cursor().execute("SELECT SLEEP(0)"))
        conn.close()
    verdict = classify(exc)
    assert verdict.kind is ErrorKind.NETWORK
    assert verdict.errno in (2006, 2013)


def test_reset_during_handshake_is_network(mariadb):
    with FaultProxy(mariadb.host, mariadb.port) as proxy:
        proxy.reset()
        exc = _error_of(lambda: pymysql.connect(host=proxy.host, port=proxy.port, user="u", password="p",
                                                connect_timeout=2, read_timeout=2))
    assert classify(exc).kind is ErrorKind.NETWORK


def test_untrusted_certificate_is_client_config_not_network(mariadb_tls, tmp_path):
    from secretclient.testing import make_certificates

    other_ca = make_certificates(tmp_path).ca_file  # a CA that did not sign the server's cert
    exc = _error_of(lambda: mariadb_tls.connect(ssl_ca=str(other_ca), ssl_verify_identity=True))
    # PyMySQL reports it as 2003 "can't connect"; the SSL error underneath decides.
    assert classify(exc).errno == 2003
    assert classify(exc).kind is ErrorKind.CLIENT_CONFIG


def test_unknown_database_is_access(mariadb):
    exc = _error_of(lambda: mariadb.connect(database=f"missing_{secrets.token_hex(3)}"))
    assert (classify(exc).kind, classify(exc).errno) == (ErrorKind.ACCESS, 1049)


def test_sqlalchemy_wrapping_and_exception_chains_are_unwrapped(mariadb):
    user, _ = _user(mariadb, "wrap")
    original = _error_of(lambda: mariadb.connect(user, "wrong"))
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, original)
    assert classify(wrapped).kind is ErrorKind.BAD_CREDENTIALS

    def chained():
        try:
            raise original
        except Exception as exc:
            raise RuntimeError("while connecting") from exc

    assert classify(_error_of(chained)).errno == 1045

    def implicit():
        try:
            raise original
        except pymysql.err.OperationalError:
            raise KeyError("oops")  # __context__ only

    assert classify(_error_of(implicit)).kind is ErrorKind.BAD_CREDENTIALS


@pytest.mark.parametrize(
    "exc, kind",
    [
        # PyMySQL raises some errors with a message only: args[0] is a str, not an errno.
        (pymysql.err.OperationalError("received unknown auth switch request"), ErrorKind.CLIENT_CONFIG),
        (pymysql.err.InterfaceError("Already closed"), ErrorKind.OTHER),
        (pymysql.err.OperationalError(), ErrorKind.OTHER),
        (RuntimeError("'cryptography' package is required for sha256_password or caching_sha2_password auth methods"),
         ErrorKind.CLIENT_CONFIG),
        (RuntimeError("'pynacl' package is required for ed25519_password auth method"), ErrorKind.CLIENT_CONFIG),
        (pymysql.err.OperationalError(4150, "User is blocked because of too many credential errors"),
         ErrorKind.ACCOUNT_UNAVAILABLE),
        (pymysql.err.OperationalError(3955, "Access denied ... blocked by password lock"), ErrorKind.ACCOUNT_UNAVAILABLE),
        (pymysql.err.OperationalError(1129, "Host is blocked"), ErrorKind.ACCOUNT_UNAVAILABLE),
        (pymysql.err.OperationalError(1040, "Too many connections"), ErrorKind.SERVER_BUSY),
        (pymysql.err.OperationalError(2026, "SSL is required but the server doesn't support it"),
         ErrorKind.CLIENT_CONFIG),
        (pymysql.err.OperationalError(9999, "new auth failure", ), ErrorKind.OTHER),
        (ConnectionResetError(104, "reset"), ErrorKind.NETWORK),
        (ValueError("port should be of type int"), ErrorKind.OTHER),
    ],
)
def test_error_shapes(exc, kind):
    assert classify(exc).kind is kind


def test_sqlstate_decides_for_unlisted_codes():
    assert classify(pymysql.err.OperationalError(1999, "x", sqlstate="28000")).kind is ErrorKind.BAD_CREDENTIALS
    assert classify(pymysql.err.OperationalError(1999, "x", sqlstate="08S01")).kind is ErrorKind.NETWORK


def test_bool_is_not_an_errno():
    assert classify(pymysql.err.OperationalError(True, "x")).errno is None


def test_ssl_error_wrapped_by_pymysql_is_client_config():
    inner = ssl.SSLCertVerificationError(1, "certificate verify failed")
    outer = pymysql.err.OperationalError(2003, "Can't connect")
    outer.original_exception = inner
    assert classify(outer).kind is ErrorKind.CLIENT_CONFIG


def test_policy_validates_and_is_frozen():
    policy = RetryPolicy()
    assert policy.stages == (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS)
    # A store's labels become roles; a custom label stays as given.
    assert RetryPolicy(stages=["AWSCURRENT", "ACSPending", "mine"]).stages == (Stage.CURRENT, Stage.PENDING, "mine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.total = 1  # type: ignore[misc]
    assert policy.replace(total=2.5).total == 2.5
    for bad in ({"total": 0}, {"max_attempts": 0}, {"rounds": 0}, {"stages": ()},
                {"stages": ("ACSPending", "ACSCurrent")}, {"stages": ("ACSCurrent", "ACSCurrent")},
                {"stages": ("ACSCurrent", "CURRENT")}, {"stages": "ACSCurrent"},
                {"backoff": 0.1}, {"total": True}, {"handshake_timeout": 0}, {"handshake_timeout": "30"}):
        with pytest.raises(InvalidParameter):
            RetryPolicy(**bad)
    assert RetryPolicy(stages=["ACSCurrent"]).stages == (Stage.CURRENT,)
    assert RetryPolicy.no_retry().max_attempts == 1
    assert isinstance(policy.backoff, Backoff)
