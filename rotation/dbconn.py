"""Connections the rotation engine opens: bounded timeouts, explicit TLS, errors without secrets.

TLS follows the secret's ``SSL`` field: ``true`` requires TLS — verified against ``ca_file``
(or the system CAs) and checked on the session afterwards, because PyMySQL silently stays in
plain text when a server does not offer TLS; ``false`` disables it; absent leaves PyMySQL's
default (TLS when the server offers it, unverified). Never a silent fallback from TLS to plain.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pymysql

from secretclient.model import DbCredentials

from .errors import DatabaseError, InvalidRotationSetup, LoginFailed
from .sql import Statement

__all__ = ["AUTH_ERRORS", "ConnectOptions", "connect", "connect_first", "query", "run", "sees_database", "try_login"]

#: Server errors meaning "these credentials do not log in" (wrong password / unknown user,
#: no access to the database, account locked, password expired).
AUTH_ERRORS = frozenset({1045, 1044, 4151, 1862, 1820})


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How rotation connects: timeouts in seconds and TLS verification."""

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    ca_file: str | None = None
    verify_identity: bool = True


@lru_cache(maxsize=8)
def _context(ca_file: str | None, verify_identity: bool) -> ssl.SSLContext:
    # Building a context reads the CA bundle (tens of ms); contexts are immutable once made.
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = verify_identity
    return ctx


def _tls(creds: DbCredentials, opts: ConnectOptions) -> dict[str, Any]:
    if creds.ssl is None:
        return {}
    if not creds.ssl:
        return {"ssl_disabled": True}
    return {"ssl": _context(opts.ca_file, opts.verify_identity)}


def connect(creds: DbCredentials, opts: ConnectOptions, *, database: str | None = None, who: str = "account") -> pymysql.Connection:
    """Log in with ``creds``; :class:`LoginFailed` for refused credentials, :class:`DatabaseError` otherwise."""
    if not creds.endpoint:
        raise InvalidRotationSetup(f"{who} {creds.account_name!r}: the secret has no Endpoint")
    try:
        conn = pymysql.connect(
            host=creds.endpoint,
            port=creds.port,
            user=creds.account_name,
            password=creds.account_password,
            database=database,
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            write_timeout=opts.read_timeout,
            autocommit=True,
            **_tls(creds, opts),
        )
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        # Server messages for login errors name only the user and host; keep them.
        message = str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__
        cls = LoginFailed if code in AUTH_ERRORS else DatabaseError
        raise cls(f"{who} {creds.account_name!r} cannot log in: {message}", code=str(code)) from None
    if creds.ssl and not session_cipher(conn):
        conn.close()
        raise LoginFailed(f"{who} {creds.account_name!r}: the secret requires TLS but the server did not offer it")
    return conn


def connect_first(candidates: Iterable[DbCredentials], opts: ConnectOptions, *, who: str = "account") -> pymysql.Connection:
    """A connection with the first of ``candidates`` that logs in; else the last :class:`LoginFailed`."""
    last: LoginFailed | None = None
    for creds in candidates:
        try:
            return connect(creds, opts, who=who)
        except LoginFailed as exc:
            last = exc
    if last is None:
        raise InvalidRotationSetup(f"no credentials to log in as {who}")
    raise last


def sees_database(conn: pymysql.Connection, name: str) -> bool:
    """Whether the session's account can see database ``name`` (holds some privilege on it)."""
    rows = query(conn, Statement("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)))
    return bool(rows and rows[0][0])


def session_cipher(conn: pymysql.Connection) -> str:
    """The TLS cipher of the session, ``""`` for plain text."""
    rows = query(conn, Statement("SHOW SESSION STATUS LIKE 'Ssl_cipher'"))
    return str(rows[0][1]) if rows and rows[0][1] else ""


def try_login(creds: DbCredentials, opts: ConnectOptions, *, database: str | None = None) -> bool:
    """Whether ``creds`` log in (False only for refused credentials; other errors raise)."""
    try:
        connect(creds, opts, database=database).close()
    except LoginFailed:
        return False
    return True


def run(conn: pymysql.Connection, stmt: Statement) -> None:
    """Execute ``stmt``; a failure becomes :class:`DatabaseError` that never quotes a password."""
    query(conn, stmt)


def query(conn: pymysql.Connection, stmt: Statement) -> list[tuple[Any, ...]]:
    try:
        with conn.cursor() as cur:
            stmt.run(cur)
            return list(cur.fetchall())
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        # A server message may quote the statement, parameters included: drop it when they are secret.
        message = "message withheld: the statement carries a password" if stmt.secret else (
            str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__
        )
        head = stmt.redacted()[:160]
        raise DatabaseError(f"{head} failed: ({code}) {message}", code=str(code)) from None
