"""What a failed MySQL/MariaDB connection attempt means, and so what to do next.

:func:`classify` looks through SQLAlchemy's ``DBAPIError.orig`` and Python's exception chain
(``__cause__`` / ``__context__``) for a PyMySQL error, reads its errno and SQLSTATE (never
assuming ``args[0]`` is an int: PyMySQL raises some errors with only a message) and returns an
:class:`ErrorKind`. It never imports SQLAlchemy.
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass

__all__ = ["Classification", "ErrorKind", "classify"]


class ErrorKind(enum.Enum):
    """The classes of connection errors, each with its own reaction."""

    #: Wrong user or password (1045, 1698): refresh the secret and try other credentials.
    BAD_CREDENTIALS = "bad_credentials"
    #: Too many connections (1040, 1203, 1226): back off and retry, do not refresh.
    SERVER_BUSY = "server_busy"
    #: Locked, expired, blocked after too many failures (3118, 4151, 1862, 1820, 1129, 3955,
    #: 4150): another password will not help and retrying makes it worse; stop.
    ACCOUNT_UNAVAILABLE = "account_unavailable"
    #: Refused, lost, timed out, server restarting (2003, 2006, 2013, ...): retry per policy.
    NETWORK = "network"
    #: Our side is set up wrong: a missing auth plugin dependency (cryptography, PyNaCl), a TLS
    #: certificate that does not verify, TLS required but not offered, unknown host. Stop.
    CLIENT_CONFIG = "client_config"
    #: Logged in but refused the database (1044, 1049): grants or the secret's DBName. Stop.
    ACCESS = "access"
    #: Anything else: not retried.
    OTHER = "other"

    @property
    def retryable(self) -> bool:
        """Whether retrying (with the same or other credentials) may succeed."""
        return self in (ErrorKind.BAD_CREDENTIALS, ErrorKind.SERVER_BUSY, ErrorKind.NETWORK)


BAD_CREDENTIALS = frozenset({1045, 1698})
SERVER_BUSY = frozenset({1040, 1203, 1226})
ACCOUNT_UNAVAILABLE = frozenset({3118, 4151, 1862, 1820, 1129, 3955, 4150})
NETWORK = frozenset(
    {
        1053,  # server shutdown in progress
        1077,  # normal shutdown
        1152,  # aborted connection
        1158, 1159, 1160, 1161,  # network read/write errors and timeouts
        1927,  # MariaDB: connection was killed
        2002, 2003, 2004,  # can't connect (socket, TCP, create socket)
        2006, 2013, 2055,  # server gone away, lost connection
        2012,  # handshake error (often a reset mid-handshake)
        4031,  # MySQL 8: disconnected by the server because of inactivity
    }
)
CLIENT_CONFIG = frozenset({2005, 2026, 2059, 2061, 3159})
ACCESS = frozenset({1044, 1049})
_KIND_OF_ERRNO = {
    errno: kind
    for codes, kind in (
        (BAD_CREDENTIALS, ErrorKind.BAD_CREDENTIALS),
        (SERVER_BUSY, ErrorKind.SERVER_BUSY),
        (ACCOUNT_UNAVAILABLE, ErrorKind.ACCOUNT_UNAVAILABLE),
        (NETWORK, ErrorKind.NETWORK),
        (CLIENT_CONFIG, ErrorKind.CLIENT_CONFIG),
        (ACCESS, ErrorKind.ACCESS),
    )
    for errno in codes
}

# TLS errors that are the network's doing (a peer gone, a timeout), not a bad certificate.
_SSL_TRANSIENT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLWantReadError, ssl.SSLWantWriteError,
                  ssl.SSLSyscallError)
_MISSING_DEPENDENCY = ("'cryptography' package is required", "'pynacl' package is required")


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one exception: its kind, and the errno/SQLSTATE it was based on."""

    kind: ErrorKind
    errno: int | None = None
    sqlstate: str | None = None


def _errno_of(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0]
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (``.orig``, PyMySQL's ``.original_exception``) and its chain."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        cur = todo.pop(0)
        if any(cur is s for s in seen):
            continue
        seen.append(cur)
        for attr in ("orig", "original_exception", "__cause__", "__context__"):
            nxt = getattr(cur, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def _is_pymysql_error(exc: BaseException) -> bool:
    try:
        import pymysql
    except ImportError:  # pragma: no cover - pymysql is a dependency
        return False
    return isinstance(exc, pymysql.err.Error)


def classify(exc: BaseException) -> Classification:
    """Classify an exception raised while connecting (or by a connection)."""
    chain = _chain(exc)
    # A TLS failure inside PyMySQL's connect surfaces as 2003 "can't connect": look deeper first.
    for cur in chain:
        if isinstance(cur, (ssl.SSLCertVerificationError, ssl.CertificateError)):
            return Classification(ErrorKind.CLIENT_CONFIG, _first_errno(chain))
        if isinstance(cur, ssl.SSLError) and not isinstance(cur, _SSL_TRANSIENT):
            return Classification(ErrorKind.CLIENT_CONFIG, _first_errno(chain))
    for cur in chain:
        if isinstance(cur, RuntimeError) and any(m in str(cur) for m in _MISSING_DEPENDENCY):
            return Classification(ErrorKind.CLIENT_CONFIG)
    for cur in chain:
        if not _is_pymysql_error(cur):
            continue
        errno = _errno_of(cur)
        args = getattr(cur, "args", ())
        sqlstate = getattr(cur, "sqlstate", None)
        if errno is None:
            # Message-only PyMySQL errors come from the auth exchange ("received unknown auth
            # switch request"), or "Already closed" from a dead connection.
            text = str(args[0]) if args else ""
            if "auth" in text.lower():
                return Classification(ErrorKind.CLIENT_CONFIG, None, sqlstate)
            continue
        return Classification(_kind_of(errno, sqlstate), errno, sqlstate)
    for cur in chain:
        if isinstance(cur, (ConnectionError, TimeoutError)):
            return Classification(ErrorKind.NETWORK)
    return Classification(ErrorKind.OTHER, _first_errno(chain))


def _first_errno(chain: list[BaseException]) -> int | None:
    for cur in chain:
        if _is_pymysql_error(cur) and (n := _errno_of(cur)) is not None:
            return n
    return None


def _kind_of(errno: int, sqlstate: str | None) -> ErrorKind:
    kind = _KIND_OF_ERRNO.get(errno)
    if kind is not None:
        return kind
    # SQLSTATE 28000 is "invalid authorization specification" for codes we do not list.
    if sqlstate == "28000":
        return ErrorKind.BAD_CREDENTIALS
    if sqlstate == "08S01" or (sqlstate or "").startswith("08"):
        return ErrorKind.NETWORK
    return ErrorKind.OTHER
