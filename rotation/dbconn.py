"""Connections the rotation engine opens: bounded timeouts, explicit TLS, errors without secrets.

Logging in goes through the MySQL family of :mod:`secretclient.db` (one login layer for both
packages): UTF-8 password bytes, TLS from the secret's ``SSL`` field — ``true`` requires TLS
verified against ``ca_file`` (or the system CAs), TLS or error 2026, never a plain-text fallback;
``false`` disables it; absent leaves PyMySQL's default (TLS when the server offers it,
unverified) — and :func:`~secretclient.db.classify` to tell refused credentials from the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pymysql

from secretclient.db import MYSQL, DbConnectError, ErrorKind, classify
from secretclient.model import DbCredentials

from .errors import DatabaseError, InvalidRotationSetup, LoginFailed
from .sql import Statement

__all__ = ["ConnectOptions", "connect", "connect_first", "query", "run", "sees_database", "session_cipher",
           "try_login"]

#: What makes :func:`connect` raise :class:`LoginFailed` (these credentials do not log in: wrong
#: password or user, account locked or expired) rather than :class:`DatabaseError`.
_REFUSED = (ErrorKind.BAD_CREDENTIALS, ErrorKind.ACCOUNT_UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How rotation connects: timeouts in seconds and TLS verification."""

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    ca_file: str | None = None
    verify_identity: bool = True


def connect(
    creds: DbCredentials, opts: ConnectOptions, *, database: str | None = None, who: str = "account",
    secret: str | None = None,
) -> pymysql.Connection:
    """Log in with ``creds``; :class:`LoginFailed` for refused credentials, :class:`DatabaseError` otherwise.

    ``secret``: the name of the secret ``creds`` come from, when known: the session is then
    tagged with it and the credentials' VersionId (:mod:`secretclient.db.tags`)."""
    if not creds.endpoint:
        raise InvalidRotationSetup(f"{who} {creds.account_name!r}: the secret has no Endpoint")
    options: dict[str, Any] = {
        "database": database,
        "connect_timeout": opts.connect_timeout,
        "read_timeout": opts.read_timeout,
        "write_timeout": opts.read_timeout,
        "autocommit": True,
    }
    if creds.ssl:
        options.update(ssl_ca=opts.ca_file, ssl_verify_identity=opts.verify_identity)
    try:
        kwargs = MYSQL.login_kwargs(creds, options, secret=secret or f"{who} {creds.account_name}",
                                    tag=secret is not None)
        return pymysql.connect(**kwargs)
    except DbConnectError as exc:  # the TLS options cannot be loaded
        raise InvalidRotationSetup(f"{who} {creds.account_name!r}: {exc.message}") from None
    except pymysql.MySQLError as exc:
        verdict = classify(exc)
        # Server messages for login errors name only the user and host; keep them.
        message = str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__
        cls = LoginFailed if verdict.kind in _REFUSED else DatabaseError
        raise cls(f"{who} {creds.account_name!r} cannot log in: {message}",
                  code=str(verdict.errno)) from None


def connect_first(
    candidates: Iterable[DbCredentials], opts: ConnectOptions, *, who: str = "account"
) -> pymysql.Connection:
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
    """The TLS cipher of the session as the server sees it, ``""`` for plain text."""
    try:
        return MYSQL.session_cipher(conn)
    except pymysql.MySQLError as exc:
        raise DatabaseError(f"SHOW SESSION STATUS failed: ({classify(exc).errno}) {type(exc).__name__}") from None


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
