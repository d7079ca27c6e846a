"""Audit events of a rotation: a listener API and one log line per event.

Events carry secret names, VersionIds, steps, accounts and timings — never passwords or data.
Library code only logs to the ``rotation`` logger; configuring handlers is the application's job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = ["EventKind", "Events", "Listener", "RotationEvent", "SessionRows"]

log = logging.getLogger("rotation")

EventKind = Literal["started", "resumed", "step_done", "promoted", "failed", "skipped", "aborted", "sessions"]

#: Live sessions counted: (stage label, account, client host, count); a count of 0 with host ``""``
#: for an account without sessions.
SessionRows = tuple[tuple[str, str, str, int], ...]

#: Called with every event; exceptions it raises are logged and otherwise ignored.
Listener = Callable[["RotationEvent"], None]

_LEVELS = {"failed": logging.ERROR, "skipped": logging.INFO, "step_done": logging.DEBUG, "sessions": logging.DEBUG}


@dataclass(frozen=True, slots=True)
class RotationEvent:
    """One thing that happened to a secret's rotation.

    ``duration`` is in seconds (for ``step_done`` the step's, for ``promoted`` the whole
    rotation's). ``detail`` is a short human text (an error's class and message, a reason for
    skipping); it never holds secret values. ``sessions`` (kind ``sessions``: every account
    counted by :meth:`~rotation.Rotator.status`; kind ``failed`` by
    :class:`~rotation.errors.AccountInUse`: the account that was to be reset) are live database
    sessions per stage, account and client host.
    """

    kind: EventKind
    secret_name: str
    version_id: str | None = None
    step: str | None = None
    duration: float | None = None
    detail: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sessions: SessionRows = ()

    def log_line(self) -> str:
        parts = [f"rotation {self.kind}", f"secret={self.secret_name}"]
        if self.version_id:
            parts.append(f"version={self.version_id}")
        if self.step:
            parts.append(f"step={self.step}")
        if self.duration is not None:
            parts.append(f"duration_ms={self.duration * 1000:.1f}")
        if self.detail:
            parts.append(f"detail={self.detail!r}")
        for stage, account, host, count in self.sessions:
            parts.append(f"sessions[{stage},{account},{host or '-'}]={count}")
        return " ".join(parts)


class Events:
    """Delivers events to listeners and to the ``rotation`` logger."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)

    def add(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns a function that unregisters it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def emit(self, event: RotationEvent) -> None:
        log.log(_LEVELS.get(event.kind, logging.INFO), "%s", event.log_line())
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break a rotation half-way
                log.exception("rotation event listener %r failed", listener)
