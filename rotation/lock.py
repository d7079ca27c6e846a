"""Locks so that one of many application instances rotates a secret at a time.

:class:`MySqlLock` uses ``GET_LOCK`` on a dedicated connection to the database being rotated
(the primary): the server frees the lock when that connection dies, so a crashed rotator
never leaves it behind. Each step re-checks that the lock is still held by that connection
(``IS_USED_LOCK`` = our ``CONNECTION_ID()``). The store's VersionId compare-and-set on
CURRENT is the second fence: a rotator that lost its lock cannot promote over another.

:class:`LocalLock` serialises rotators inside one process (tests, single-instance apps).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import pymysql

from .errors import LockLost, RotationError

__all__ = ["LocalLock", "Lock", "LockHandle", "MySqlLock", "lock_name"]

_SAFE_RE = re.compile(r"[A-Za-z0-9_./@+=-]+")


def lock_name(secret_name: str) -> str:
    """The lock name for a secret: readable when short, always unique, at most 64 characters."""
    name = f"rotation:{secret_name}"
    if len(name) <= 64 and _SAFE_RE.fullmatch(secret_name):
        return name
    digest = hashlib.sha256(secret_name.encode("utf-8")).hexdigest()[:32]
    prefix = "".join(c for c in secret_name if _SAFE_RE.fullmatch(c))[:22]
    return f"rotation:{prefix}:{digest}"


@runtime_checkable
class LockHandle(Protocol):
    """A held lock."""

    def check(self) -> None:
        """Raise :class:`~rotation.errors.LockLost` if the lock is no longer held."""

    def release(self) -> None:
        """Release the lock (safe to call twice)."""


@runtime_checkable
class Lock(Protocol):
    """Something that can lock a secret's rotation."""

    def acquire(self, secret_name: str, timeout: float = 0.0) -> LockHandle | None:
        """The held lock, or None if another holder has it after ``timeout`` seconds."""


class _MySqlHandle:
    def __init__(self, conn: pymysql.Connection, name: str, connection_id: int) -> None:
        self._conn, self.name, self.connection_id = conn, name, connection_id
        self._released = False

    def check(self) -> None:
        if self._released:
            raise LockLost(f"lock {self.name!r} was released")
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT IS_USED_LOCK(%s)", (self.name,))
                row = cur.fetchone()
        except pymysql.MySQLError:
            raise LockLost(f"the connection holding lock {self.name!r} is gone") from None
        if not row or row[0] != self.connection_id:
            raise LockLost(f"lock {self.name!r} is no longer held by connection {self.connection_id}")

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT RELEASE_LOCK(%s)", (self.name,))
        except pymysql.MySQLError:
            pass  # the connection is gone, and the server freed the lock with it
        finally:
            self._conn.close()


class MySqlLock:
    """``GET_LOCK`` on a dedicated connection made by ``connect(secret_name)``.

    The Rotator builds one from its strategy when no lock is given (the MasterSecret account,
    else the secret's own account, on the secret's Endpoint).

    :param wait_slice: the longest single ``GET_LOCK`` wait, in seconds; a longer ``timeout`` is
        waited in slices, so that the connection's read timeout never cuts a wait short. Keep it
        below the connection's read timeout.
    :param clock: monotonic seconds (the deadline of a sliced wait).
    """

    def __init__(self, connect: Callable[[str], pymysql.Connection], *, wait_slice: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not wait_slice > 0:
            raise RotationError("wait_slice must be positive")
        self._connect = connect
        self.wait_slice = wait_slice
        self._clock = clock

    def acquire(self, secret_name: str, timeout: float = 0.0) -> LockHandle | None:
        name = lock_name(secret_name)
        conn = self._connect(secret_name)
        deadline = self._clock() + max(float(timeout), 0.0)
        try:
            with conn.cursor() as cur:
                while True:
                    wait = min(self.wait_slice, max(deadline - self._clock(), 0.0))
                    cur.execute("SELECT GET_LOCK(%s, %s), CONNECTION_ID()", (name, wait))
                    row = cur.fetchone()
                    if row is None:  # cannot happen (a SELECT without FROM returns one row); typed as possible
                        raise pymysql.err.InterfaceError("GET_LOCK returned no row")
                    got, connection_id = row
                    if got == 1 or deadline - self._clock() <= 0:
                        break
        except pymysql.MySQLError as exc:
            conn.close()
            raise RotationError(f"cannot take lock {name!r}: ({exc.args[0] if exc.args else '?'})") from None
        if got != 1:
            conn.close()
            return None
        return _MySqlHandle(conn, name, int(connection_id))


class _LocalHandle:
    def __init__(self, lock: threading.Lock, name: str) -> None:
        self._lock, self.name, self._held = lock, name, True

    def check(self) -> None:
        if not self._held:
            raise LockLost(f"local lock for {self.name!r} was released")

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


class LocalLock:
    """In-process locks, one per secret name. Not shared between processes."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def acquire(self, secret_name: str, timeout: float = 0.0) -> LockHandle | None:
        with self._guard:
            lock = self._locks.setdefault(secret_name, threading.Lock())
        got = lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(blocking=False)
        return _LocalHandle(lock, secret_name) if got else None


