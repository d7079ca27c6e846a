"""Errors of rotation-aware connections.

Each is a PyMySQL (so DB-API) ``OperationalError`` as well as a :class:`SecretClientError`, so
``except pymysql.err.OperationalError`` keeps working and SQLAlchemy wraps them like any driver
error. ``args`` is ``(errno, message)`` like PyMySQL's own errors. Messages name the secret, its
versions, stages and user names; never a password.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pymysql

from ..errors import SecretClientError
from .classify import ErrorKind

__all__ = [
    "AccountUnavailable",
    "Attempt",
    "ClientMisconfigured",
    "CredentialsRejected",
    "DatabaseAccessDenied",
    "DatabaseUnreachable",
    "DbConnectError",
    "SecretUnavailable",
    "ServerBusy",
    "SessionAttributesUnavailable",
]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One login sent: which version and stage, as which user, and how it ended."""

    version_id: str | None
    stage: str
    user: str
    kind: ErrorKind | None = None  # None: it succeeded
    errno: int | None = None
    server: str | None = None  # "host:port" (or the socket path) the login went to
    cause: str | None = None  # for network errors: "connection refused", "timed out", ...

    def describe(self) -> str:
        outcome = "ok" if self.kind is None else f"{self.kind.value}" + (f" {self.errno}" if self.errno else "")
        if self.cause:
            outcome += f" ({self.cause})"
        where = f" at {self.server}" if self.server else ""
        return f"version {self.version_id!r} ({self.stage}, user {self.user!r}{where}): {outcome}"


def describe_attempts(attempts: Sequence[Attempt]) -> list[str]:
    """One line per run of identical attempts, with a count: a retried login is said once."""
    lines: list[str] = []
    previous, count = "", 0
    for text in (a.describe() for a in attempts):
        if text == previous:
            count += 1
            continue
        if count:
            lines.append(previous if count == 1 else f"{previous}, {count} times")
        previous, count = text, 1
    if count:
        lines.append(previous if count == 1 else f"{previous}, {count} times")
    return lines


# What a network failure's text says, for DatabaseUnreachable's message (never secret: the
# driver's text names only the host and the operating system's reason).
_CAUSES = (
    (re.compile(r"refused", re.IGNORECASE), "connection refused"),
    (re.compile(r"timed? ?out", re.IGNORECASE), "timed out"),
    (re.compile(r"name or service not known|nodename nor servname|name resolution|getaddrinfo",
                re.IGNORECASE), "the host name does not resolve"),
    (re.compile(r"reset by peer", re.IGNORECASE), "connection reset"),
    (re.compile(r"lost connection", re.IGNORECASE), "connection lost"),
    (re.compile(r"unreachable", re.IGNORECASE), "network unreachable"),
)


def network_cause(exc: BaseException) -> str | None:
    """A short, fixed description of why a connection failed, or None when it is not known."""
    texts = [str(exc)]
    original = getattr(exc, "original_exception", None) or exc.__cause__ or exc.__context__
    if original is not None:
        texts.insert(0, str(original))
    for text in texts:
        for pattern, cause in _CAUSES:
            if pattern.search(text):
                return cause
    return None


class DbConnectError(pymysql.err.OperationalError, SecretClientError):
    """A rotation-aware connect gave up. ``attempts`` lists every login sent."""

    def __init__(
        self,
        message: str,
        *,
        errno: int = 2003,
        secret: str | None = None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        SecretClientError.__init__(self, message, code=str(errno))
        # DB-API code (SQLAlchemy's dialects included) reads the errno from args[0].
        self.args = (errno, message)
        self.errno = errno
        self.secret = secret
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message


class CredentialsRejected(DbConnectError):
    """Every credential the secret's stages offered was rejected (1045/1698).

    The secret does not match the database: check the secret's user and password (no rotation
    in progress would have been found by the search).
    """


class AccountUnavailable(DbConnectError):
    """The account is locked, its password expired, or the host/user is blocked after too many
    failed logins (4151, 3118, 1862, 1820, 1129, 3955, 4150). Retrying would not help: an
    administrator must unlock it (``ALTER USER ... ACCOUNT UNLOCK``, ``FLUSH HOSTS``...)."""


class ServerBusy(DbConnectError):
    """The server kept refusing for too many connections (1040, 1203, 1226) within the budget."""


class DatabaseUnreachable(DbConnectError):
    """Network errors (2003, 2013, ...) on every attempt within the budget."""


class ClientMisconfigured(DbConnectError):
    """Our side is set up wrong: a missing auth dependency (``cryptography``, ``PyNaCl``), a TLS
    certificate that does not verify, TLS required but refused or disabled, unknown host."""


class DatabaseAccessDenied(DbConnectError):
    """Logged in, but the account may not use the database (1044) or it does not exist (1049)."""


class SecretUnavailable(DbConnectError):
    """The secret's credentials could not be read from the store (its typed error is the
    ``__cause__``), so no login was tried."""


class SessionAttributesUnavailable(SecretClientError):
    """The server keeps no connection attributes (its performance schema is off), so the
    secret version of its sessions cannot be read (:func:`secretclient.db.tags.tagged_sessions`)."""


_MISCONFIGURED = (ClientMisconfigured, "the client is misconfigured (TLS verification, TLS required, or a missing auth "
                  "dependency such as cryptography or PyNaCl)")
_GAVE_UP: dict[ErrorKind | None, tuple[type[DbConnectError], str]] = {
    None: (CredentialsRejected, "the database rejected every credential the secret's stages offered; "
                                "the secret's user or password does not match the database"),
    ErrorKind.ACCOUNT_UNAVAILABLE: (AccountUnavailable,
                                    "the account is locked, expired or blocked; an administrator must unlock it"),
    ErrorKind.SERVER_BUSY: (ServerBusy, "the server refused for too many connections"),
    ErrorKind.NETWORK: (DatabaseUnreachable, "the database could not be reached"),
    ErrorKind.ACCESS: (DatabaseAccessDenied,
                       "logged in but the account may not use the database (grants or DBName)"),
}
_GAVE_UP[ErrorKind.BAD_CREDENTIALS] = _GAVE_UP[None]


def gave_up(kind: ErrorKind | None) -> tuple[type[DbConnectError], str]:
    """The error a connect raises when it gives up after a failure of ``kind`` (None: nothing
    was sent), and the sentence its message starts with."""
    return _GAVE_UP.get(kind, _MISCONFIGURED)
