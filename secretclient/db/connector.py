"""The credential search behind every rotation-aware connection.

A :class:`Connector` logs in with the credentials of one secret. The hot path is the cached
``ACSCurrent`` version. When the server rejects it (1045/1698), the connector reads the store
again and tries only credentials it has not yet sent: a new ``ACSCurrent`` version, then
``ACSPending`` (a rotation between its "set" and "end" steps), then ``ACSPrevious`` (in
alternating-users rotation the previous account still works). A rejected (user, password) pair
is never sent again in the same search, except once more as ``ACSCurrent`` after the store
promoted it (the rotation has then changed the database), because MySQL's
FAILED_LOGIN_ATTEMPTS and MariaDB's max_password_errors lock accounts that repeat bad passwords.
Network and "too many connections" errors retry the same credentials with backoff (full
jitter). Everything happens inside the :class:`~secretclient.db.policy.RetryPolicy` budget.

The search is written once, without I/O of its own (:meth:`Connector.search`): a generator
that yields what it needs done (:class:`LoginRequest`, :class:`SleepRequest`,
:class:`StoreRequest`) and is resumed with the outcome. :func:`drive` performs them with
blocking calls; :mod:`secretclient.db.asyncio` awaits them instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql

from ..errors import InvalidParameter, SecretNotFound, StoreError
from ..model import CURRENT, DbCredentials, Secret
from ._mysql import MYSQL
from .classify import ErrorKind, classify
from .errors import (
    AccountUnavailable,
    Attempt,
    ClientMisconfigured,
    CredentialsRejected,
    DatabaseAccessDenied,
    DatabaseUnreachable,
    DbConnectError,
    SecretUnavailable,
    ServerBusy,
)
from .policy import RetryPolicy

if TYPE_CHECKING:
    from ..client import SecretClient

__all__ = [
    "Connector",
    "ConnectorStats",
    "Login",
    "LoginRequest",
    "SleepRequest",
    "Steps",
    "StoreRequest",
    "Translate",
    "drive",
]

log = logging.getLogger("secretclient.db")

#: Makes a connection from PyMySQL keyword arguments, like ``pymysql.connect`` (the default).
Login = Callable[..., Any]
#: Turns the PyMySQL keyword arguments of a login into another driver's (see :meth:`Connector.search`).
Translate = Callable[["Connector", dict[str, Any]], dict[str, Any]]

_FORBIDDEN_KWARGS = frozenset(("user", "password", "passwd"))
_MAX_REMEMBERED = 64  # parsed versions and retired versions kept per connector
_CONNECT_TIMEOUT = 10.0  # longest TCP connect, when the caller sets none (PyMySQL's default)


def _server(kw: Mapping[str, Any]) -> str | None:
    """Where a login went, for error messages: ``host:port`` or the socket path."""
    if kw.get("unix_socket"):
        return str(kw["unix_socket"])
    if kw.get("host"):
        return f"{kw['host']}:{kw.get('port', 3306)}"
    return None


@dataclass(frozen=True, slots=True)
class ConnectorStats:
    """Counters of one :class:`Connector` (totals since it was created).

    ``logins``: logins sent; ``rejected``: of those, refused for bad credentials;
    ``retries``: logins beyond the first within one ``connect``; ``store_reads``: forced store
    reads by the search; ``recovered``: connects that succeeded after a rejection;
    ``failures``: connects that raised; ``rollovers``: pooled connections dropped at checkout
    because their credential version was replaced.
    """

    connects: int = 0
    logins: int = 0
    rejected: int = 0
    retries: int = 0
    store_reads: int = 0
    recovered: int = 0
    failures: int = 0
    rollovers: int = 0


class Connector:
    """Logs in to MySQL/MariaDB with the credentials of ``secret``, surviving rotations.

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
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # the small state below
        # Lock-free counters: next() on an itertools.count is atomic under the GIL.
        self._counts = {f.name: itertools.count() for f in dataclasses.fields(ConnectorStats)}
        self._parsed: dict[str, DbCredentials] = {}
        self._current: str | None = None
        self._retired: dict[str, None] = {}  # insertion-ordered set
        # (ACSCurrent version that was rejected, credentials that worked instead): new logins
        # skip the known-bad version until the cache moves on.
        self._hint: tuple[str, DbCredentials, str] | None = None
        self._refresh_lock = threading.Lock()
        self._refresh_started: dict[str, float] = {}
        # The login arguments last built: (credentials, caller kwargs, arguments, translate).
        # One entry is enough for the usual one engine (or one set of kwargs) per connector.
        self._last_args: tuple[DbCredentials, dict[str, Any], _LoginArgs, Translate | None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

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
            old, self._current = self._current, version_id
            if old is not None and old != version_id:
                self._retired[old] = None
                self._retired.pop(version_id, None)  # a rollback makes a version current again
                while len(self._retired) > _MAX_REMEMBERED:
                    self._retired.pop(next(iter(self._retired)))
        if old is not None:
            log.info("secret %r: ACSCurrent is now version %r (was %r)", self.secret, version_id, old)

    @property
    def current_version(self) -> str | None:
        """The ``ACSCurrent`` VersionId this connector last saw."""
        return self._current

    def is_retired(self, version_id: str | None) -> bool:
        """Whether ``version_id`` was ``ACSCurrent`` and has since been replaced."""
        return version_id is not None and version_id in self._retired

    # -- stats ------------------------------------------------------------------------------

    def _count(self, field: str) -> None:
        next(self._counts[field])

    def note_rollover(self) -> None:
        """Count a pooled connection dropped because its version was replaced."""
        self._count("rollovers")

    def stats(self) -> ConnectorStats:
        # itertools.count shows its next value only in its repr: "count(N)".
        return ConnectorStats(**{k: int(repr(v)[6:-1]) for k, v in self._counts.items()})

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

    def credentials(self, stage: str = CURRENT) -> DbCredentials:
        """The (cached) credentials of ``stage``."""
        secret = self.client.get(self.secret, stage)
        if stage == CURRENT:
            self._note_current(secret.version_id)
        return self._credentials(secret)

    def _fresh(self, stage: str, since: float) -> DbCredentials | None:
        """The credentials of ``stage`` as the store has them now (None: no such stage).

        Single-flight per stage: a refresh that began after ``since`` (our failure) is as good
        as our own, so concurrent failing threads share one store read.
        """
        with self._refresh_lock:
            if self._refresh_started.get(stage, float("-inf")) < since:
                self._refresh_started[stage] = self._clock()
                self._count("store_reads")
                self.client.refresh(self.secret, stage)
            return self.credentials(stage)

    # -- logging in -------------------------------------------------------------------------

    def connect(self, kwargs: Mapping[str, Any] | None = None, login: Login | None = None) -> tuple[Any, DbCredentials]:
        """Log in and return ``(connection, credentials used)``.

        ``kwargs`` are PyMySQL keyword arguments (never ``user``/``password``: those come from
        the secret). Host, port and database come from the secret unless ``kwargs`` names them.
        ``login`` makes the connection (``pymysql.connect`` by default).
        """
        return drive(self.search(kwargs), login or pymysql.connect, self._sleep)

    def search(self, kwargs: Mapping[str, Any] | None = None, translate: Translate | None = None) -> Steps:
        """The search of one connect as a generator of requests, for a driver to perform.

        Send it the outcome of each request (or throw in the exception it raised); it returns
        ``(connection, credentials used)`` or raises a
        :class:`~secretclient.db.errors.DbConnectError`. ``kwargs`` as for :meth:`connect`;
        ``translate(connector, pymysql_kwargs)`` makes the login arguments fit another driver
        (called once per credential version and set of ``kwargs``, not per login).
        """
        if kwargs is None:
            kwargs = {}
        elif not _FORBIDDEN_KWARGS.isdisjoint(kwargs):
            bad = sorted(_FORBIDDEN_KWARGS.intersection(kwargs))
            raise InvalidParameter(
                f"do not pass {', '.join(bad)}: user and password come from the secret {self.secret!r}"
            )
        return _Search(self, kwargs, translate).steps()

    def _args(self, creds: DbCredentials, kwargs: Mapping[str, Any], translate: Translate | None) -> _LoginArgs:
        """The login arguments for ``creds`` and ``kwargs``, reused while neither changes (this
        is the hot path of every new pooled connection)."""
        last = self._last_args
        if last is not None and last[0] is creds and last[3] is translate and last[1] == kwargs:
            return last[2]
        built = self.build_kwargs(creds, kwargs)
        args = _LoginArgs(
            built if translate is None else translate(self, built),
            own_connect_timeout="connect_timeout" not in kwargs,
            handshake_timeout=self.policy.handshake_timeout if kwargs.get("read_timeout") is None else None,
        )
        self._last_args = (creds, dict(kwargs), args, translate)
        return args

    def build_kwargs(self, creds: DbCredentials, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """PyMySQL keyword arguments for ``creds`` on top of the caller's ``kwargs``."""
        return MYSQL.login_kwargs(creds, kwargs, secret=self.secret)


@dataclass(frozen=True, slots=True)
class _LoginArgs:
    """PyMySQL keyword arguments for one credential version and one set of caller kwargs.

    The timeouts that follow the remaining budget are added per login: a connect timeout when
    the caller set none, and ``handshake_timeout`` as a read timeout that bounds only the login
    and is taken off afterwards (None: the caller set a read timeout, or the policy wants none).
    """

    kwargs: dict[str, Any]
    own_connect_timeout: bool
    handshake_timeout: float | None


@dataclass(slots=True)  # not frozen: one per login, and a frozen __init__ costs ~0.3 us more
class LoginRequest:
    """Log in with ``kwargs`` (the driver's keyword arguments, a copy the driver may change);
    ``handshake``: the longest wait for each server reply during the login (the asyncio driver
    bounds the whole login with it), None: unbounded.
    Resume with the connection, or throw in the exception."""

    kwargs: dict[str, Any]
    handshake: float | None


@dataclass(frozen=True, slots=True)
class SleepRequest:
    """Wait ``seconds`` (a backoff) and resume with None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class StoreRequest:
    """Call ``fn(*args)``, which may read the secret store (blocking I/O), and resume with its
    result or throw in its exception."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


#: The search of one connect: yields requests, returns ``(connection, credentials used)``.
Steps = Generator[LoginRequest | SleepRequest | StoreRequest, Any, tuple[Any, DbCredentials]]


def drive(steps: Steps, login: Login, sleep: Callable[[float], None]) -> tuple[Any, DbCredentials]:
    """Perform the requests of ``steps`` with blocking calls: ``login(**kwargs)`` (a PyMySQL
    ``connect``), ``sleep(seconds)``, store reads in the calling thread."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        value = error = None
        try:
            if isinstance(request, LoginRequest):
                value = MYSQL.login_with(login, request.kwargs, request.handshake)
            elif isinstance(request, SleepRequest):
                sleep(request.seconds)
            else:
                value = request.fn(*request.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the search, which re-raises what it does not handle
            error = exc


_GO_ON = object()  # from _Search.offer: these credentials did not work, try the next ones


class _Search:
    """One ``connect``: the candidates, the attempts, the budget."""

    __slots__ = (
        "attempts",
        "c",
        "deadline",
        "kwargs",
        "last_kind",
        "policy",
        "rejected",
        "rejected_at",
        "start",
        "store_notes",
        "translate",
    )

    def __init__(self, connector: Connector, kwargs: Mapping[str, Any], translate: Translate | None) -> None:
        self.c = connector
        self.policy = connector.policy
        self.kwargs = kwargs
        self.translate = translate
        self.start = connector._clock()
        self.deadline = self.start + self.policy.total
        self.attempts: list[Attempt] = []
        self.rejected: dict[tuple[str, str], set[str]] = {}
        self.store_notes: list[str] = []
        self.last_kind: ErrorKind | None = None
        self.rejected_at = self.start

    # -- budget -----------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - self.c._clock()

    def can_send(self) -> bool:
        return len(self.attempts) < self.policy.max_attempts and self.remaining() > 0

    def wait(self, attempt: int) -> Generator[SleepRequest, Any, bool]:
        """Back off before retry ``attempt``; False when the budget does not allow it."""
        delay = min(self.policy.backoff.delay(attempt, self.c._rng), self.remaining())
        if delay < 0 or not self.can_send():
            return False
        if delay > 0:
            yield SleepRequest(delay)
        return self.can_send()

    # -- candidates -------------------------------------------------------------------------

    def first(self, secret: Secret) -> tuple[DbCredentials, str]:
        """The credentials of the ``ACSCurrent`` ``secret``, or those that worked instead of them."""
        c = self.c
        if secret.version_id != c._current:
            c._note_current(secret.version_id)
        first = c._credentials(secret)
        hint = c._hint
        if hint is not None and hint[0] == first.version_id:
            return hint[1], hint[2]
        return first, CURRENT

    def unavailable(self, exc: StoreError) -> SecretUnavailable:
        c = self.c
        return SecretUnavailable(
            f"secret {c.secret!r}: cannot read its credentials from the store ({type(exc).__name__}"
            f"{', code=' + exc.code if exc.code else ''})",
            errno=2000, secret=c.secret,
        )

    def after(self, first: DbCredentials) -> Generator[Any, Any, tuple[Any, DbCredentials] | None]:
        """Try what is left after ``first`` was rejected: ``(connection, credentials)``, or
        None when nothing worked within the budget."""
        c = self.c
        if first.version_id != c._current:  # ``first`` was a hint: the cached ACSCurrent is next
            found = yield from self.offer(c.credentials(CURRENT), CURRENT)
            if found is not _GO_ON:
                return found
        for round_no in range(self.policy.rounds):
            if round_no > 0 and not (yield from self.wait(round_no - 1)):
                return None
            since = self.rejected_at if round_no == 0 else c._clock()
            for stage in self.policy.stages:
                creds = yield from self.fresh(stage, since)
                if creds is not None:
                    found = yield from self.offer(creds, stage)
                    if found is not _GO_ON:
                        return found
        return None

    def offer(self, creds: DbCredentials, stage: str) -> Generator[Any, Any, Any]:
        """Log in with ``creds`` unless they were rejected already: ``(connection, creds)``,
        ``_GO_ON`` (rejected, or skipped), or None (out of budget: stop)."""
        if not self.allowed(creds, stage):
            return _GO_ON
        if not self.can_send():
            return None
        conn = yield from self.try_login(creds, stage)
        if conn is None:
            return _GO_ON
        self.succeeded(creds, stage)
        return conn, creds

    def fresh(self, stage: str, since: float) -> Generator[StoreRequest, Any, DbCredentials | None]:
        try:
            return (yield StoreRequest(self.c._fresh, (stage, since)))  # type: ignore[no-any-return]
        except SecretNotFound:
            return None  # no such stage right now (no rotation in progress)
        except StoreError as exc:
            note = f"{stage}: {type(exc).__name__}" + (f" {exc.code}" if exc.code else "")
            if note not in self.store_notes:
                self.store_notes.append(note)
            return None

    def allowed(self, creds: DbCredentials, stage: str) -> bool:
        stages = self.rejected.get((creds.account_name, creds.account_password))
        # A rejected password is sent once more only after the store promoted it to ACSCurrent.
        return stages is None or (stage == CURRENT and CURRENT not in stages)

    # -- the search -------------------------------------------------------------------------

    def steps(self) -> Steps:
        c = self.c
        try:
            try:
                if c._current is None:  # nothing read yet: the cache is likely cold (a store read)
                    secret = yield StoreRequest(c.client.get, (c.secret,))
                else:  # the hot path: a cache hit, no request
                    secret = c.client.get(c.secret)
            except SecretNotFound:
                raise
            except StoreError as exc:
                raise self.unavailable(exc) from exc
            first, stage = self.first(secret)
            conn = yield from self.try_login(first, stage)
            if conn is not None:
                next(c._counts["connects"])
                return conn, first
            found = yield from self.after(first)
        except BaseException:
            c._count("failures")
            raise
        if found is not None:
            return found  # type: ignore[no-any-return]
        c._count("failures")
        raise self.final_error()

    def try_login(self, creds: DbCredentials, stage: str) -> Generator[Any, Any, Any]:
        """Log in with ``creds``, retrying network/busy errors; None when they were rejected."""
        c = self.c
        args = c._args(creds, self.kwargs, self.translate)
        transient = 0
        while True:
            started = c._clock()
            remaining = max(self.deadline - started, 0.001)
            kw = args.kwargs.copy()  # the login's own copy: the cached one stays as it is
            if args.own_connect_timeout:
                kw["connect_timeout"] = min(_CONNECT_TIMEOUT, remaining)
            handshake = None if args.handshake_timeout is None else min(args.handshake_timeout, remaining)
            next(c._counts["logins"])
            if self.attempts:
                c._count("retries")
            try:
                return (yield LoginRequest(kw, handshake))
            except Exception as exc:
                verdict = classify(exc)
                self.attempts.append(Attempt(creds.version_id, stage, creds.account_name, verdict.kind,
                                             verdict.errno, _server(kw)))
                self.last_kind = verdict.kind
                log.debug("secret %r version %r (%s) login failed: %s %s", c.secret, creds.version_id,
                          stage, verdict.kind.value, verdict.errno)
                if verdict.kind is ErrorKind.BAD_CREDENTIALS:
                    c._count("rejected")
                    self.rejected.setdefault((creds.account_name, creds.account_password), set()).add(stage)
                    self.rejected_at = started
                    return None
                if (verdict.kind is ErrorKind.NETWORK and self.policy.retry_network) or (
                    verdict.kind is ErrorKind.SERVER_BUSY and self.policy.retry_busy
                ):
                    if (yield from self.wait(transient)):
                        transient += 1
                        continue
                    raise self.final_error() from exc
                if verdict.kind is ErrorKind.OTHER:
                    raise
                raise self.final_error() from exc

    def succeeded(self, creds: DbCredentials, stage: str) -> None:
        c = self.c
        c._count("connects")
        rejected = [a for a in self.attempts if a.kind is ErrorKind.BAD_CREDENTIALS]
        if rejected:
            c._count("recovered")
            log.info("secret %r: logged in with version %r (%s) after %d rejected login(s)",
                     c.secret, creds.version_id, stage, len(rejected))
            first = self.attempts[0]
            if first.stage == CURRENT and first.kind is ErrorKind.BAD_CREDENTIALS and first.version_id:
                with c._lock:
                    c._hint = (first.version_id, creds, stage)

    def final_error(self) -> DbConnectError:
        c = self.c
        elapsed = c._clock() - self.start
        kind = self.last_kind
        cls: type[DbConnectError]
        if kind is ErrorKind.BAD_CREDENTIALS or kind is None:
            cls, what = CredentialsRejected, (
                "the database rejected every credential the secret's stages offered; "
                "the secret's user or password does not match the database"
            )
        elif kind is ErrorKind.ACCOUNT_UNAVAILABLE:
            cls, what = AccountUnavailable, "the account is locked, expired or blocked; an administrator must unlock it"
        elif kind is ErrorKind.SERVER_BUSY:
            cls, what = ServerBusy, "the server refused for too many connections"
        elif kind is ErrorKind.NETWORK:
            cls, what = DatabaseUnreachable, "the database could not be reached"
        elif kind is ErrorKind.ACCESS:
            cls, what = DatabaseAccessDenied, "logged in but the account may not use the database (grants or DBName)"
        else:
            cls, what = ClientMisconfigured, (
                "the client is misconfigured (TLS verification, TLS required, or a missing auth "
                "dependency such as cryptography or PyNaCl)"
            )
        errno = next((a.errno for a in reversed(self.attempts) if a.errno is not None), None)
        tried = "; ".join(a.describe() for a in self.attempts) or "nothing (no credentials found)"
        message = (f"secret {c.secret!r}: {what}. {len(self.attempts)} login(s) in {elapsed:.2f} s; "
                   f"tried {tried}")
        if self.store_notes:
            message += f"; store errors: {', '.join(self.store_notes)}"
        log.warning("%s", message)
        return cls(message, errno=errno or (1045 if cls is CredentialsRejected else 2003),
                   secret=c.secret, attempts=tuple(self.attempts))

