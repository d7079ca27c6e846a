"""The connector behind every rotation-aware connection: one per secret, shared.

A :class:`Connector` holds what the searches of one secret share: the parsed credential
versions, the CURRENT version it last saw (and the ones replaced since, for roll-over), the
credentials that worked after a rejection, single-flight store reads, the login arguments last
built, and counters. The search itself (:class:`~secretclient.db._search.CredentialSearch`) is
in :mod:`secretclient.db._search`; it sees the connector through a narrow view.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..cache import copy_error
from ..errors import InvalidParameter, SecretNotFound, StoreError, StoreUnavailable, Throttled
from ..model import DbCredentials, Secret, stage_labels
from ._family import DbFamily
from ._gate import GATE
from ._mysql import MYSQL
from ._search import CredentialSearch, Login, LoginArgs, Translate, drive
from .policy import RetryPolicy

if TYPE_CHECKING:
    from ..client import SecretClient

__all__ = ["Connector", "ConnectorStats", "live_connectors"]

log = logging.getLogger("secretclient.db")

_FORBIDDEN_KWARGS = frozenset(("user", "password", "passwd"))
_MAX_REMEMBERED = 64  # parsed versions and retired versions kept per connector


@dataclass(frozen=True, slots=True)
class ConnectorStats:
    """Counters of one :class:`Connector` (totals since it was created).

    ``logins``: logins sent; ``rejected``: of those, refused for bad credentials;
    ``retries``: logins beyond the first within one ``connect``; ``store_reads``: forced store
    reads by the search; ``recovered``: connects that succeeded after a rejection;
    ``failures``: connects that raised; ``rollovers``: pooled connections dropped at checkout
    because their credential version was replaced; ``skipped``: credentials not sent because
    the server had rejected them (for this or another search of the process).
    """

    connects: int = 0
    logins: int = 0
    rejected: int = 0
    retries: int = 0
    store_reads: int = 0
    recovered: int = 0
    failures: int = 0
    rollovers: int = 0
    skipped: int = 0


_STAT_FIELDS = tuple(f.name for f in dataclasses.fields(ConnectorStats))

# Every connector alive, for secretclient.metrics to read at scrape time (weak: no leak).
_LIVE: weakref.WeakSet[Connector] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def live_connectors() -> list[Connector]:
    """The connectors alive in this process (metrics read their counters at scrape time)."""
    with _LIVE_LOCK:
        return list(_LIVE)


class _Tally:
    """Counters that many threads add to. ``next()`` on an ``itertools.count`` is atomic under
    the GIL (``x += 1`` is not) and needs no lock. Reading one takes a value too, so a snapshot
    subtracts the values earlier snapshots took. ``landed()`` counts the usual connect (its first
    login worked: one login, one connect) with one C call and no Python frame; a snapshot adds it
    to both counters."""

    __slots__ = ("_by_stage", "_counters", "_landed", "_lock", "_reads", "landed")

    def __init__(self) -> None:
        self._lock = threading.Lock()  # snapshots and the per-stage counts (rejections: slow path)
        self._counters = {field: itertools.count() for field in _STAT_FIELDS}
        self._landed = itertools.count()
        self.landed: Callable[[], int] = functools.partial(next, self._landed)
        self._reads = 0
        self._by_stage: dict[tuple[str, str], int] = {}

    def add(self, *fields: str) -> None:
        counters = self._counters
        for field in fields:
            next(counters[field])

    def add_at(self, field: str, stage: str) -> None:
        """Add one to ``field`` and to its count for the store label ``stage``."""
        next(self._counters[field])
        with self._lock:
            key = (field, stage)
            self._by_stage[key] = self._by_stage.get(key, 0) + 1

    def snapshot(self) -> ConnectorStats:
        with self._lock:
            reads, self._reads = self._reads, self._reads + 1
            counts = {field: next(count) - reads for field, count in self._counters.items()}
            landed = next(self._landed) - reads
        counts["logins"] += landed
        counts["connects"] += landed
        return ConnectorStats(**counts)

    def by_stage(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._by_stage)


class Connector:
    """Logs in with the credentials of ``secret``, surviving rotations: to MySQL/MariaDB, or to
    PostgreSQL with ``family=secretclient.db.POSTGRES`` (psycopg 3).

    Thread-safe; share one per secret (an engine does). ``clock``, ``sleep`` and ``rng`` are
    injectable for tests.
    """

    def __init__(
        self,
        secret: str,
        client: SecretClient,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        family: DbFamily = MYSQL,
    ) -> None:
        if not isinstance(secret, str) or not secret:
            raise InvalidParameter("secret must be the name of a secret (a non-empty string)")
        for method in ("get", "refresh"):
            if not callable(getattr(client, method, None)):
                raise InvalidParameter(f"client must be a SecretClient (it has no {method}())")
        if policy is not None and not isinstance(policy, RetryPolicy):
            raise InvalidParameter("policy must be a secretclient.db.RetryPolicy")
        self.secret = secret
        self.client = client
        self.policy = policy or RetryPolicy()
        self.family = family
        self._sleep = sleep
        self._lock = threading.Lock()  # the small state below
        self._tally = _Tally()
        self._parsed: dict[str, DbCredentials] = {}
        self._current: str | None = None
        self._retired: dict[str, None] = {}  # insertion-ordered set
        # (CURRENT version that was rejected, credentials that worked instead, their stage): new
        # logins skip the known-bad version until the cache moves on.
        self._hint: tuple[str, DbCredentials, str] | None = None
        self._refresh_lock = threading.Lock()
        # Per stage: when the last forced store read began, and its error (None: it worked).
        self._refresh_started: dict[str, tuple[float, StoreError | None]] = {}
        self._store_failures = 0  # forced reads in a row throttled or unavailable: the backoff's attempt
        # The login arguments last built: (credentials, caller kwargs, arguments, translate).
        # One entry is enough for the usual one engine (or one set of kwargs) per connector.
        self._last_args: tuple[DbCredentials, dict[str, Any], LoginArgs, Translate | None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        peek = getattr(client, "cached_version_id", None)
        self._peek: Callable[[str], str | None] | None = peek if callable(peek) else None
        self._retire_listeners: tuple[Callable[[], None], ...] = ()
        self._view = _View(self, clock, rng or random.Random())
        with _LIVE_LOCK:
            _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Connector(secret={self.secret!r}, current_version={self._current!r})"

    # -- watching the secret ----------------------------------------------------------------

    def watch(self) -> None:
        """Subscribe to the client, so versions replaced by a background refresh or an
        in-process rotation are retired at once (engines call this). Idempotent."""
        with self._lock:
            if self._unsubscribe is not None or not callable(getattr(self.client, "subscribe", None)):
                return
            self._unsubscribe = self.client.subscribe(self.secret, self._on_current)

    def close(self) -> None:
        """Stop watching the secret."""
        with self._lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def _on_current(self, secret: Secret) -> None:
        self._note_current(secret.version_id)

    def _note_current(self, version_id: str) -> None:
        if version_id == self._current:
            return
        with self._lock:
            if version_id == self._current:
                return
            # A connect that read CURRENT just before a refresh cached a newer version can get
            # here after that refresh did: taking its version would retire the newer one (and
            # sweep its connections). The client's cache says which version is current now.
            if self._current is not None and self._peek is not None:
                cached = self._peek(self.secret)
                if cached is not None and cached != version_id:
                    return
            old, self._current = self._current, version_id
            if old is not None and old != version_id:
                self._retired[old] = None
                self._retired.pop(version_id, None)  # a rollback makes a version current again
                while len(self._retired) > _MAX_REMEMBERED:
                    self._retired.pop(next(iter(self._retired)))
        if old is not None:
            log.info("secret %r: the CURRENT stage is now version %r (was %r)", self.secret, version_id, old)
            for listener in self._retire_listeners:
                try:
                    listener()
                except Exception:  # a listener's failure must not fail the connect that saw the version
                    log.exception("secret %r: a listener for replaced versions failed", self.secret)

    def on_retire(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` each time a CURRENT version is replaced (after
        :meth:`is_retired` says so), on the thread that saw the new version. Engines use it to
        close their idle connections of the replaced version. Returns a function that removes it."""
        with self._lock:
            self._retire_listeners += (listener,)

        def remove() -> None:
            with self._lock:
                self._retire_listeners = tuple(x for x in self._retire_listeners if x is not listener)

        return remove

    @property
    def current_version(self) -> str | None:
        """The CURRENT VersionId this connector last saw."""
        return self._current

    def is_retired(self, version_id: str | None) -> bool:
        """Whether ``version_id`` was CURRENT and has since been replaced."""
        return version_id is not None and version_id in self._retired

    # -- stats ------------------------------------------------------------------------------

    def note_rollover(self) -> None:
        """Count a pooled connection dropped because its version was replaced."""
        self._tally.add("rollovers")

    def stats(self) -> ConnectorStats:
        """The counters since this connector was created."""
        return self._tally.snapshot()

    def stage_stats(self) -> dict[tuple[str, str], int]:
        """``rejected`` and ``recovered`` of :meth:`stats` by store label:
        ``{(counter, stage label): count}`` (the stage whose credentials were rejected, or worked)."""
        return self._tally.by_stage()

    # -- credentials ------------------------------------------------------------------------

    def _credentials(self, secret: Secret) -> DbCredentials:
        creds = self._parsed.get(secret.version_id)
        if creds is None:
            creds = DbCredentials.from_secret(secret)  # versions are immutable: parse once
            with self._lock:
                if len(self._parsed) >= _MAX_REMEMBERED:
                    self._parsed.clear()
                self._parsed[secret.version_id] = creds
        return creds

    def credentials(self, stage: str | None = None) -> DbCredentials:
        """The (cached) credentials of ``stage``: a role or the store's label, CURRENT by default."""
        labels = self._view.labels
        label = labels.current if stage is None else labels.label(stage)
        secret = self.client.get(self.secret, label)
        if label == labels.current:
            self._note_current(secret.version_id)
        return self._credentials(secret)

    def _fresh(self, stage: str, since: float) -> DbCredentials:
        """The credentials of the store label ``stage`` as the store has them now.

        Single-flight per stage: a refresh that began after ``since`` (our failure) is as good
        as our own, so concurrent failing threads share one store read, and its error.
        """
        with self._refresh_lock:
            started, error = self._refresh_started.get(stage, (float("-inf"), None))
            # A failed read is shared only by searches that failed before it began.
            if started < since or (error is not None and started == since):
                started, error = self._view.clock(), None
                self._tally.add("store_reads")
                try:
                    self.client.refresh(self.secret, stage)
                except StoreError as exc:
                    error = exc
                transient = isinstance(error, (Throttled, StoreUnavailable))
                self._store_failures = self._store_failures + 1 if transient else 0
                self._refresh_started[stage] = (started, error)
                if self.client.reads_every_stage and (error is None or isinstance(error, SecretNotFound)):
                    # That one request read every stage (NCP's chain): a search that wants PENDING
                    # next finds it cached, read after its failure.
                    labels = self._view.labels
                    for other in (labels.current, labels.pending, labels.previous):
                        if other != stage:
                            self._refresh_started[other] = (started, None)
            if error is not None:  # the shared read failed: so does ours, without another call
                raise copy_error(error)
            return self.credentials(stage)

    # -- logging in -------------------------------------------------------------------------

    def connect(self, kwargs: Mapping[str, Any] | None = None, login: Login | None = None) -> tuple[Any, DbCredentials]:
        """Log in and return ``(connection, credentials used)``.

        ``kwargs`` are the driver's keyword arguments (never ``user``/``password``: those come
        from the secret). Host, port and database come from the secret unless ``kwargs`` names
        them. ``login`` makes the connection (``pymysql.connect`` or ``psycopg.connect`` by default).
        """
        search = self.search(kwargs)
        if login is None:
            login = self.family.default_login
        request = search.first()
        if request is None:
            return drive(search.steps(), login, self._sleep, self.family)
        try:
            conn = self.family.login_with(login, request.kwargs, request.handshake)
        except Exception as exc:
            return drive(search.steps(exc), login, self._sleep, self.family)
        except BaseException:
            search.abandoned()
            raise
        return search.landed(conn)

    def search(self, kwargs: Mapping[str, Any] | None = None, translate: Translate | None = None) -> CredentialSearch:
        """The search of one connect, for a driver to perform: :meth:`CredentialSearch.steps`
        yields its requests (send it the outcome of each, or throw in the exception it raised;
        it returns ``(connection, credentials used)`` or raises a
        :class:`~secretclient.db.errors.DbConnectError`), and :meth:`CredentialSearch.first`
        gives its usual first login alone. ``kwargs`` as for :meth:`connect`;
        ``translate(secret, pymysql_kwargs)`` makes the login arguments fit another driver
        (called once per credential version and set of ``kwargs``, not per login).
        """
        if kwargs is None:
            kwargs = {}
        elif not _FORBIDDEN_KWARGS.isdisjoint(kwargs):
            bad = sorted(_FORBIDDEN_KWARGS.intersection(kwargs))
            raise InvalidParameter(
                f"do not pass {', '.join(bad)}: user and password come from the secret {self.secret!r}"
            )
        return CredentialSearch(self._view, kwargs, translate)

    def _login_args(self, creds: DbCredentials, kwargs: Mapping[str, Any], translate: Translate | None) -> LoginArgs:
        """The login arguments for ``creds`` and ``kwargs``, reused while neither changes (this
        is the hot path of every new pooled connection)."""
        last = self._last_args
        if last is not None and last[0] is creds and last[3] is translate and last[1] == kwargs:
            return last[2]
        built = self.build_kwargs(creds, kwargs)
        server = self.family.server(built)
        args = LoginArgs(
            built if translate is None else translate(self.secret, built),
            own_connect_timeout="connect_timeout" not in kwargs,
            handshake_timeout=self.policy.handshake_timeout if kwargs.get("read_timeout") is None else None,
            server=server,
            gate_key=GATE.key(self.family.name, server, creds.account_name, creds.account_password),
        )
        self._last_args = (creds, dict(kwargs), args, translate)
        return args

    def build_kwargs(self, creds: DbCredentials, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """PyMySQL keyword arguments for ``creds`` on top of the caller's ``kwargs``."""
        return self.family.login_kwargs(creds, kwargs, secret=self.secret)


class _View:
    """What a :class:`~secretclient.db._search.CredentialSearch` sees of its connector.

    The calls of every connect are bound methods of the connector's (one call, no extra frame).
    """

    __slots__ = ("_c", "clock", "count", "count_at", "count_landed", "family", "fresh", "gate", "labels", "login_args",
                 "policy", "rng", "secret")

    def __init__(self, connector: Connector, clock: Callable[[], float], rng: random.Random) -> None:
        self._c = connector
        self.secret = connector.secret
        self.policy = connector.policy
        self.family = connector.family
        self.gate = GATE
        self.labels = stage_labels(getattr(connector.client, "store", None))
        self.clock = clock
        self.rng = rng
        self.count = connector._tally.add
        self.count_at = connector._tally.add_at
        self.count_landed = connector._tally.landed
        self.login_args = connector._login_args
        self.fresh = connector._fresh

    def cached_current(self) -> Secret | None:
        c = self._c
        # The role, not the store's label: the client's quickest lookup.
        return None if c._current is None else c.client.get(self.secret)

    def read_current(self) -> Secret:
        return self._c.client.get(self.secret)

    def credentials(self, secret: Secret) -> DbCredentials:
        c = self._c
        if secret.version_id != c._current:
            c._note_current(secret.version_id)
        creds = c._parsed.get(secret.version_id)
        return creds if creds is not None else c._credentials(secret)

    def cached(self, stage: str) -> DbCredentials:
        return self._c.credentials(stage)

    def store_failures(self) -> int:
        return self._c._store_failures

    def hint(self, current_version: str) -> tuple[DbCredentials, str] | None:
        hint = self._c._hint
        return (hint[1], hint[2]) if hint is not None and hint[0] == current_version else None

    def remember(self, rejected_version: str, creds: DbCredentials, stage: str) -> None:
        with self._c._lock:
            self._c._hint = (rejected_version, creds, stage)
