"""The credential search of one connect, without I/O of its own.

:class:`CredentialSearch` is a generator of requests: it yields what it needs done
(:class:`LoginRequest`, :class:`SleepRequest`, :class:`StoreRequest`) and is resumed with the
outcome (or has the exception thrown in). :func:`drive` performs the requests with blocking
calls; :mod:`secretclient.db.asyncio` awaits them. The search sees its connector only through a
:class:`SearchView`: what it may read (cached and fresh credentials, the login arguments, the
clock) and record (counters, the hint) — so it can be driven in tests with scripted login errors
and a fake clock.

The order: the cached CURRENT version; when the server rejects it (1045/1698), the store is read
again and only credentials not yet sent are tried: a new CURRENT version, then PENDING (a
rotation between its "set" and "end" steps), then PREVIOUS (in alternating-users rotation the
previous account still works). A rejected (user, password) pair is not sent again, except once
more as CURRENT after the store promoted it, or (rejected as PENDING) after the process saw the
database change (see :mod:`secretclient.db._gate`):
MySQL's FAILED_LOGIN_ATTEMPTS and MariaDB's max_password_errors lock accounts that repeat bad
passwords. Network and "too many connections" errors retry the same credentials with backoff
(full jitter). A fleet's instances are all rejected by one rotation: the first store read after
a rejection waits a random ``refresh_jitter``, and a throttled or unavailable store is read again
after ``store_backoff`` (its step kept per connector) rather than failing the connect.
Everything happens inside the :class:`~secretclient.db.policy.RetryPolicy` budget.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, cast

from ..errors import SecretNotFound, StoreError, StoreUnavailable, Throttled
from ..model import DbCredentials, Secret, Stage, StageLabels
from ._family import DbFamily
from ._gate import Admission, Flight, LoginGate, Outcome
from .classify import ErrorKind
from .errors import (
    Attempt,
    CredentialsRejected,
    DbConnectError,
    SecretUnavailable,
    describe_attempts,
    gave_up,
    network_cause,
)
from .policy import RetryPolicy

__all__ = [
    "CredentialSearch",
    "Login",
    "LoginArgs",
    "LoginRequest",
    "SearchView",
    "SleepRequest",
    "Steps",
    "StoreRequest",
    "Translate",
    "WaitRequest",
    "drive",
]

log = logging.getLogger("secretclient.db")

#: Makes a connection from the family's keyword arguments, like ``pymysql.connect``.
Login = Callable[..., Any]
#: Turns the PyMySQL keyword arguments of a login into another driver's: ``translate(secret, kwargs)``.
Translate = Callable[[str, dict[str, Any]], dict[str, Any]]

_LAST_READ = 0.1  # seconds of the budget kept for a store read after the last backoff
_CONNECT_TIMEOUT = 10.0  # longest TCP connect, when the caller sets none (PyMySQL's default)


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


@dataclass(frozen=True, slots=True)
class WaitRequest:
    """Wait at most ``seconds`` for ``flight`` (another login with the same credential) to
    end; resume with True when it did, False on timeout."""

    flight: Flight
    seconds: float


#: The search of one connect: yields requests, returns ``(connection, credentials used)``.
Steps = Generator[LoginRequest | SleepRequest | StoreRequest | WaitRequest, Any, tuple[Any, DbCredentials]]


@dataclass(frozen=True, slots=True)
class LoginArgs:
    """Login arguments for one credential version and one set of caller kwargs.

    The timeouts that follow the remaining budget are added per login: a connect timeout when
    the caller set none, and ``handshake_timeout`` as a read timeout that bounds only the login
    and is taken off afterwards (None: the caller set a read timeout, or the policy wants none).
    ``server``: where the login goes, for messages; ``gate_key``: the credential's name in the
    process's :class:`~secretclient.db._gate.LoginGate`.
    """

    kwargs: dict[str, Any]
    own_connect_timeout: bool
    handshake_timeout: float | None
    server: str | None
    gate_key: bytes


class SearchView(Protocol):
    """What a search may see of, and tell, the connector it runs for."""

    secret: str
    policy: RetryPolicy
    labels: StageLabels
    family: DbFamily
    gate: LoginGate
    clock: Callable[[], float]
    rng: random.Random

    def cached_current(self) -> Secret | None:
        """The cached CURRENT version when it was read before (a cache lookup), else None."""

    def read_current(self) -> Secret:
        """The CURRENT version, through the cache (a store read when the cache is cold)."""

    def credentials(self, secret: Secret) -> DbCredentials:
        """``secret`` parsed (once per version); notes it as CURRENT when it is."""

    def cached(self, stage: str) -> DbCredentials:
        """The cached credentials of the store label ``stage``."""

    def fresh(self, stage: str, since: float) -> DbCredentials:
        """The credentials of the store label ``stage`` as the store has them now (blocking;
        a read that began after ``since`` is shared). Raises the store's typed error."""

    def login_args(self, creds: DbCredentials, kwargs: Mapping[str, Any], translate: Translate | None) -> LoginArgs:
        """Login arguments for ``creds`` on top of the caller's ``kwargs``, translated for
        another driver by ``translate`` (when given)."""

    def store_failures(self) -> int:
        """Forced store reads in a row that were throttled or unavailable (0 after one worked)."""

    def hint(self, current_version: str) -> tuple[DbCredentials, str] | None:
        """Credentials that worked (and their stage) after ``current_version`` was rejected."""

    def remember(self, rejected_version: str, creds: DbCredentials, stage: str) -> None:
        """Note that ``creds`` worked after CURRENT ``rejected_version`` was rejected."""

    def count(self, *fields: str) -> None:
        """Add one to each counter ``fields`` of :class:`~secretclient.db.ConnectorStats`."""

    def count_landed(self) -> object:
        """Count a connect whose first login worked: one login, one connect (the usual case)."""

    def count_at(self, field: str, stage: str) -> None:
        """Add one to the counter ``field``, also counted for the store label ``stage``."""


def drive(steps: Steps, login: Login, sleep: Callable[[float], None], family: DbFamily) -> tuple[Any, DbCredentials]:
    """Perform the requests of ``steps`` with blocking calls: logins through
    ``family.login_with(login, ...)`` (``login``: ``pymysql.connect``, ``psycopg.connect`` or the
    caller's), ``sleep(seconds)``, store reads in the calling thread."""
    login_with = family.login_with
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
                value = login_with(login, request.kwargs, request.handshake)
            elif isinstance(request, SleepRequest):
                sleep(request.seconds)
            elif isinstance(request, WaitRequest):
                value = request.flight.wait(request.seconds)
            else:
                value = request.fn(*request.args)
        except BaseException as exc:
            error = exc


_OUTCOME = {ErrorKind.BAD_CREDENTIALS: Outcome.REJECTED, ErrorKind.ACCOUNT_UNAVAILABLE: Outcome.UNAVAILABLE}
# Counters of one login, added at once: sent (and connected), beyond the first of its connect.
_CONNECTED, _CONNECTED_RETRY = ("logins", "connects"), ("logins", "connects", "retries")
_FAILED, _FAILED_RETRY = ("logins",), ("logins", "retries")
# Enum members read through the class cost ~0.1 us each on Python 3.11: the hot path reads these.
_CURRENT, _GO, _SKIP = Stage.CURRENT, Admission.GO, Admission.SKIP
_OK, _UNKNOWN = Outcome.OK, Outcome.UNKNOWN
_GO_ON = object()  # from CredentialSearch.offer: these credentials did not work, try the next ones


class CredentialSearch:
    """One ``connect``: the candidates, the attempts, the budget."""

    # What a search records when something fails, empty until then: class defaults, so a connect
    # whose first login works (nearly all of them) sets none of it.
    attempts: tuple[Attempt, ...] = ()
    skipped: tuple[str, ...] = ()  # credentials not sent: rejected before, in this process
    current_rejected: str | None = None  # the CURRENT version rejected last, if any
    store_notes: tuple[str, ...] = ()
    store_gave_up = False  # the store throttled past the budget: read no other stage
    store_last_read = False  # the next store read is the last the budget allows
    last_kind: ErrorKind | None = None
    sent: tuple[DbCredentials, LoginArgs]  # the login of first(), once it is sent

    def __init__(self, view: SearchView, kwargs: Mapping[str, Any], translate: Translate | None = None) -> None:
        self.view = view
        self.translate = translate
        self.policy = view.policy
        self.kwargs = kwargs
        self.start = self.rejected_at = view.clock()
        self.deadline = self.start + self.policy.total

    # -- budget -----------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - self.view.clock()

    def can_send(self) -> bool:
        return len(self.attempts) < self.policy.max_attempts and self.remaining() > 0

    def wait(self, attempt: int) -> Generator[SleepRequest, Any, bool]:
        """Back off before retry ``attempt``; False when the budget does not allow it."""
        delay = min(self.policy.backoff.delay(attempt, self.view.rng), self.remaining())
        if delay < 0 or not self.can_send():
            return False
        if delay > 0:
            yield SleepRequest(delay)
        return self.can_send()

    # -- candidates -------------------------------------------------------------------------

    def unavailable(self, exc: StoreError) -> SecretUnavailable:
        secret = self.view.secret
        return SecretUnavailable(
            f"secret {secret!r}: cannot read its credentials from the store ({type(exc).__name__}"
            f"{', code=' + exc.code if exc.code else ''})",
            errno=2000, secret=secret,
        )

    def after(self, current: DbCredentials | None) -> Generator[Any, Any, tuple[Any, DbCredentials] | None]:
        """Try what is left after the first login was rejected: the cached CURRENT
        ``current`` (when the first login used a hint instead), then the stages of the policy.
        ``(connection, credentials)``, or None when nothing worked within the budget."""
        view = self.view
        if current is not None:
            found = yield from self.offer(current, view.labels.current)
            if found is not _GO_ON:
                return cast("tuple[Any, DbCredentials] | None", found)
        labels = view.labels
        for round_no in range(self.policy.rounds):
            if round_no > 0 and (self.store_gave_up or not (yield from self.wait(round_no - 1))):
                return None
            if round_no == 0:
                yield from self.jitter()
            since = self.rejected_at if round_no == 0 else view.clock()
            for wanted in self.policy.stages:
                label = labels.label(wanted)
                creds = yield from self.fresh(label, since)
                if creds is not None:
                    found = yield from self.offer(creds, label)
                    if found is not _GO_ON:
                        return cast("tuple[Any, DbCredentials] | None", found)
        return None

    def offer(self, creds: DbCredentials, stage: str) -> Generator[Any, Any, Any]:
        """Log in with ``creds`` unless they were rejected already: ``(connection, creds)``,
        ``_GO_ON`` (rejected, or skipped), or None (out of budget: stop)."""
        if not self.can_send():
            return None
        conn = yield from self.try_login(creds, stage)
        if conn is None:
            return _GO_ON
        self.succeeded(creds, stage)
        return conn, creds

    def fresh(self, stage: str, since: float) -> Generator[StoreRequest | SleepRequest, Any, DbCredentials | None]:
        """The credentials of ``stage`` read after ``since``; a throttled or unavailable store
        is read again after a jittered backoff, within the budget (a read another search of
        this connector starts meanwhile is shared)."""
        while True:
            if self.store_gave_up or self.remaining() <= 0:
                return None
            try:
                return (yield StoreRequest(self.view.fresh, (stage, since)))  # type: ignore[no-any-return]
            except SecretNotFound:
                return None  # no such stage right now (no rotation in progress)
            except StoreError as exc:
                note = f"{stage}: {type(exc).__name__}" + (f" {exc.code}" if exc.code else "")
                if note not in self.store_notes:
                    self.store_notes += (note,)
                if not isinstance(exc, (Throttled, StoreUnavailable)):
                    return None
            since = self.view.clock()
            # The connector's count, not ours: across stages and connects, the store is
            # throttling this whole instance, and a new connect must not start afresh at it.
            attempt = max(self.view.store_failures() - 1, 0)
            # A wait past the budget is cut short so that one last read fits; after that read
            # (or with no room left), give up.
            room = self.remaining() - _LAST_READ
            if self.store_last_read or room <= 0:
                self.store_gave_up = True
                return None
            delay = self.policy.store_backoff.delay(attempt, self.view.rng)
            if delay >= room:
                delay, self.store_last_read = room, True
            yield SleepRequest(delay)

    def jitter(self) -> Generator[SleepRequest, Any, None]:
        """A random wait before the first store read after a rejection (see ``refresh_jitter``)."""
        delay = min(self.view.rng.uniform(0.0, self.policy.refresh_jitter), self.remaining())
        if delay > 0:
            yield SleepRequest(delay)

    # -- the search -------------------------------------------------------------------------
    #
    # Nearly every connect is one login with the cached CURRENT credentials. A blocking driver
    # makes that login without running the generator (first, then landed or steps(failure));
    # steps() is the whole search, and takes over after a failed first login.

    def first(self) -> LoginRequest | None:
        """The first login, when it can be sent at once: CURRENT is cached (no store read), no
        hint replaces it, and the gate lets it go. The caller performs it, then calls
        :meth:`landed` (it worked), ``steps(failure)`` (it raised an Exception) or
        :meth:`abandoned` (cancelled). None: run :meth:`steps` from the start instead."""
        view = self.view
        try:
            secret = view.cached_current()
        except BaseException as exc:
            view.count("failures")
            self.unreadable(exc)
        if secret is None or view.hint(secret.version_id) is not None:
            return None
        creds = view.credentials(secret)
        args = view.login_args(creds, self.kwargs, self.translate)
        # The search's start is the login's: the budget is whole, and the clock is read once.
        if view.gate.admit(args.gate_key, _CURRENT, self.start, self.policy.concurrent_logins)[0] is not _GO:
            return None  # the gate says wait or skip: steps() asks it again and does so
        self.sent = (creds, args)
        return self.request(args, self.start)

    def landed(self, conn: Any) -> tuple[Any, DbCredentials]:
        """The login of :meth:`first` worked: ``(conn, credentials)``."""
        creds, args = self.sent
        self.view.gate.settle(args.gate_key, _OK, _CURRENT, self.start, 0.0)
        self.view.count_landed()
        return conn, creds

    def abandoned(self) -> None:
        """The login of :meth:`first` was cancelled (KeyboardInterrupt, task cancelled)."""
        self.cancelled(self.sent[1], _CURRENT, False)
        self.view.count("failures")

    def steps(self, failure: Exception | None = None) -> Steps:
        """The whole search as a generator of requests (see the module's documentation).
        ``failure``: what the login of :meth:`first`, made by the caller, raised; the search
        goes on from there."""
        view = self.view
        try:
            if failure is None:
                try:
                    secret = view.cached_current()  # a cache hit, no request
                    if secret is None:  # nothing read yet: the cache is likely cold (a store read)
                        secret = yield StoreRequest(view.read_current, ())
                except BaseException as exc:
                    self.unreadable(exc)
                current = view.credentials(secret)
                # Credentials that worked after this CURRENT version was rejected, if any.
                hint = view.hint(secret.version_id)
                role: str
                after_hint: DbCredentials | None = None  # CURRENT, offered when the hint fails
                if hint is None:
                    first, stage, role = current, view.labels.current, _CURRENT
                else:
                    (first, stage), after_hint = hint, current
                    role = view.labels.role(stage) or stage
                conn = yield from self.try_login(first, stage, role)
            else:
                first, after_hint = self.sent[0], None
                conn = yield from self.try_login(first, view.labels.current, _CURRENT, failure)
            if conn is not None:
                return conn, first
            found = yield from self.after(after_hint)
        except BaseException:
            view.count("failures")
            raise
        if found is not None:
            return found
        view.count("failures")
        raise self.final_error()

    def unreadable(self, exc: BaseException) -> NoReturn:
        """Raise what a connect raises when reading CURRENT raised ``exc``."""
        if isinstance(exc, StoreError) and not isinstance(exc, SecretNotFound):
            raise self.unavailable(exc) from exc
        raise exc

    def request(self, args: LoginArgs, started: float) -> LoginRequest:
        """The login with ``args`` sent at ``started``: the timeouts follow the budget left."""
        remaining = self.deadline - started
        if remaining < 0.001:
            remaining = 0.001
        kw = args.kwargs.copy()  # the login's own copy: the cached one stays as it is
        if args.own_connect_timeout:
            kw["connect_timeout"] = _CONNECT_TIMEOUT if remaining > _CONNECT_TIMEOUT else remaining
        handshake = args.handshake_timeout
        if handshake is not None and handshake > remaining:
            handshake = remaining
        return LoginRequest(kw, handshake)

    def cancelled(self, args: LoginArgs, role: str, retry: bool) -> None:
        """A login ended neither way (cancelled, or the search closed): the waiting logins go on."""
        self.view.gate.settle(args.gate_key, _UNKNOWN, role, self.view.clock(), 0.0)
        self.view.count(*(_FAILED_RETRY if retry else _FAILED))

    def try_login(self, creds: DbCredentials, stage: str, role: str | None = None,
                  failure: Exception | None = None) -> Generator[Any, Any, Any]:
        """Log in with ``creds`` found as the store label ``stage`` (of ``role``), retrying
        network/busy errors; None when they were rejected (by the server now, or before: then
        they are not sent). ``failure``: the first login with them was made (by :meth:`first`)
        and raised it."""
        view = self.view
        args = view.login_args(creds, self.kwargs, self.translate)
        if role is None:
            role = view.labels.role(stage) or stage
        gate = view.gate
        transient = 0
        while True:
            if failure is None:
                started = view.clock()
                admission, flight = gate.admit(args.gate_key, role, started, self.policy.concurrent_logins)
                if flight is not None:  # other logins with these credentials are in flight: wait
                    if not (yield WaitRequest(flight, max(self.remaining(), 0.0))):
                        self.last_kind = self.last_kind or ErrorKind.NETWORK  # the logins in flight hang
                        raise self.final_error()
                    if flight.outcome is Outcome.REJECTED:
                        self.skip(creds, stage, args.server, flight.started)
                        return None
                    if flight.outcome is Outcome.UNAVAILABLE:
                        self.last_kind = ErrorKind.ACCOUNT_UNAVAILABLE
                        self.attempts += (Attempt(creds.version_id, stage, creds.account_name,
                                                  ErrorKind.ACCOUNT_UNAVAILABLE, flight.errno, args.server),)
                        raise self.final_error()
                    continue  # a place is free: ask again
                if admission is _SKIP:
                    self.skip(creds, stage, args.server, started)
                    return None
                retry = bool(self.attempts)
                try:
                    conn = yield self.request(args, started)
                except Exception as exc:
                    failure = exc
                except BaseException:  # cancelled, or the search closed: the waiting logins go on
                    self.cancelled(args, role, retry)
                    raise
                else:
                    gate.settle(args.gate_key, _OK, role, started, 0.0)
                    view.count(*(_CONNECTED_RETRY if retry else _CONNECTED))
                    return conn
            else:  # made by first(), at the search's start
                started, retry = self.start, False
            view.count(*(_FAILED_RETRY if retry else _FAILED))
            verdict = view.family.classify(failure)
            kind = verdict.kind
            gate.settle(args.gate_key, _OUTCOME.get(kind, _UNKNOWN), role, view.clock(),
                        self.policy.remember_rejected, verdict.errno)
            cause = network_cause(failure) if kind is ErrorKind.NETWORK else None
            self.attempts += (Attempt(creds.version_id, stage, creds.account_name, kind,
                                      verdict.errno, args.server, cause),)
            self.last_kind = kind
            log.debug("secret %r version %r (%s) login failed: %s %s", view.secret, creds.version_id,
                      stage, kind.value, verdict.errno)
            if kind is ErrorKind.BAD_CREDENTIALS:
                view.count_at("rejected", stage)
                self.note_rejected(creds, stage, started)
                return None
            if (kind is ErrorKind.NETWORK and self.policy.retry_network) or (
                kind is ErrorKind.SERVER_BUSY and self.policy.retry_busy
            ):
                if (yield from self.wait(transient)):
                    transient += 1
                    failure = None
                    continue
                raise self.final_error() from failure
            if kind is ErrorKind.OTHER:
                raise failure
            raise self.final_error() from failure

    def note_rejected(self, creds: DbCredentials, stage: str, at: float) -> None:
        self.rejected_at = at
        if stage == self.view.labels.current:
            # The latest: a fresh read of CURRENT caches its version, and the hint must be
            # found under the version cached now, or every later connect reads the store again.
            self.current_rejected = creds.version_id

    def skip(self, creds: DbCredentials, stage: str, server: str | None, rejected_at: float) -> None:
        """``creds`` were rejected by the server before (another login of this process)."""
        self.view.count("skipped")
        where = f" at {server}" if server else ""
        note = f"version {creds.version_id!r} ({stage}, user {creds.account_name!r}{where}): not sent, rejected before"
        if note not in self.skipped:
            self.skipped += (note,)
        self.last_kind = self.last_kind or ErrorKind.BAD_CREDENTIALS
        self.note_rejected(creds, stage, rejected_at)

    def succeeded(self, creds: DbCredentials, stage: str) -> None:
        view = self.view
        rejected = sum(a.kind is ErrorKind.BAD_CREDENTIALS for a in self.attempts)
        if rejected or self.skipped:
            view.count_at("recovered", stage)
            log.info("secret %r: logged in with version %r (%s) after %d rejected login(s), %d not sent",
                     view.secret, creds.version_id, stage, rejected, len(self.skipped))
            if self.current_rejected is not None:
                view.remember(self.current_rejected, creds, stage)

    def final_error(self) -> DbConnectError:
        secret = self.view.secret
        elapsed = self.view.clock() - self.start
        kind = self.last_kind
        cls, what = gave_up(kind)
        errno = next((a.errno for a in reversed(self.attempts) if a.errno is not None), None)
        tried = "; ".join([*describe_attempts(self.attempts), *self.skipped]) or "nothing (no credentials found)"
        message = (f"secret {secret!r}: {what}. {len(self.attempts)} login(s) in {elapsed:.2f} s; "
                   f"tried {tried}")
        if self.store_notes:
            message += f"; store errors: {', '.join(self.store_notes)}"
        # The exception carries the attempts; the log line only marks the event, so a program that
        # logs and prints the exception does not show the whole message twice.
        log.warning("secret %r: %s (%d login(s), listed in the %s)", secret, what, len(self.attempts), cls.__name__)
        return cls(message, errno=errno or (1045 if cls is CredentialsRejected else 2003),
                   secret=secret, attempts=self.attempts)
