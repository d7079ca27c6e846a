"""The per-process memory of rejected passwords, and one login in flight per credential.

MySQL's FAILED_LOGIN_ATTEMPTS and MariaDB's max_password_errors lock an account after a few
failed logins, wherever they come from. So the limit is per process and per credential, not
per search: once a server rejected a (server, user, password), no search of this process sends
it again, with two exceptions where the rotation has changed the database since: once more as
CURRENT, after the store promoted it; and, when it was rejected only as PENDING (its rotation's
"set" step had not run), once more after a credential that had logged in was rejected (a
database change, likely that "set": a search that read CURRENT before one rotation ended and
PENDING after the next began sends the next password early, and it is the one that works
between that "set" and "end"); and at most ``RetryPolicy.concurrent_logins`` logins with one
credential are in flight at once (default 1), the others wait for a place. A password that was good can
stop working at any moment (the rotation's ALTER USER): only the logins in flight at that moment
fail, so the process costs the account at most that many failed logins. After a rejection the
waiting logins go on with other credentials without sending it.

Credentials are keyed by a keyed BLAKE2b digest (a random key per process): the memory holds no
password and no unsalted hash of one. It is bounded (least recently used entries go first) and
forgets a rejection after the policy's ``remember_rejected`` seconds, so that a password fixed
on the server side is tried again without a restart.
"""

from __future__ import annotations

import enum
import hashlib
import os
import threading
from collections.abc import Callable

from ..model import Stage

__all__ = ["GATE", "Admission", "Flight", "LoginGate", "Outcome"]


class Outcome(enum.Enum):
    """How a login in flight ended, as far as the logins waiting for it care."""

    OK = "ok"  # logged in: a waiting login takes the place
    REJECTED = "rejected"  # bad credentials: the waiting logins do not send them
    UNAVAILABLE = "unavailable"  # the account is locked or blocked: nobody should try
    UNKNOWN = "unknown"  # network, timeout, cancelled: a waiting login takes the place


# Enum members read through the class cost ~0.1 us each on Python 3.11: the hot path reads these.
_OK, _REJECTED = Outcome.OK, Outcome.REJECTED


class Flight:
    """The next end of a login with one credential, which waiting logins wait for."""

    __slots__ = ("_callbacks", "_event", "_lock", "errno", "outcome", "started")

    def __init__(self, lock: threading.Lock, started: float) -> None:
        self._lock = lock
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[], None]] | None = None
        self.outcome: Outcome | None = None
        self.errno: int | None = None
        self.started = started  # when the login was sent (on the searching clock)

    def wait(self, timeout: float) -> bool:
        """Block until the login ends (True) or ``timeout`` seconds pass (False)."""
        with self._lock:
            if self.outcome is not None:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def add_done_callback(self, callback: Callable[[], None]) -> bool:
        """Call ``callback()`` (from the thread that ends the login) when the login ends;
        False when it already has (the callback is not kept)."""
        with self._lock:
            if self.outcome is not None:
                return False
            if self._callbacks is None:
                self._callbacks = []
            self._callbacks.append(callback)
            return True


class Admission(enum.Enum):
    """What the gate says to a login about to be sent."""

    GO = "go"  # send it
    WAIT = "wait"  # the logins in flight with this credential are at the limit: wait
    SKIP = "skip"  # the server rejected this credential: do not send it


class _Entry:
    __slots__ = ("flight", "forget_at", "inflight", "rejected", "rejected_in", "sent_in", "started", "worked")

    def __init__(self) -> None:
        self.inflight = 0  # logins with this credential sent and not yet ended
        self.flight: Flight | None = None  # what the logins waiting for a free place wait on
        self.started = 0.0  # when the oldest login in flight was sent
        self.sent_in = 0  # the gate's changes when the oldest login in flight was sent
        self.rejected: frozenset[str] = frozenset()  # the stage roles it was rejected as
        self.rejected_in = 0  # the gate's changes when the rejected login was sent
        self.forget_at = 0.0
        self.worked = False  # logged in since its last rejection


class LoginGate:
    """Process-wide state shared by every search (see the module's documentation)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._key = os.urandom(32)
        self._lock = threading.Lock()
        self._entries: dict[bytes, _Entry] = {}  # insertion-ordered: the oldest go first
        # Database changes seen: credentials that had logged in and then were rejected.
        self._changes = 0

    def key(self, family: str, server: str | None, user: str, password: bytes | str) -> bytes:
        """The digest naming one credential on one server (computed once per credential version)."""
        if isinstance(password, str):
            password = password.encode("utf-8")
        digest = hashlib.blake2b(key=self._key, digest_size=16)
        for part in (family.encode(), (server or "").encode(), user.encode("utf-8"), password):
            digest.update(len(part).to_bytes(4, "big"))
            digest.update(part)
        return digest.digest()

    def admit(self, key: bytes, role: str, now: float, limit: int = 1) -> tuple[Admission, Flight | None]:
        """May a login with credential ``key``, found as stage ``role``, be sent now?

        ``(GO, None)``: send it, then :meth:`settle` it. ``(WAIT, flight)``: ``limit`` logins
        with this credential are in flight: wait for ``flight`` (the next of them to end), then,
        unless it was rejected, ask again. ``(SKIP, None)``: rejected already, do not send it.
        """
        # acquire/release rather than ``with``: half the cost on Python 3.11, and every login
        # passes here twice (admit, settle).
        lock = self._lock
        lock.acquire()
        try:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                if len(self._entries) > self._capacity:
                    self._evict()
            elif entry.rejected:
                if now >= entry.forget_at:
                    entry.rejected = frozenset()
                # Sent once more only after the store promoted it to CURRENT, or (rejected as
                # PENDING only) after the database changed since it was sent.
                elif not ((role == Stage.CURRENT and Stage.CURRENT not in entry.rejected)
                          or (entry.rejected == _PENDING_ONLY and entry.rejected_in < self._changes)):
                    return _SKIP
            if entry.inflight < limit:
                if not entry.inflight:
                    entry.started = now
                    entry.sent_in = self._changes
                entry.inflight += 1
                return _GO
            if entry.flight is None:
                entry.flight = Flight(lock, entry.started)
            return Admission.WAIT, entry.flight
        finally:
            lock.release()

    def settle(self, key: bytes, outcome: Outcome, role: str, now: float, remember: float,
               errno: int | None = None) -> None:
        """End a login that :meth:`admit` let go: record a rejection (for ``remember`` seconds)
        and wake the logins waiting for a place."""
        lock = self._lock
        lock.acquire()
        try:
            entry = self._entries.get(key)
            if entry is None:
                return
            if entry.inflight:
                entry.inflight -= 1
            if outcome is _REJECTED:
                if entry.worked:  # it logged in before: the database changed since
                    entry.worked = False
                    self._changes += 1
                    entry.rejected_in = self._changes
                else:
                    entry.rejected_in = entry.sent_in
                entry.rejected = entry.rejected | {role}
                entry.forget_at = now + remember
            elif outcome is _OK:
                entry.worked = True
                if entry.rejected:
                    entry.rejected = frozenset()
            flight, entry.flight = entry.flight, None
            if flight is None:
                return
            flight.outcome, flight.errno = outcome, errno
            event, callbacks = flight._event, flight._callbacks
            flight._callbacks = None
        finally:
            lock.release()
        if event is not None:
            event.set()
        for callback in callbacks or ():
            callback()

    def forget(self) -> None:
        """Drop every remembered rejection (logins in flight are kept)."""
        with self._lock:
            for entry in self._entries.values():
                entry.rejected = frozenset()

    def _evict(self) -> None:
        for key, entry in self._entries.items():  # oldest first; never one with a login in flight
            if not entry.inflight and entry.flight is None:
                del self._entries[key]
                return

    def _after_fork(self) -> None:
        # The child has only the forking thread: logins in flight belong to threads it lacks.
        self._lock = threading.Lock()
        for entry in self._entries.values():
            entry.inflight, entry.flight = 0, None


_GO = (Admission.GO, None)
_SKIP = (Admission.SKIP, None)
_PENDING_ONLY = frozenset({Stage.PENDING})

#: The gate of this process.
GATE = LoginGate()
os.register_at_fork(after_in_child=GATE._after_fork)
