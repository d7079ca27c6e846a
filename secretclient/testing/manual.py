"""A clock and an executor that move only when told: tests (ours and yours) drive a
:class:`~secretclient.client.SecretClient`'s TTLs and background refreshes deterministically,
without threads or sleeps::

    clock, executor = ManualClock(), ManualExecutor()
    client = SecretClient(store, clock=clock, wall_clock=clock.utc, executor=executor)
    clock.advance(3000)          # into the refresh-ahead window
    client.get("db")             # cached value; a refresh is queued
    executor.run_pending()       # the refresh runs here, now
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidParameter

__all__ = ["ManualClock", "ManualExecutor"]


class ManualClock:
    """Monotonic seconds (call it) and the matching UTC time (:meth:`utc`), both moved only by
    :meth:`advance`. Pass ``clock.utc`` to stores and ``wall_clock=`` so both agree."""

    def __init__(self, start: float = 1000.0, epoch: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self._now = float(start)
        self._epoch = epoch - timedelta(seconds=start)

    def __call__(self) -> float:
        """The current monotonic time, in seconds."""
        return self._now

    def utc(self) -> datetime:
        """The current UTC time (``epoch`` when the clock reads ``start``)."""
        return self._epoch + timedelta(seconds=self._now)

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds``; :class:`InvalidParameter` if negative."""
        if seconds < 0:
            raise InvalidParameter("ManualClock.advance() takes seconds >= 0: a monotonic clock does not go back")
        self._now += seconds


class ManualExecutor(Executor):
    """Queues submitted calls; :meth:`run_pending` runs them in the calling thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)``; it runs at the next :meth:`run_pending`."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: Future[Any] = Future()
            self._queue.append((future, fn, args, kwargs))
            return future

    @property
    def pending(self) -> int:
        """How many calls wait to be run."""
        with self._lock:
            return len(self._queue)

    def run_pending(self) -> int:
        """Run every queued call (including ones queued while running); return how many ran."""
        ran = 0
        while True:
            with self._lock:
                if not self._queue:
                    return ran
                future, fn, args, kwargs = self._queue.pop(0)
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # handed to the future, like ThreadPoolExecutor
                    future.set_exception(exc)
            ran += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls; with ``cancel_futures`` drop (cancel) the queued ones."""
        with self._lock:
            self._shutdown = True
            dropped, self._queue = (self._queue, []) if cancel_futures else ([], self._queue)
        for future, *_ in dropped:
            future.cancel()
