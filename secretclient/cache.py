"""The cache behind :class:`~secretclient.client.SecretClient`: entries, deadlines, single-flight.

Reads never take a lock: :attr:`EntryCache.view` (every key) and :attr:`EntryCache.current`
(entries of the store's CURRENT label by bare name, saving the hot path a tuple) are plain ``dict`` objects
whose values are immutable :class:`Entry` objects, replaced whole (a dict store is atomic).
Writes go through :class:`EntryCache` under the client's lock; a ``cachetools.LRUCache``
keeps the size bounded and its evictions are mirrored into both dicts.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cachetools

from .errors import StoreError
from .model import Secret

__all__ = ["Entry", "EntryCache", "Failure", "Flight", "SingleFlight", "deadlines"]

INFINITY = math.inf

#: A cache key: ``(name, stage)`` for stage reads, ``(name, None, version_id)`` for reads by VersionId.
Key = tuple[str, str] | tuple[str, None, str]
#: What a read yields: the secret and, when served stale, seconds past its TTL.
Outcome = tuple[Secret, float | None]


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached value and its deadlines (all on the client's monotonic clock).

    ``refresh_at``: from then on a read triggers a background refresh (the hot path only
    compares the clock with this). ``expires_at``: the end of the TTL; past it the value is
    served only as a stale fallback while the store fails. ``ticket`` orders the store calls
    (and publishes) by when they began, so an older, slower call never overwrites a newer
    value: a counter, not a clock reading, because an injected clock may step back.
    ``rotation_at`` (monotonic) and ``described_version`` come from DescribeSecret.
    ``describe_at``: a DescribeSecret is due then (spread after a rotation); ``refresh_at`` is
    at most it, so the first read from then on sends it.
    """

    secret: Secret
    ticket: int
    refresh_at: float
    expires_at: float
    rotation_at: float | None = None
    described_version: str | None = None
    #: The value as ``str`` (the same object for text secrets), ``None`` if binary and not UTF-8.
    text: str | None = None
    describe_at: float | None = None

    @staticmethod
    def text_of(secret: Secret) -> str | None:
        data = secret.data
        if isinstance(data, str):
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True, slots=True)
class Failure:
    """Failed store calls for one key: no new call before ``retry_at``."""

    attempts: int
    retry_at: float
    error: StoreError


def deadlines(started: float, ttl: float, refresh_ahead: float) -> tuple[float, float]:
    """``(refresh_at, expires_at)`` for a value fetched at ``started``.

    The refresh starts when ``refresh_ahead`` (a fraction) of the TTL is left.
    """
    if ttl == INFINITY:
        return INFINITY, INFINITY
    return started + ttl * (1.0 - refresh_ahead), started + ttl


class _MirroredLRU(cachetools.LRUCache[Key, Entry]):
    """An LRU cache that tells its owner about evictions (to drop them from the view)."""

    def __init__(self, maxsize: int, on_evict: Callable[[Key, Entry], None]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[Key, Entry]:
        key, value = super().popitem()
        self._on_evict(key, value)
        return key, value


class EntryCache:
    """Bounded entries with a lock-free read view. Not locked itself: the caller holds a lock
    around every write."""

    def __init__(self, max_size: int, on_evict: Callable[[Key, Entry], None], current_label: str) -> None:
        #: The read view: never replaced, only mutated, so readers may hold a reference.
        self.view: dict[Key, Entry] = {}
        self.current: dict[str, Entry] = {}
        self._by_name: dict[str, set[Key]] = {}
        self._on_evict = on_evict
        self._current_label = current_label  # the store's label of the CURRENT role
        self._lru = _MirroredLRU(max_size, self._evicted)

    def _evicted(self, key: Key, entry: Entry) -> None:
        self._forget(key)
        self._on_evict(key, entry)

    def _forget(self, key: Key) -> Entry | None:
        name = key[0]
        keys = self._by_name.get(name)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_name[name]
        if key == (name, self._current_label):
            self.current.pop(name, None)
        return self.view.pop(key, None)

    def put(self, key: Key, entry: Entry) -> None:
        self._lru[key] = entry  # may evict another key first
        name = key[0]
        self.view[key] = entry
        if key == (name, self._current_label):
            self.current[name] = entry
        self._by_name.setdefault(name, set()).add(key)

    def touch(self, key: Key) -> None:
        """Mark ``key`` as used (the hot path does not, to stay lock-free)."""
        self._lru.get(key)

    def pop(self, key: Key) -> Entry | None:
        self._lru.pop(key, None)
        return self._forget(key)

    def keys_of(self, name: str) -> list[Key]:
        """Every key of secret ``name`` (stages and versions)."""
        return list(self._by_name.get(name, ()))

    def clear(self) -> None:
        self._lru.clear()
        self.view.clear()
        self.current.clear()
        self._by_name.clear()

    def __len__(self) -> int:
        return len(self.view)

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self.view))


class Flight:
    """One store call in progress; other callers wait for its outcome.

    Whoever runs the call claims it first (:meth:`claim`): a queued background refresh that a
    reader needs now is run by that reader, not waited for behind a busy executor.
    """

    __slots__ = ("_claim", "_done", "error", "value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._claim = threading.Lock()
        self.value: Outcome | None = None
        self.error: BaseException | None = None

    def claim(self) -> bool:
        """``True`` for the one caller that is to run the call."""
        return self._claim.acquire(blocking=False)

    def set(self, value: Outcome | None = None, error: BaseException | None = None) -> None:
        """Publish the outcome (a value or an error) and wake the waiters."""
        self.value, self.error = value, error
        self._done.set()

    def wait(self, timeout: float) -> Outcome | None:
        """The outcome once set (``None`` if not set within ``timeout`` seconds); the error
        is raised (a copy, for this thread)."""
        if not self._done.wait(timeout):
            return None
        if self.error is not None:
            raise copy_error(self.error)
        assert self.value is not None  # set() gives a value or an error
        return self.value


class SingleFlight:
    """At most one call in flight per key.

    :meth:`begin` returns ``(flight, True)`` to the caller that created the flight (the
    leader); everybody else gets ``(flight, False)``. Whoever claims the flight runs the call
    and then calls :meth:`finish`; the others wait.
    The leader must publish its result (e.g. into the cache) before :meth:`finish`, and
    re-check for it after :meth:`begin`, so a late caller never repeats a finished call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Key, Flight] = {}

    def begin(self, key: Key) -> tuple[Flight, bool]:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def finish(
        self, key: Key, flight: Flight, value: Outcome | None = None, error: BaseException | None = None
    ) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.set(value, error)


def copy_error(error: BaseException) -> BaseException:
    """A fresh copy of ``error`` to raise in another thread (sharing one exception object
    across threads would splice their tracebacks together)."""
    try:
        clone = copy.copy(error)
    except Exception:  # an exception type that cannot be copied: raise the original
        return error
    clone.__traceback__ = None
    return clone
