"""In-process scheduling: rotate secrets every ``interval`` (plus jitter) on a background thread.

"Last rotation" is read from the store — the CURRENT version's creation time — so a
restarted process neither rotates early nor skips a rotation, and many instances agree on
when a secret is due. Due times are compared with the store's time (:meth:`Rotator.store_now`),
the clock those creation times come from, so an instance whose clock is off neither rotates
early nor late. Instances racing for a due secret are serialised by the Rotator's lock,
and the due check is repeated under the lock, so exactly one of them rotates.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Self

from secretclient.backoff import Backoff
from secretclient.model import Stage

from ._next_rotation import record_next_rotation
from .engine import RotationResult, Rotator
from .errors import InvalidRotationSetup, RotationInProgress

__all__ = ["RotationWindow", "Scheduler"]

log = logging.getLogger("rotation")

_RETRY = Backoff(base=5.0, cap=600.0)


@dataclass(frozen=True, slots=True)
class RotationWindow:
    """A daily window (UTC times of day) in which rotations may start; ``start > end`` wraps midnight."""

    start: dtime
    end: dtime

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise InvalidRotationSetup("a rotation window needs start != end")

    def contains(self, when: datetime) -> bool:
        t = when.timetz().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_open(self, when: datetime) -> datetime:
        """``when`` if inside the window, else the next moment the window opens."""
        if self.contains(when):
            return when
        opening = when.replace(hour=self.start.hour, minute=self.start.minute, second=self.start.second,
                               microsecond=self.start.microsecond)
        return opening if opening > when else opening + timedelta(days=1)


class Scheduler:
    """Rotates ``secret_names`` with ``rotator`` every ``interval``.

    :param jitter: each rotation is due up to this much after ``interval``; the offset is derived
        from the secret and its current VersionId, so every instance computes the same due time.
    :param window: optional daily :class:`RotationWindow` in which rotations start.
    :param poll: the longest sleep between checks, in seconds (picks up rotations done elsewhere).
    :param retry: backoff after a failed rotation (full jitter), per secret.
    """

    def __init__(
        self,
        rotator: Rotator,
        secret_names: str | Iterable[str],
        *,
        interval: timedelta,
        jitter: timedelta = timedelta(0),
        window: RotationWindow | None = None,
        poll: float = 60.0,
        retry: Backoff = _RETRY,
    ) -> None:
        if interval <= timedelta(0) or jitter < timedelta(0) or poll <= 0:
            raise InvalidRotationSetup("interval and poll must be positive and jitter not negative")
        self.rotator = rotator
        self.secret_names = [secret_names] if isinstance(secret_names, str) else list(secret_names)
        self.interval, self.jitter, self.window, self.poll, self.retry = interval, jitter, window, poll, retry
        # Per secret: failed attempts in a row, and the time before which it is not tried again.
        self._failures: dict[str, tuple[int, datetime]] = {}
        self._stop = threading.Event()
        self._run_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._passes = 0
        self._passed = threading.Condition()

    def __repr__(self) -> str:
        return f"Scheduler({self.secret_names!r}, interval={self.interval})"

    def due_at(self, secret_name: str) -> datetime:
        """When ``secret_name`` is due next (the store's CURRENT creation time + interval + jitter),
        in the store's time."""
        current = self.rotator.store.get_secret(secret_name, stage=Stage.CURRENT)
        last = current.created or self.rotator.store_now()
        seed = hashlib.sha256(f"{secret_name}\0{current.version_id}".encode()).digest()
        offset = self.jitter * (int.from_bytes(seed[:8], "big") / 2**64)
        due = last + self.interval + offset
        failure = self._failures.get(secret_name)
        if failure is not None:
            due = max(due, failure[1])
        return self.window.next_open(due) if self.window else due

    def run_pending(self) -> list[RotationResult]:
        """One pass: rotate every secret that is due now. Errors are logged, never raised."""
        results = []
        with self._run_lock:
            for name in self.secret_names:
                now = self.rotator.store_now()
                try:
                    due = self.due_at(name)
                    now = self.rotator.store_now()  # after that read, a store over HTTP knows its time
                    if now < due or (self.window and not self.window.contains(now)):
                        continue
                    result = self.rotator.rotate(name, due_after=self.interval)
                    results.append(result)
                    self._failures.pop(name, None)
                    if result.rotated:
                        self.record_due(name)
                except RotationInProgress:
                    # Another instance is on it and its result shows up in the store: look again
                    # after ``poll`` instead of polling the lock in a tight loop meanwhile.
                    attempts = self._failures.get(name, (0, now))[0]
                    self._failures[name] = (attempts, now + timedelta(seconds=self.poll))
                except Exception as exc:  # the thread must survive any failure
                    attempt = self._failures.get(name, (0, now))[0]
                    delay = timedelta(seconds=self.retry.delay(attempt))
                    self._failures[name] = (attempt + 1, self.rotator.store_now() + delay)
                    log.warning("scheduled rotation of %s failed (%s); retrying in %.0f s",
                                name, type(exc).__name__, delay.total_seconds())
        with self._passed:
            self._passes += 1
            self._passed.notify_all()
        return results

    def rotate_now(self, secret_name: str | None = None) -> RotationResult:
        """Rotate now, due or not (the only secret, or ``secret_name``), in the calling thread."""
        if secret_name is None:
            if len(self.secret_names) != 1:
                raise InvalidRotationSetup("this scheduler has several secrets: name the one to rotate")
            secret_name = self.secret_names[0]
        with self._run_lock:
            result = self.rotator.rotate(secret_name)
            self._failures.pop(secret_name, None)
            self.record_due(secret_name)
            return result

    def record_due(self, secret_name: str) -> bool:
        """Record :meth:`due_at` in the store where it keeps a next rotation time (clients
        refresh then); False if the store cannot or the write failed (logged, never raised)."""
        try:
            due = self.due_at(secret_name)
        except Exception:  # advisory: clients fall back to their TTL
            log.warning("cannot read the due time of %s", secret_name, exc_info=False)
            return False
        return record_next_rotation(self.rotator.store, secret_name, due)

    def start(self) -> Self:
        """Start the background thread (a daemon, so it never blocks interpreter exit)."""
        if self._thread is not None:
            raise InvalidRotationSetup("the scheduler is already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rotation-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread, letting a rotation in progress finish (up to ``timeout`` seconds)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def wait_for_pass(self, count: int = 1, timeout: float | None = None) -> bool:
        """Block until at least ``count`` passes have completed; False on timeout."""
        with self._passed:
            return self._passed.wait_for(lambda: self._passes >= count, timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        for name in self.secret_names:  # the schedule is set up: tell clients when it fires
            self.record_due(name)
        while not self._stop.is_set():
            self.run_pending()
            wait = self.poll
            for name in self.secret_names:
                try:
                    wait = min(wait, (self.due_at(name) - self.rotator.store_now()).total_seconds())
                except Exception:  # the store is down: try again after poll
                    log.warning("cannot read the due time of %s", name, exc_info=False)
            self._stop.wait(max(wait, 0.05))
