"""SecretClient: the cached, rotation-aware secret fetcher applications hold.

The warm read (:meth:`SecretClient.get` of a cached value within its refresh window) is a
dictionary lookup plus one clock read, with no lock and no copy: values are immutable
:class:`~secretclient.model.Secret` objects shared by every caller. Everything else (misses,
refresh-ahead, single-flight, stale-if-error, backoff, rotation awareness, subscriptions)
lives on the slow path. See docs/client.md for every option and the guarantees.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

import cachetools

from ._subscriptions import Subscriptions
from .cache import (
    INFINITY,
    Entry,
    EntryCache,
    Failure,
    Flight,
    Key,
    Outcome,
    SingleFlight,
    copy_error,
    deadlines,
)
from .cache_policy import DEFAULT_BACKOFF, CachePolicy
from .errors import (
    ClientClosed,
    InvalidParameter,
    SecretClientError,
    SecretNotFound,
    StoreError,
    StoreTimeout,
)
from .model import DbCredentials, Secret, SecretInfo, Stage, stage_labels
from .stats import CachedVersion, ClientEvent, ClientObserver, ClientStats, Counters
from .stores.base import SecretStore

__all__ = ["DEFAULT_BACKOFF", "CachePolicy", "ClientClosed", "SecretClient"]

_T = TypeVar("_T")


def _version_of(secret: Secret) -> str | None:
    return secret.version_id


logger = logging.getLogger("secretclient.client")

# Clients to repair in a forked child (gunicorn --preload forks after the app made one).
_CLIENTS: weakref.WeakSet[SecretClient] = weakref.WeakSet()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_str(what: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"{what} must be a non-empty string, not {type(value).__name__}")


class SecretClient:
    """A cache of secrets in front of a :class:`~secretclient.stores.SecretStore`.

    :param store: where the secrets live.
    :param policy: how to cache (:class:`~secretclient.cache_policy.CachePolicy`); any of its
        fields may instead be given as a keyword argument (``ttl=600``), overriding ``policy``:
        ``ttl``, ``ttls``, ``refresh_ahead``, ``max_stale``, ``backoff``, ``negative_ttl``,
        ``max_size``, ``rotation_aware``, ``rotation_delay``, ``wait_timeout``.
    :param executor: runs background refreshes and DescribeSecret calls; default a private
        two-thread pool created on first use and shut down by :meth:`close`.
    :param observer: receives a :class:`~secretclient.stats.ClientEvent` per slow-path event.
    :param clock: monotonic seconds, for every deadline.
    :param wall_clock: current UTC time, to place the store's next rotation date.
    :param rng: random source of the backoff jitter.
    :param close_store: whether :meth:`close` also closes ``store``.
    """

    def __init__(
        self,
        store: SecretStore,
        *,
        policy: CachePolicy | None = None,
        executor: Executor | None = None,
        observer: ClientObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
        close_store: bool = False,
        **policy_fields: Any,
    ) -> None:
        if not callable(getattr(store, "get_secret", None)):
            raise InvalidParameter("store must be a SecretStore (it has no get_secret method)")
        if policy is not None and not isinstance(policy, CachePolicy):
            raise InvalidParameter("policy must be a secretclient.CachePolicy")
        if observer is not None and not callable(getattr(observer, "on_event", None)):
            raise InvalidParameter("observer must have an on_event(event) method")
        self._policy = (policy or CachePolicy()).with_overrides(policy_fields)
        self._store = store
        self._labels = stage_labels(store)
        get_stages = getattr(store, "get_stages", None)
        self._get_stages: Callable[[str], Mapping[str, Secret]] | None = get_stages if callable(get_stages) else None
        self._observer = observer
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng
        self._close_store = close_store

        self._lock = threading.RLock()
        self._tickets = itertools.count()  # orders store calls and publishes (see Entry.ticket)
        self._counters = Counters()
        self._hit = self._counters.hit
        self._cache = EntryCache(self._policy.max_size, self._evicted, self._labels.current)
        self._view = self._cache.view  # read lock-free by get()
        self._current = self._cache.current
        negative_ttl = self._policy.negative_ttl
        self._negative: cachetools.TTLCache[Key, SecretNotFound] | None = (
            cachetools.TTLCache(self._policy.max_size, negative_ttl, timer=clock) if negative_ttl > 0 else None
        )
        self._failures: cachetools.LRUCache[Key, Failure] = cachetools.LRUCache(self._policy.max_size)
        self._flights = SingleFlight()
        self._describing: set[str] = set()
        self._subscriptions = Subscriptions()
        self._jobs: set[Future[None]] = set()  # background jobs submitted and not done
        self._executor = executor
        self._owns_executor = executor is None
        self._closed = False
        self.get, self.get_text = self._warm_readers()  # type: ignore[method-assign]
        _CLIENTS.add(self)

    @property
    def policy(self) -> CachePolicy:
        """How this client caches."""
        return self._policy

    # -- reads ---------------------------------------------------------------------------

    def get(self, name: str, stage: str = Stage.CURRENT, *, version_id: str | None = None) -> Secret:
        """The secret's version at ``stage`` (a :class:`~secretclient.model.Stage` role, default
        CURRENT, or one of the store's own labels), or the version ``version_id`` (then
        ``stage`` must be left as is).

        Raises the store's typed error (:class:`SecretNotFound`, :class:`StoreUnavailable`, ...)
        when there is no value to serve.
        """
        # Replaced per instance by the closure from _warm_readers(); kept for docs and typing.
        return self._get_slow(name, stage, version_id)

    def get_text(self, name: str, stage: str = Stage.CURRENT, *, version_id: str | None = None) -> str:
        """The value as text (binary values decoded as UTF-8)."""
        return self.get(name, stage, version_id=version_id).text

    def _warm_readers(self) -> tuple[Callable[..., Secret], Callable[..., str]]:
        """``get`` and ``get_text`` as closures: a warm hit reads only local cells, which
        makes it about 10 % faster than a method doing the same attribute lookups."""
        current = self._current
        view_get = self._view.get
        clock = self._clock
        hits, count = self._counters.hit_counter, next
        get_slow = self._get_slow
        CURRENT = Stage.CURRENT

        # ``version_id`` is keyword-only in the documented signature (the methods above, which
        # type checkers read), not in these closures: CPython 3.11 does not specialize calls to a
        # function with keyword-only parameters, which costs a warm read ~20 ns (10 %).
        def get(name: str, stage: str = CURRENT, version_id: str | None = None) -> Secret:
            # `is`: the default argument is this very object; the store's own labels take the
            # tuple-keyed dict (which holds CURRENT entries too), other spellings of a role the
            # slow path, which translates them.
            if stage is CURRENT and version_id is None:
                try:
                    entry = current[name]  # a subscript is cheaper than .get(); a miss is slow anyway
                except KeyError:
                    return get_slow(name, stage, version_id)
            elif version_id is None:
                found = view_get((name, stage))
                if found is None:
                    return get_slow(name, stage, version_id)
                entry = found
            else:
                return get_slow(name, stage, version_id)
            if clock() < entry.refresh_at:
                count(hits)
                return entry.secret
            return get_slow(name, stage, version_id)

        def get_text(name: str, stage: str = CURRENT, version_id: str | None = None) -> str:
            # get()'s hot path, returning the text kept in the entry.
            if stage is CURRENT and version_id is None:
                try:
                    entry = current[name]
                except KeyError:
                    return get_slow(name, stage, version_id).text
            elif version_id is None:
                found = view_get((name, stage))
                if found is None:
                    return get_slow(name, stage, version_id).text
                entry = found
            else:
                return get_slow(name, stage, version_id).text
            if entry.text is not None and clock() < entry.refresh_at:
                count(hits)
                return entry.text
            return get_slow(name, stage, version_id).text  # get()'s warm look was just done

        get.__doc__, get_text.__doc__ = SecretClient.get.__doc__, SecretClient.get_text.__doc__
        return get, get_text

    def get_json(self, name: str, stage: str = Stage.CURRENT, *, version_id: str | None = None) -> Any:
        """The value parsed as JSON (a new object per call: callers may change it)."""
        return self.get(name, stage, version_id=version_id).json()

    def get_db_credentials(
        self, name: str, stage: str = Stage.CURRENT, *, version_id: str | None = None
    ) -> DbCredentials:
        """The value parsed as database credentials (with its VersionId and stages)."""
        return DbCredentials.from_secret(self.get(name, stage, version_id=version_id))

    def _get_slow(self, name: str, stage: str, version_id: str | None) -> Secret:
        if self._closed:
            raise ClientClosed("this SecretClient is closed")
        _check_str("secret name", name)
        _check_str("stage", stage)
        if version_id is not None:
            _check_str("version_id", version_id)
            if self._labels.label(stage) != self._labels.current:
                raise InvalidParameter("give a stage or a version_id, not both")
        key: Key = (name, self._labels.label(stage)) if version_id is None else (name, None, version_id)
        try:
            secret, staleness = self._lookup(key)
        except SecretClientError as exc:
            self._counters.add("caller_errors")
            self._emit("caller_error", key, error_code=exc.code or type(exc).__name__)
            raise
        if staleness is not None:
            self._counters.add("stale_serves")
            self._emit("stale_serve", key, version_id=secret.version_id, staleness=staleness)
        return secret

    def _lookup(self, key: Key) -> Outcome:
        now = self._clock()
        entry = self._view.get(key)
        if entry is not None and now < entry.expires_at:
            self._hit()
            if now >= entry.refresh_at:
                self._refresh_ahead(key, now)
            return entry.secret, None
        answer = self._answer_without_store(key, now)
        if answer is not None:
            return answer
        flight, _ = self._flights.begin(key)
        if not flight.claim():  # someone runs it already: share its outcome
            self._counters.add("misses")
            self._emit("miss", key)
            outcome = flight.wait(self._policy.wait_timeout)
            if outcome is None:  # a hung store call: never wait forever for it
                error = StoreTimeout(
                    f"secret {key[0]!r}: the store read in progress did not finish within "
                    f"wait_timeout={self._policy.wait_timeout:g} s", code="WaitTimeout",
                )
                return self._fallback(key, error, self._clock())
            return outcome
        # We run it: our own flight, or a background refresh still queued that we take over.
        # The previous flight may have finished between our look and begin(): look again.
        try:
            answer = self._answer_without_store(key, self._clock())
        except BaseException as exc:
            self._flights.finish(key, flight, error=exc)
            raise
        if answer is not None:
            self._flights.finish(key, flight, value=answer)
            return answer
        self._counters.add("misses")
        self._emit("miss", key)
        return self._fetch(key, flight)

    def _answer_without_store(self, key: Key, now: float) -> Outcome | None:
        """A fresh value, a remembered not-found (raised), or the fallback while backing
        off; ``None`` when a store call is due."""
        entry = self._view.get(key)
        if entry is not None and now < entry.expires_at:
            self._hit()
            return entry.secret, None
        with self._lock:
            missing = self._negative.get(key) if self._negative is not None else None
            failure = self._failures.get(key)
        if missing is not None:
            self._counters.add("not_found")
            raise copy_error(missing)
        if failure is not None and now < failure.retry_at:
            return self._fallback(key, failure.error, now)
        return None

    def _fallback(self, key: Key, error: StoreError, now: float) -> Outcome:
        """The last good value while the store fails, if within ``max_stale``; else ``error``."""
        entry = self._view.get(key)
        if entry is None:
            raise copy_error(error)
        if now < entry.expires_at:
            return entry.secret, None
        staleness = now - entry.expires_at
        if staleness <= self._policy.max_stale:
            return entry.secret, staleness
        logger.error(
            "secret %r stage %r: store failing and the cached value is %.0f s past its TTL "
            "(max_stale %.0f s): raising %s",
            key[0], _stage_of(key), staleness, self._policy.max_stale, type(error).__name__,
        )
        raise copy_error(error)

    # -- store calls ---------------------------------------------------------------------

    def _fetch(self, key: Key, flight: Flight) -> Outcome:
        """Having claimed the flight: read the store, update the cache, share the outcome."""
        try:
            outcome = self._fetch_outcome(key)
        except BaseException as exc:
            self._flights.finish(key, flight, error=exc)
            raise
        self._flights.finish(key, flight, value=outcome)
        return outcome

    def _fetch_outcome(self, key: Key) -> Outcome:
        started, ticket = self._clock(), next(self._tickets)
        try:
            secret = self._read_store(key)
        except SecretNotFound as exc:
            self._remember_not_found(key, exc)
            raise
        except StoreError as exc:
            if isinstance(exc, InvalidParameter):
                raise
            self._record_failure(key, exc)
            return self._fallback(key, exc, self._clock())
        self._install(key, secret, started, ticket)
        return secret, None

    def _read_store(self, key: Key) -> Secret:
        name = key[0]
        if len(key) == 2:
            secret = self._store_call(key, lambda: self._store.get_secret(name, stage=key[1]), _version_of)
        else:
            secret = self._store_call(key, lambda: self._store.get_secret(name, version_id=key[2]), _version_of)
        logger.debug("read secret %r stage %r: version %r", name, _stage_of(key), secret.version_id)
        return secret

    def _store_call(self, key: Key, call: Callable[[], _T], version_of: Callable[[_T], str | None]) -> _T:
        """``call()``, a store read for ``key``, counted and told to the observer (with the
        VersionId ``version_of`` its answer names)."""
        t0 = time.perf_counter()
        try:
            out = call()
        except BaseException as exc:
            self._counters.add("store_calls")
            # A not-found is an answer, not an error
            self._counters.add("store_not_found" if isinstance(exc, SecretNotFound) else "store_errors")
            code = exc.code if isinstance(exc, StoreError) and exc.code else type(exc).__name__
            self._emit("store_call", key, duration=time.perf_counter() - t0, error_code=code)
            raise
        self._counters.add("store_calls")
        self._emit("store_call", key, version_id=version_of(out), duration=time.perf_counter() - t0)
        return out

    @property
    def reads_every_stage(self) -> bool:
        """Whether the store answers every stage of a secret in one request (its optional
        ``get_stages``, e.g. NCP's chain): then :meth:`refresh` caches them all from one read."""
        return self._get_stages is not None

    def _refresh_stages(self, key: Key, started: float, ticket: int) -> None:
        """:meth:`refresh` on a store that reads every stage at once: cache each stage (CURRENT
        first: a new CURRENT drops the other stages cached), remember the absent ones."""
        name, labels, get_stages = key[0], self._labels, self._get_stages
        assert get_stages is not None

        def current_of(staged: Mapping[str, Secret]) -> str | None:
            found = staged.get(labels.current)
            return None if found is None else found.version_id

        staged = self._store_call(key, lambda: get_stages(name), current_of)
        for label in (labels.current, labels.pending, labels.previous):
            secret = staged.get(label)
            if secret is not None:
                self._install((name, label), secret, started, ticket)
            elif label != key[1]:
                self._remember_not_found((name, label), SecretNotFound(
                    f"secret {name!r} has no {label} version", code="NOT_FOUND"))
        if key[1] not in staged:
            raise SecretNotFound(f"secret {name!r} has no {key[1]} version", code="NOT_FOUND")

    def _remember_not_found(self, key: Key, exc: SecretNotFound) -> None:
        with self._lock:
            if self._negative is not None:
                self._negative[key] = exc
            self._cache.pop(key)
            self._failures.pop(key, None)
        self._counters.add("not_found")
        self._emit("not_found", key, error_code=exc.code or type(exc).__name__)
        logger.info("secret %r stage %r not found (%s)", key[0], _stage_of(key), exc.code)

    def _record_failure(self, key: Key, exc: StoreError) -> None:
        now = self._clock()
        with self._lock:
            previous = self._failures.get(key)
            attempts = previous.attempts + 1 if previous is not None else 1
            delay = self._policy.backoff.delay(attempts - 1, self._rng)
            self._failures[key] = Failure(attempts, now + delay, exc)
        logger.warning(
            "secret %r stage %r: store call failed (%s, code %s), failure %d; next call in %.2f s",
            key[0], _stage_of(key), type(exc).__name__, exc.code, attempts, delay,
        )

    def _install(self, key: Key, secret: Secret, started: float, ticket: int) -> bool:
        """Cache ``secret``, read by the call with ``ticket`` that began at ``started``,
        unless a later call or a publish() already won; then tell subscribers and schedule
        DescribeSecret (outside the lock). Returns whether it was cached."""
        text = Entry.text_of(secret)  # decoded before taking the lock
        with self._lock:
            if self._closed:
                return False
            old = self._view.get(key)
            if old is not None and old.ticket > ticket:
                return False
            self._cache.put(key, self._entry_for(key, secret, old, started, ticket, text))
            self._failures.pop(key, None)
            if self._negative is not None:
                self._negative.pop(key, None)
            news = self._current_news(key, secret, old) if key[1] == self._labels.current else _NO_NEWS
        if old is not None:
            self._counters.add("refreshes")
            self._emit("refresh", key, version_id=secret.version_id)
        changed_from, callbacks, describe = news
        if changed_from is not None:
            self._counters.add("version_changes")
            self._emit("version_change", key, version_id=secret.version_id)
            logger.info("secret %r: new CURRENT version %r (was %r)", key[0], secret.version_id, changed_from)
        Subscriptions.notify(callbacks, secret)
        if describe:
            name = key[0]
            self._submit(self._describe, name, secret.version_id, on_cancel=lambda: self._describing.discard(name))
        return True

    def _entry_for(
        self, key: Key, secret: Secret, old: Entry | None, started: float, ticket: int, text: str | None
    ) -> Entry:
        """The entry for a value read at ``started``: versions read by id never expire; a
        stage keeps the rotation time learnt for the same version."""
        if len(key) == 3:
            return Entry(secret, ticket, INFINITY, INFINITY, text=text)
        refresh_at, expires_at = deadlines(started, self._policy.ttl_of(key[0]), self._policy.refresh_ahead)
        rotation_at = described = describe_at = None
        if old is not None and old.secret.version_id == secret.version_id:
            rotation_at, described, describe_at = old.rotation_at, old.described_version, old.describe_at
            if rotation_at is not None and rotation_at > started:
                refresh_at = min(refresh_at, rotation_at)
            if describe_at is not None:
                refresh_at = min(refresh_at, describe_at)
        return Entry(secret, ticket, refresh_at, expires_at, rotation_at, described, text, describe_at)

    def _current_news(self, key: Key, secret: Secret, old: Entry | None) -> _News:
        """Under the lock, for a CURRENT value just cached: drop the other stages if the
        version is new, and say whom to tell (the old VersionId, subscribers, DescribeSecret)."""
        name = key[0]
        changed_from = old.secret.version_id if old is not None and old.secret.version_id != secret.version_id else None
        if old is None or changed_from is not None:
            # Other stages cached may predate this version (PREVIOUS moved with it, PENDING
            # was promoted): read them again when asked.
            for other in self._cache.keys_of(name):
                if len(other) == 2 and other != key:
                    self._cache.pop(other)
            if self._negative is not None:
                for other in [k for k in list(self._negative) if k[0] == name and len(k) == 2]:
                    self._negative.pop(other, None)
        entry = self._view[key]
        describe = (
            self._policy.rotation_aware
            and entry.described_version != secret.version_id
            and name not in self._describing
        )
        if describe:
            self._describing.add(name)
            if changed_from is not None and self._policy.rotation_delay > 0:
                # A rotation: every instance of a fleet sees it at about the same moment, and the
                # next rotation time is not needed at once. Describe on the first read after a
                # random point within rotation_delay (see _refresh_ahead).
                at = self._clock() + (self._rng or random).uniform(0.0, self._policy.rotation_delay)
                self._cache.put(key, replace(entry, describe_at=at, refresh_at=min(entry.refresh_at, at)))
                describe = False
        return changed_from, self._subscriptions.due(secret), describe

    # -- background work -----------------------------------------------------------------

    def _submit(self, fn: Callable[..., None], *args: Any, on_cancel: Callable[[], None]) -> None:
        """Run ``fn`` on the executor; ``on_cancel`` if it will never run."""
        with self._lock:
            if self._closed:
                on_cancel()
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="secretclient-refresh")
            executor = self._executor
        try:
            future = executor.submit(fn, *args)
        except RuntimeError:  # the executor was shut down
            on_cancel()
            return
        with self._lock:
            self._jobs.add(future)

        def done(f: Future[None]) -> None:
            with self._lock:
                self._jobs.discard(f)
            if f.cancelled():
                on_cancel()

        future.add_done_callback(done)

    def _refresh_ahead(self, key: Key, now: float) -> None:
        """Start a background refresh of ``key`` unless one runs or the store is backing off
        (or, when only a spread DescribeSecret is due, send that instead)."""
        with self._lock:
            self._cache.touch(key)  # an entry in use stays in the LRU
            failure = self._failures.get(key)
            entry = self._view.get(key)
            describe: str | None = None  # the VersionId to describe now
            if entry is not None and entry.describe_at is not None and now >= entry.describe_at:
                refresh_at = self._refresh_time(key[0], entry, now)
                self._cache.put(key, replace(entry, describe_at=None, refresh_at=refresh_at))
                if now < refresh_at:
                    describe = entry.secret.version_id
                else:  # a refresh is due too: its news sends the DescribeSecret
                    self._describing.discard(key[0])
        if describe is not None:
            name = key[0]
            self._submit(self._describe, name, describe, on_cancel=lambda: self._describing.discard(name))
            return
        if failure is not None and now < failure.retry_at:
            return
        flight, leader = self._flights.begin(key)
        if not leader:
            return

        def cancelled() -> None:
            if flight.claim():  # nobody took it over: release its waiters
                self._flights.finish(key, flight, error=ClientClosed("this SecretClient is closed"))

        self._submit(self._background_fetch, key, flight, on_cancel=cancelled)

    def _refresh_time(self, name: str, entry: Entry, now: float) -> float:
        """When ``entry`` is due for a refresh by its TTL (the time :func:`deadlines` gave it)
        or by a rotation time still ahead (as :meth:`_entry_for` counts it), whichever comes first."""
        ttl = self._policy.ttl_of(name)
        refresh_at = INFINITY if ttl == INFINITY else entry.expires_at - ttl * self._policy.refresh_ahead
        rotation_at = entry.rotation_at
        return refresh_at if rotation_at is None or rotation_at <= now else min(refresh_at, rotation_at)

    def _background_fetch(self, key: Key, flight: Flight) -> None:
        if not flight.claim():
            return  # a reader needed the value first and ran the call itself
        if self._closed:
            self._flights.finish(key, flight, error=ClientClosed("this SecretClient is closed"))
            return
        try:
            self._fetch(key, flight)
        except StoreError:
            pass  # logged by _record_failure / _remember_not_found
        except Exception as exc:  # a bug in the store: keep the refresh thread alive
            logger.error("background refresh of secret %r failed: %s", key[0], type(exc).__name__)

    def _describe(self, name: str, version_id: str) -> None:
        """DescribeSecret, once per secret and version: learn when it rotates next."""
        t0 = time.perf_counter()
        key = (name, self._labels.current)
        try:
            info = self._store.describe(name)
        except Exception as exc:
            code = exc.code if isinstance(exc, StoreError) and exc.code else type(exc).__name__
            self._counters.add("describe_calls")
            self._counters.add("describe_errors")
            self._counters.add("store_errors")
            self._emit("describe_call", key, duration=time.perf_counter() - t0, error_code=code)
            logger.warning(
                "DescribeSecret for %r failed (%s): rotation time unknown until the next refresh",
                name, code,
            )
            with self._lock:
                self._describing.discard(name)
            return
        self._counters.add("describe_calls")
        self._emit("describe_call", key, duration=time.perf_counter() - t0)
        rotation_at = self._rotation_time(info)
        with self._lock:
            self._describing.discard(name)
            entry = self._view.get(key)
            if self._closed or entry is None or entry.secret.version_id != version_id:
                return
            refresh_at = entry.refresh_at if rotation_at is None else min(entry.refresh_at, rotation_at)
            self._cache.put(
                key, replace(entry, refresh_at=refresh_at, rotation_at=rotation_at, described_version=version_id)
            )
        if rotation_at is not None:
            logger.debug("secret %r rotates next in %.0f s: refresh then", name, rotation_at - self._clock())

    def _rotation_time(self, info: SecretInfo) -> float | None:
        """When to refresh for the next rotation, on the monotonic clock (``None``: no
        rotation ahead, or one overdue by more than ``rotation_delay``)."""
        when = info.next_rotation
        if when is None and info.rotation_interval is not None:
            base = info.last_rotation or info.created
            if base is not None:
                when = base + info.rotation_interval
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        # Spread over [rotation_delay, 2 x rotation_delay] after the rotation time: a fleet's
        # instances all learnt the same time, and would otherwise read the store together.
        spread = self._policy.rotation_delay * (1.0 + (self._rng or random).random())
        delay = (when - self._wall_clock()).total_seconds() + spread
        return self._clock() + delay if delay > 0 else None

    def _evicted(self, key: Key, entry: Entry) -> None:
        self._counters.add("evictions")

    # -- control -------------------------------------------------------------------------

    def refresh(self, name: str, stage: str = Stage.CURRENT) -> bool:
        """Read ``stage`` from the store now, bypassing the cache and the backoff.

        Returns whether the VersionId now cached differs from the one cached before
        (``True`` when nothing was). Store errors are raised, never answered from the cache.
        """
        if self._closed:
            raise ClientClosed("this SecretClient is closed")
        _check_str("secret name", name)
        _check_str("stage", stage)
        key: Key = (name, self._labels.label(stage))
        old = self._view.get(key)
        started, ticket = self._clock(), next(self._tickets)
        try:
            if self.reads_every_stage:
                self._refresh_stages(key, started, ticket)
            else:
                self._install(key, self._read_store(key), started, ticket)
        except SecretClientError as exc:
            if isinstance(exc, SecretNotFound):
                self._remember_not_found(key, exc)
            self._counters.add("caller_errors")
            self._emit("caller_error", key, error_code=exc.code or type(exc).__name__)
            raise
        now_cached = self._view.get(key)  # ours, or a later read's
        return now_cached is not None and (old is None or now_cached.secret.version_id != old.secret.version_id)

    def invalidate(self, name: str) -> None:
        """Forget everything cached for ``name`` (every stage and version, not-found and
        failure records); the next read goes to the store."""
        _check_str("secret name", name)
        with self._lock:
            for key in self._cache.keys_of(name):
                self._cache.pop(key)
            for records in (self._failures, self._negative):
                if records is not None:
                    for key in [k for k in list(records) if k[0] == name]:
                        records.pop(key, None)

    def subscribe(self, name: str, callback: Callable[[Secret], None]) -> Callable[[], None]:
        """Call ``callback(secret)`` once per new CURRENT VersionId of ``name`` this client
        sees (by a read, a refresh or :meth:`publish`). The version current when subscribing
        (or the first one seen) is not new. Callbacks run on the thread that saw the version,
        outside the client's locks; their exceptions are logged, not raised.

        Returns a function that unsubscribes.
        """
        _check_str("secret name", name)
        if not callable(callback):
            raise InvalidParameter("callback must be callable")
        with self._lock:  # no CURRENT value is cached between our look and add()
            if self._closed:
                raise ClientClosed("this SecretClient is closed")
            current = self._view.get((name, self._labels.current))
            return self._subscriptions.add(name, callback, current.secret.version_id if current else None)

    def publish(self, secret: Secret) -> None:
        """Hand over a new CURRENT version (an in-process rotation just promoted it):
        cached at once, other stages of the secret dropped, subscribers told."""
        if not isinstance(secret, Secret):
            raise InvalidParameter(f"publish() takes a Secret, not {type(secret).__name__}")
        current = self._labels.current
        if current not in secret.stages:
            raise InvalidParameter(
                f"publish() takes the {current} version: version {secret.version_id!r} of secret "
                f"{secret.name!r} has stages {sorted(secret.stages)}"
            )
        if self._closed:
            raise ClientClosed("this SecretClient is closed")
        self._install((secret.name, current), secret, self._clock(), next(self._tickets))

    @property
    def store(self) -> SecretStore:
        """The store this client reads."""
        return self._store

    def stats(self) -> ClientStats:
        """Counters since creation, the entry count and the current staleness."""
        now = self._clock()
        with self._lock:
            staleness = 0.0
            for key in list(self._failures):
                entry = self._view.get(key)
                if entry is not None and now > entry.expires_at:
                    staleness = max(staleness, now - entry.expires_at)
            size = len(self._cache)
        return self._counters.snapshot(size=size, current_staleness=staleness)

    def _after_fork_in_child(self) -> None:
        """In a forked child only the forking thread exists: locks another thread held stay
        held, a read in flight never finishes, the refresh threads are gone. Start afresh
        with the values cached (they are immutable and still valid)."""
        self._lock = threading.RLock()
        self._flights = SingleFlight()
        self._describing.clear()
        self._jobs = set()  # they run in the parent
        self._counters.after_fork_in_child()
        self._subscriptions.after_fork_in_child()
        if self._owns_executor:
            self._executor = None  # a new pool on first use; the parent's threads did not fork

    def cached_version_id(self, name: str, stage: str = Stage.CURRENT) -> str | None:
        """The VersionId cached for ``stage`` of ``name`` right now, or None (no store call,
        no lock): which of two versions a caller read is the newer one."""
        entry = self._view.get((name, self._labels.label(stage)))
        return None if entry is None else entry.secret.version_id

    def cached_versions(self) -> list[CachedVersion]:
        """The version held for each secret's stage (no values, no store call): what a
        dashboard shows. Versions read by VersionId are not listed."""
        with self._lock:
            entries = [(key, entry.secret) for key, entry in self._view.items() if len(key) == 2]
        return [CachedVersion(key[0], str(key[1]), s.version_id, s.created) for key, s in entries]

    def close(self) -> None:
        """Drop every cached value, stop the background threads (waiting up to
        ``wait_timeout`` for a refresh in progress) and, with ``close_store=True``, close the
        store. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cache.clear()
            self._failures.clear()
            if self._negative is not None:
                self._negative.clear()
            self._subscriptions.clear()
            executor = self._executor if self._owns_executor else None
            jobs = list(self._jobs)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        # Jobs not started yet are dropped (a caller's executor may never run them: waiting for
        # them would only time out). A refresh in progress finishes (its store call is bounded
        # by the store's timeouts); waiting is bounded here too, should a store hang.
        started = [job for job in jobs if not job.cancel()]
        _, unfinished = wait(started, timeout=self._policy.wait_timeout)
        if executor is not None and not unfinished:
            executor.shutdown(wait=True)  # idle threads: joined at once
        if self._close_store:
            self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SecretClient(store={self._store!r}, size={len(self._cache)}, closed={self._closed})"

    # -- observability -------------------------------------------------------------------

    def _emit(self, kind: str, key: Key, **fields: Any) -> None:
        observer = self._observer
        if observer is None:
            return
        try:
            observer.on_event(ClientEvent(kind, key[0], _stage_of(key), **fields))
        except Exception as exc:  # metrics must never break reads
            logger.error("observer %s raised %s on %s", type(observer).__name__, type(exc).__name__, kind)


#: What a new CURRENT value means: the VersionId it replaced (if new), callbacks, DescribeSecret due.
_News = tuple[str | None, tuple[Callable[[Secret], None], ...], bool]
_NO_NEWS: _News = (None, (), False)


def _stage_of(key: Key) -> str | None:
    return key[1] if len(key) == 2 else None


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
