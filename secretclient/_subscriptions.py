"""Who wants to hear of a secret's new CURRENT version, and which version each last heard of."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .model import Secret

logger = logging.getLogger("secretclient.client")

Callback = Callable[[Secret], None]


class Subscriptions:
    """Callbacks by secret name. Thread-safe; callbacks are returned to be called by the
    caller outside any lock (:meth:`notify`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[str, tuple[Callback, ...]] = {}
        self._seen: dict[str, str] = {}  # the last CURRENT VersionId told (or known) per name

    def add(self, name: str, callback: Callback, current_version: str | None) -> Callable[[], None]:
        """Subscribe; ``current_version`` (the one cached now, if any) is not news. Returns
        the function that unsubscribes."""
        with self._lock:
            self._callbacks[name] = (*self._callbacks.get(name, ()), callback)
            if name not in self._seen and current_version is not None:
                self._seen[name] = current_version

        def unsubscribe() -> None:
            with self._lock:
                remaining = tuple(cb for cb in self._callbacks.get(name, ()) if cb is not callback)
                if remaining:
                    self._callbacks[name] = remaining
                else:
                    self._callbacks.pop(name, None)
                    self._seen.pop(name, None)

        return unsubscribe

    def due(self, secret: Secret) -> tuple[Callback, ...]:
        """The callbacks to call for this CURRENT version, if it is new to them (the first
        version seen after subscribing is not a change)."""
        with self._lock:
            callbacks = self._callbacks.get(secret.name)
            if not callbacks:
                return ()
            last = self._seen.get(secret.name)
            if last == secret.version_id:
                return ()
            self._seen[secret.name] = secret.version_id
            return callbacks if last is not None else ()

    @staticmethod
    def notify(callbacks: tuple[Callback, ...], secret: Secret) -> None:
        """Call each callback; one's exception is logged (its type only: an application's
        message may quote the value) and does not stop the others."""
        for callback in callbacks:
            try:
                callback(secret)
            except Exception as exc:
                logger.error(
                    "subscriber %s of secret %r raised %s",
                    getattr(callback, "__qualname__", type(callback).__name__), secret.name, type(exc).__name__,
                )

    def clear(self) -> None:
        with self._lock:
            self._callbacks.clear()
            self._seen.clear()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
