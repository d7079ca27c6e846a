"""PostgreSQL connections for rotation (psycopg 3) and the ``pg_advisory_lock`` rotation lock.

:func:`pg_connect` is the one place rotation logs in to PostgreSQL, through the PostgreSQL
family of :mod:`secretclient.db` (one login layer for both packages, as :mod:`rotation.dbconn`
is for MySQL): login arguments and TLS from the secret's ``SSL`` field — ``true`` means
``sslmode=verify-full`` against ``ca_file`` or the system CAs (``verify-ca`` when identity
checks are off and there is a ``ca_file``: libpq trusts the system CAs for verify-full only),
never a weaker mode; ``false`` means ``disable``; absent leaves libpq's
``prefer`` — the login bound, and the family's classifier to tell refused credentials from the
rest (psycopg gives no SQLSTATE for a failed login; the family reads libpq's message).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from secretclient.db import POSTGRES, DbConnectError, ErrorKind
from secretclient.model import DbCredentials

from ._pg_sql import PgStatement
from .dbconn import ConnectOptions
from .errors import DatabaseError, InvalidRotationSetup, LockLost, LoginFailed, RotationError
from .lock import LockHandle, lock_name

__all__ = ["PgAdvisoryLock", "pg_connect", "pg_connect_first", "pg_query", "pg_try_login"]

#: What makes :func:`pg_connect` raise :class:`LoginFailed` (these credentials do not log in:
#: wrong password or role, NOLOGIN) rather than :class:`DatabaseError`.
_REFUSED = (ErrorKind.BAD_CREDENTIALS, ErrorKind.ACCOUNT_UNAVAILABLE)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise InvalidRotationSetup(
            "PostgreSQL rotation needs psycopg 3: pip install 'secretclient-rotation[postgres]'"
        ) from None
    return psycopg


def _message(exc: BaseException) -> str:
    # libpq repeats "connection to server at … failed:" per address tried; keep the last line.
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def pg_connect(creds: DbCredentials, opts: ConnectOptions, *, database: str | None = None,
               who: str = "account") -> Any:
    """Log in with ``creds`` (autocommit); :class:`LoginFailed` for refused credentials,
    :class:`DatabaseError` otherwise. ``database`` defaults to the secret's DBName, else ``postgres``."""
    if not creds.endpoint:
        raise InvalidRotationSetup(f"{who} {creds.account_name!r}: the secret has no Endpoint")
    psycopg = _psycopg()
    options: dict[str, Any] = {
        "dbname": database or creds.db_name or "postgres",
        "connect_timeout": opts.connect_timeout,
        # A statement that waits longer than read_timeout (a lock, a dead peer's lock) fails.
        "options": f"-c statement_timeout={int(opts.read_timeout * 1000)}",
        "autocommit": True,
    }
    if creds.ssl and opts.ca_file:
        options.update(sslmode="verify-full" if opts.verify_identity else "verify-ca", sslrootcert=opts.ca_file)
    # Without ca_file: the system CAs, with which libpq allows verify-full only (the family's default).
    try:
        kwargs = POSTGRES.login_kwargs(creds, options, secret=f"{who} {creds.account_name}", tag=False)
        return POSTGRES.login(kwargs, None)
    except DbConnectError as exc:  # TLS asked for in a weaker mode
        raise InvalidRotationSetup(f"{who} {creds.account_name!r}: {exc.message}") from None
    except psycopg.Error as exc:
        verdict = POSTGRES.classify(exc)
        cls = LoginFailed if verdict.kind in _REFUSED else DatabaseError
        # libpq's messages name the user, host and database, never the password.
        raise cls(f"{who} {creds.account_name!r} cannot log in: {_message(exc)}",
                  code=verdict.sqlstate) from None


def pg_connect_first(candidates: Iterable[DbCredentials], opts: ConnectOptions, *, database: str | None = None,
                     who: str = "account") -> Any:
    """A connection with the first of ``candidates`` that logs in; else the last :class:`LoginFailed`."""
    last: LoginFailed | None = None
    for creds in candidates:
        try:
            return pg_connect(creds, opts, database=database, who=who)
        except LoginFailed as exc:
            last = exc
    if last is None:
        raise InvalidRotationSetup(f"no credentials to log in as {who}")
    raise last


def pg_try_login(creds: DbCredentials, opts: ConnectOptions) -> bool:
    """Whether ``creds`` log in to their database (False only for refused credentials)."""
    try:
        pg_connect(creds, opts).close()
    except LoginFailed:
        return False
    return True


def pg_query(conn: Any, stmt: PgStatement | str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run a statement; a failure becomes :class:`DatabaseError` that never quotes a secret."""
    psycopg = _psycopg()
    secret = isinstance(stmt, PgStatement) and stmt.secret
    try:
        cur = conn.execute(stmt.composed() if isinstance(stmt, PgStatement) else stmt, params)
        return list(cur.fetchall()) if cur.description is not None else []
    except psycopg.Error as exc:
        message = "message withheld: the statement carries a password" if secret else _message(exc)
        head = (stmt.redacted() if isinstance(stmt, PgStatement) else stmt)[:160]
        raise DatabaseError(f"{head} failed: ({exc.sqlstate}) {message}", code=str(exc.sqlstate)) from None


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class _PgHandle:
    def __init__(self, conn: Any, name: str, key: int) -> None:
        self._conn, self.name, self._key = conn, name, key
        self._released = False

    def check(self) -> None:
        if self._released:
            raise LockLost(f"lock {self.name!r} was released")
        psycopg = _psycopg()
        unsigned = self._key & 0xFFFFFFFFFFFFFFFF
        try:
            # A bigint key shows in pg_locks as classid (high half), objid (low half), objsubid 1.
            row = self._conn.execute(
                "SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND objsubid = 1 AND classid = %s::oid AND objid = %s::oid",
                (unsigned >> 32, unsigned & 0xFFFFFFFF),
            ).fetchone()
        except psycopg.Error:
            raise LockLost(f"the connection holding lock {self.name!r} is gone") from None
        if not row or row[0] != 1:
            raise LockLost(f"lock {self.name!r} is no longer held by this rotator's connection")

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except _psycopg().Error:
            pass  # the connection is gone, and the server freed the lock with it
        finally:
            self._conn.close()


class PgAdvisoryLock:
    """``pg_advisory_lock`` on a dedicated connection made by ``connect(secret_name)``, to the
    rotated database: the server frees it when that connection dies, and each step re-checks
    in ``pg_locks`` that this connection still holds it."""

    def __init__(self, connect: Callable[[str], Any], *, poll: float = 0.05) -> None:
        self._connect = connect
        self._poll = poll

    def acquire(self, secret_name: str, timeout: float = 0.0) -> LockHandle | None:
        name = lock_name(secret_name)
        key = _lock_key(name)
        conn = self._connect(secret_name)
        psycopg = _psycopg()
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            while True:
                # try + poll, not a blocking pg_advisory_lock: the wait stays bounded by ``timeout``.
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if row and row[0]:
                    return _PgHandle(conn, name, key)
                if time.monotonic() >= deadline:
                    conn.close()
                    return None
                time.sleep(self._poll)
        except psycopg.Error as exc:
            conn.close()
            raise RotationError(f"cannot take lock {name!r}: ({exc.sqlstate}) {_message(exc)}") from None
