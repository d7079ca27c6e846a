"""What a :class:`~secretclient.client.SecretClient` reports about itself.

Two ways to watch a client, neither of which ever carries a secret value:

- :meth:`SecretClient.stats` returns a :class:`ClientStats` snapshot (poll it, e.g. from a
  Prometheus collector at scrape time);
- an observer (``SecretClient(..., observer=...)``) receives a :class:`ClientEvent` for every
  slow-path event: misses, store calls, errors, refreshes, stale serves, version changes.
  Warm cache hits produce no event (they are counted in ``stats().hits``) so the hot path
  stays a dictionary lookup.

Prometheus, for example::

    class PromObserver:
        def __init__(self):
            self.events = Counter("secretclient_events_total", "", ["kind", "secret"])
            self.latency = Histogram("secretclient_store_seconds", "", ["secret"])

        def on_event(self, event: ClientEvent) -> None:
            self.events.labels(event.kind, event.name).inc()
            if event.duration is not None:
                self.latency.labels(event.name).observe(event.duration)

OpenTelemetry is the same shape: ``counter.add(1, {"kind": event.kind, "secret": event.name})``.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["EVENT_KINDS", "CachedVersion", "ClientEvent", "ClientObserver", "ClientStats"]

#: Every ``ClientEvent.kind``.
EVENT_KINDS = frozenset(
    {
        "miss",  # a caller found no usable value and waited for the store
        "store_call",  # a read from the store finished (``error_code`` set when it failed)
        "describe_call",  # a DescribeSecret finished (rotation awareness)
        "refresh",  # a cached value was renewed from the store
        "stale_serve",  # a value past its TTL was served because the store is failing
        "not_found",  # the store said the secret/stage/version does not exist
        "caller_error",  # an error was raised to a caller
        "version_change",  # a new CURRENT VersionId was seen
    }
)


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of a client's counters (totals since it was created).

    ``current_staleness`` is how many seconds past its TTL the stalest value now being
    served is (0.0 when every value is within its TTL).
    """

    hits: int = 0
    misses: int = 0
    stale_serves: int = 0
    store_calls: int = 0  # reads (GetSecretValue)
    store_errors: int = 0  # failed reads and DescribeSecret calls (a not-found answer is no error)
    store_not_found: int = 0  # reads answered "not found"
    describe_calls: int = 0
    describe_errors: int = 0
    refreshes: int = 0
    not_found: int = 0
    caller_errors: int = 0
    version_changes: int = 0
    evictions: int = 0
    size: int = 0
    current_staleness: float = 0.0


@dataclass(frozen=True, slots=True)
class CachedVersion:
    """Which version a client holds for a secret's stage (no value): for dashboards."""

    name: str
    stage: str
    version_id: str
    created: datetime | None


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """One slow-path event. Names a secret and a stage, never a value."""

    kind: str
    name: str
    stage: str | None = None
    version_id: str | None = None
    duration: float | None = None  # seconds, for store_call / describe_call
    error_code: str | None = None  # the store's code (or exception type) when it failed
    staleness: float | None = None  # seconds past TTL, for stale_serve


@runtime_checkable
class ClientObserver(Protocol):
    """Receives :class:`ClientEvent` objects, outside the client's locks.

    Called on the thread that caused the event (a caller or the refresh thread): keep it
    quick. Exceptions are logged by the client and otherwise ignored.
    """

    def on_event(self, event: ClientEvent) -> None: ...


class Counters:
    """The client's counters: hits lock-free, the rest under a lock (they are slow path)."""

    def __init__(self) -> None:
        #: The hot path counts a hit with ``next(hit_counter)``: atomic under the GIL, unlike
        #: ``x += 1`` on an attribute, and ~8 ns cheaper than calling its bound ``__next__``.
        self.hit_counter = self._hits = itertools.count()
        self.hit = self._hits.__next__
        self._hit_reads = 0  # values of _hits taken by hits() itself, not by hits
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, field: str, n: int = 1) -> None:
        with self._lock:
            self._counts[field] += n

    def hits(self) -> int:
        # Reading an itertools.count takes a value: subtract the ones earlier reads took.
        with self._lock:
            value = next(self._hits) - self._hit_reads
            self._hit_reads += 1
        return value

    def after_fork_in_child(self) -> None:
        """A fresh lock: another thread may have held it when the process forked."""
        self._lock = threading.Lock()

    def snapshot(self, *, size: int, current_staleness: float) -> ClientStats:
        hits = self.hits()
        with self._lock:
            counts = dict(self._counts)
        return ClientStats(hits=hits, size=size, current_staleness=current_staleness, **counts)
