"""The server's time as last stated in an HTTP ``Date`` header, carried forward by the monotonic clock.

Stores that talk HTTP feed every answer's ``Date`` to :meth:`ServerClock.observe`; their
``server_time()`` is :meth:`ServerClock.now`. ``Date`` has one-second resolution and is
truncated, so the time given lags the server's by at most about a second plus the answer's
travel: an age measured with it errs on the young side, which is the safe side for a grace
period.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["ServerClock"]


class ServerClock:
    """The last ``Date`` a server sent, plus the monotonic time elapsed since (thread-safe:
    one tuple is replaced at a time)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._seen: tuple[datetime, float] | None = None

    def observe(self, date: object) -> None:
        """Remember the server's time from a ``Date`` header value; anything unparsable is ignored
        (an answer without a usable date tells nothing about the server's clock)."""
        if not isinstance(date, str):
            return
        try:
            at = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return
        # RFC 9110 dates are GMT; a date given as "-0000" parses naive.
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        self._seen = (at, self._monotonic())

    def now(self) -> datetime | None:
        """The server's time now, or None before any answer carried a date."""
        seen = self._seen
        if seen is None:
            return None
        at, mono = seen
        return at + timedelta(seconds=max(self._monotonic() - mono, 0.0))
