"""The PostgreSQL family on psycopg 3 (``postgres`` extra), beside :mod:`secretclient.db._mysql`.

Login arguments from a secret's credentials (psycopg/libpq keywords: ``host``, ``port``,
``dbname``, ``user``, ``password``), TLS (``SSL: true`` means ``sslmode=verify-full`` against
``sslrootcert`` — the caller's CA file, or the system CAs — never a weaker mode), the login
bound (libpq's ``connect_timeout``, whole seconds, at least 2), the session tag in
``application_name`` (when it fits PostgreSQL's 63 bytes), and what a failure means.

psycopg gives no SQLSTATE for a failed connection (``e.sqlstate`` is None: libpq reports the
server's refusal as text), so :func:`classify_postgres` reads libpq's message, and the SQLSTATE
where one exists (errors raised by an open session).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping
from typing import Any

from ..model import DbCredentials
from .classify import Classification, ErrorKind
from .errors import ClientMisconfigured
from .tags import with_tag

__all__ = ["POSTGRES", "PostgresFamily", "classify_postgres"]

_APPLICATION_NAME_BYTES = 63  # longer names are cut by the server (NAMEDATALEN - 1)
_WEAK_SSLMODES = frozenset(("disable", "allow", "prefer", "require"))

_SQLSTATE_KINDS = {
    "28P01": ErrorKind.BAD_CREDENTIALS,  # invalid_password
    "28000": ErrorKind.BAD_CREDENTIALS,  # invalid_authorization_specification
    "53300": ErrorKind.SERVER_BUSY,  # too_many_connections
    "57P03": ErrorKind.NETWORK,  # cannot_connect_now (starting up, shutting down)
    "57P01": ErrorKind.NETWORK,  # admin_shutdown
    "08006": ErrorKind.NETWORK,  # connection_failure
    "08001": ErrorKind.NETWORK,  # sqlclient_unable_to_establish_sqlconnection
    "3D000": ErrorKind.ACCESS,  # invalid_catalog_name: no such database
    "42501": ErrorKind.ACCESS,  # insufficient_privilege (CONNECT on the database)
}
# libpq's messages, most specific first (matched in lower case).
_MESSAGE_KINDS = (
    ("password authentication failed", ErrorKind.BAD_CREDENTIALS),
    ("no password supplied", ErrorKind.BAD_CREDENTIALS),
    ("is not permitted to log in", ErrorKind.ACCOUNT_UNAVAILABLE),  # NOLOGIN
    ("too many connections", ErrorKind.SERVER_BUSY),
    ("remaining connection slots are reserved", ErrorKind.SERVER_BUSY),
    ("no pg_hba.conf entry", ErrorKind.CLIENT_CONFIG),  # e.g. hostssl only, and we came in clear
    ("pg_hba.conf rejects connection", ErrorKind.CLIENT_CONFIG),
    ("certificate verify failed", ErrorKind.CLIENT_CONFIG),
    ("server does not support ssl", ErrorKind.CLIENT_CONFIG),
    ("root certificate file", ErrorKind.CLIENT_CONFIG),
    ("server certificate for", ErrorKind.CLIENT_CONFIG),  # ... does not match host name
    ("ssl error", ErrorKind.CLIENT_CONFIG),
    ("could not translate host name", ErrorKind.CLIENT_CONFIG),
    ("permission denied for database", ErrorKind.ACCESS),
    ("the database system is starting up", ErrorKind.NETWORK),
    ("the database system is shutting down", ErrorKind.NETWORK),
    ("the database system is in recovery mode", ErrorKind.NETWORK),
    ("connection refused", ErrorKind.NETWORK),
    ("timeout expired", ErrorKind.NETWORK),
    ("server closed the connection unexpectedly", ErrorKind.NETWORK),
    ("could not connect", ErrorKind.NETWORK),
    ("connection to server", ErrorKind.NETWORK),
)


def _is_psycopg_error(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the environment
        return False
    return isinstance(exc, psycopg.Error)


def _kind_of_message(text: str) -> ErrorKind | None:
    if "does not exist" in text:
        if "database" in text:
            return ErrorKind.ACCESS  # 'database "x" does not exist'
        if "role" in text:
            return ErrorKind.BAD_CREDENTIALS  # only with trust/peer auth; else a password failure
    for needle, kind in _MESSAGE_KINDS:
        if needle in text:
            return kind
    return None


def classify_postgres(exc: BaseException) -> Classification:
    """What a failed PostgreSQL login (or connection) means: by SQLSTATE where psycopg has one,
    else by libpq's message. ``errno`` is None; ``sqlstate`` is the code when there is one."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:  # SQLAlchemy's .orig and the exception chain
        cur = todo.pop(0)
        if any(cur is s for s in seen):
            continue
        seen.append(cur)
        for attr in ("orig", "__cause__", "__context__"):
            nxt = getattr(cur, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    for cur in seen:
        if isinstance(cur, (ssl.SSLCertVerificationError, ssl.CertificateError)):
            return Classification(ErrorKind.CLIENT_CONFIG)
    for cur in seen:
        if not _is_psycopg_error(cur):
            continue
        sqlstate = getattr(cur, "sqlstate", None)
        if sqlstate in _SQLSTATE_KINDS:
            return Classification(_SQLSTATE_KINDS[sqlstate], None, sqlstate)
        kind = _kind_of_message(str(cur).lower())
        if kind is not None:
            return Classification(kind, None, sqlstate)
        return Classification(ErrorKind.OTHER, None, sqlstate)
    for cur in seen:
        if isinstance(cur, (ConnectionError, TimeoutError)):
            return Classification(ErrorKind.NETWORK)
    return Classification(ErrorKind.OTHER)


class PostgresFamily:
    """PostgreSQL through psycopg 3."""

    name = "postgresql"
    default_port = 5432

    @property
    def default_login(self) -> Any:
        import psycopg

        return psycopg.connect

    def login_kwargs(self, creds: DbCredentials, kwargs: Mapping[str, Any], *, secret: str,
                     tag: bool = True) -> dict[str, Any]:
        """psycopg keyword arguments for ``creds`` on top of the caller's ``kwargs``."""
        kw = dict(kwargs)
        kw["user"] = creds.account_name
        kw["password"] = creds.account_password  # libpq sends it as UTF-8 (client_encoding)
        if "host" not in kw and "hostaddr" not in kw and creds.endpoint:
            kw["host"] = creds.endpoint
        if "port" not in kw:
            kw["port"] = creds.port_or(self.default_port)
        if "dbname" not in kw and creds.db_name:
            kw["dbname"] = creds.db_name
        if creds.ssl:
            self.require_tls(kw, secret=secret)
        elif creds.ssl is False and "sslmode" not in kw:
            kw["sslmode"] = "disable"
        if tag:
            name = with_tag(kw.get("application_name"), secret, creds.version_id, _APPLICATION_NAME_BYTES)
            if name is not None:
                kw["application_name"] = name
        return kw

    def require_tls(self, kw: dict[str, Any], *, secret: str) -> None:
        """``sslmode=verify-full`` (``verify-ca`` if the caller asked for it), with the caller's
        ``sslrootcert`` or the system CAs; a weaker ``sslmode`` is refused."""
        mode = kw.get("sslmode", "verify-full")
        if mode in _WEAK_SSLMODES:
            raise ClientMisconfigured(
                f"secret {secret!r} requires TLS (SSL: true) but sslmode={mode!r} was passed "
                f"(use verify-full, the default, or verify-ca)",
                errno=2026, secret=secret,
            )
        kw["sslmode"] = mode
        kw.setdefault("sslrootcert", "system")

    def login(self, kwargs: dict[str, Any], handshake: float | None) -> Any:
        return self.login_with(self.default_login, kwargs, handshake)

    @staticmethod
    def login_with(connect: Any, kwargs: dict[str, Any], handshake: float | None) -> Any:
        """Log in with ``connect`` (``psycopg.connect`` or a caller's): libpq bounds the whole
        connection with ``connect_timeout`` (whole seconds, at least 2)."""
        bounds = [t for t in (kwargs.get("connect_timeout"), handshake) if t is not None]
        if bounds:
            kwargs["connect_timeout"] = max(2, math.ceil(min(float(t) for t in bounds)))
        return connect(**kwargs)

    def classify(self, exc: BaseException) -> Classification:
        return classify_postgres(exc)

    def server(self, kwargs: Mapping[str, Any]) -> str | None:
        host = kwargs.get("host") or kwargs.get("hostaddr")
        return f"{host}:{kwargs.get('port', self.default_port)}" if host else None

    def session_cipher(self, conn: Any) -> str:
        row = conn.execute("SELECT cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        return str(row[0]) if row and row[0] else ""


#: The PostgreSQL family.
POSTGRES = PostgresFamily()
