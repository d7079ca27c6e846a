"""The rotation state machine: new → set → test → end, resumable, locked and fenced.

Invariants kept here (see docs/rotation.md):

* the database is changed only after the new password is stored as PENDING;
* nothing is promoted to CURRENT before it logged in (``end`` checks again when it was not
  preceded by ``test`` in the same process);
* a rotation that was interrupted is resumed with its stored PENDING password, never a new one;
* CURRENT moves with a compare-and-set on the version it was read from, under a lock that
  is re-checked at every step.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from secretclient.errors import SecretClientError, SecretNotFound, VersionConflict
from secretclient.model import Secret, Stage, StageLabels, stage_labels
from secretclient.stores.base import SecretStore

from ._dry_run import Plan, make_plan
from ._next_rotation import record_next_rotation
from .errors import (
    AccountInUse,
    InvalidRotationSetup,
    LoginFailed,
    RotationConflict,
    RotationInProgress,
)
from .events import Events, Listener, RotationEvent, SessionRows
from .lock import Lock, LockHandle, MySqlLock
from .status import Status, make_status, stage_holder
from .store_retry import RetryingStore, StoreRetryPolicy
from .strategies.base import RotationContext, Strategy

__all__ = ["STEPS", "AbortResult", "RotationResult", "Rotator"]

STEPS = ("new", "set", "test", "end")

log = logging.getLogger("rotation")

_T = TypeVar("_T")

#: Called at named points ("set:start", "set:mid", "end:mid", …); raising stops the step.
Checkpoint = Callable[[str], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RotationResult:
    """What :meth:`Rotator.rotate` did. ``rotated`` is False when the secret was not due."""

    secret_name: str
    rotated: bool
    version_id: str
    previous_version_id: str | None = None
    resumed: bool = False
    duration: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AbortResult:
    """What :meth:`Rotator.abort` did."""

    secret_name: str
    removed_version_id: str | None
    reason: str = ""


class Rotator:
    """Rotates secrets held in ``store`` with ``strategy``.

    :param lock: a :class:`~rotation.lock.Lock`; default: ``GET_LOCK`` on the database through
        the strategy (:class:`~rotation.lock.MySqlLock`).
    :param client: a :class:`secretclient.SecretClient`; after a promotion it gets the new
        CURRENT through ``publish()``, so this process switches without waiting for its TTL.
    :param listeners: callables receiving every :class:`~rotation.events.RotationEvent`.
    :param clock: returns the current UTC time (events; grace periods and due times only when
        the store cannot tell its own time, see :meth:`store_now`).
    :param monotonic: monotonic seconds (carries the store's time forward between its writes).
    :param checkpoint: called at named points inside steps (tests pause or kill there).
    :param store_retry: how store calls failing transiently (throttled, unavailable, timed out)
        are retried within a step (:class:`~rotation.store_retry.StoreRetryPolicy`).
    :param sleep: waits between those retries (injected in tests).
    :param lock_timeout: seconds to wait for the lock before :class:`RotationInProgress`.
    :param rotation_interval: how often something outside this Rotator (a timer, cron) rotates;
        with it, each promotion records the next rotation (the store's time + interval) where
        the store keeps it (``record_next_rotation``), so clients elsewhere refresh then. A
        :class:`~rotation.scheduler.Scheduler` records its own due times: leave this out there.
    """

    def __init__(
        self,
        store: SecretStore,
        *,
        strategy: Strategy,
        lock: Lock | None = None,
        client: Any = None,
        listeners: Iterable[Listener] = (),
        clock: Callable[[], datetime] = _utc_now,
        checkpoint: Checkpoint | None = None,
        lock_timeout: float = 0.0,
        version_ids: Callable[[], str] = lambda: uuid.uuid4().hex,
        monotonic: Callable[[], float] = time.monotonic,
        store_retry: StoreRetryPolicy = StoreRetryPolicy(),  # noqa: B008 - frozen, safe to share
        sleep: Callable[[float], None] = time.sleep,
        rotation_interval: timedelta | None = None,
    ) -> None:
        if not isinstance(store_retry, StoreRetryPolicy):
            raise InvalidRotationSetup("store_retry must be a rotation.StoreRetryPolicy")
        if rotation_interval is not None and (not isinstance(rotation_interval, timedelta)
                                              or rotation_interval <= timedelta(0)):
            raise InvalidRotationSetup("rotation_interval must be a positive timedelta")
        self.rotation_interval = rotation_interval
        self.store = store
        # Every store call of a step goes through this view: transient failures are retried.
        self._store = RetryingStore(store, store_retry, sleep=sleep, monotonic=monotonic, on_retry=self._retrying)
        #: The store's own labels for the three roles (messages name them as the store does).
        self.labels: StageLabels = stage_labels(store)
        self.strategy = strategy
        if lock is None and hasattr(strategy, "lock"):
            lock = strategy.lock(store)  # a strategy with its own lock (PostgreSQL, RDS API, by engine)
        if lock is None:
            connector = getattr(strategy, "lock_connection", None)
            if connector is None:
                raise InvalidRotationSetup("give lock=: the strategy cannot make a database lock")
            # GET_LOCK waits in slices shorter than the read timeout, which would cut a long wait short.
            options = getattr(strategy, "connect_options", None)
            read_timeout = getattr(options, "read_timeout", 15.0)
            lock = MySqlLock(lambda name: connector(self._store, name), wait_slice=min(5.0, read_timeout / 2))
        self.lock = lock
        self.client = client
        self.events = Events(listeners)
        self.clock = clock
        self._checkpoint = checkpoint
        self.lock_timeout = lock_timeout
        self._version_ids = version_ids
        self._monotonic = monotonic
        # (store time, monotonic time) of this rotator's last write the store timestamped.
        self._store_anchor: tuple[datetime, float] | None = None

    def __repr__(self) -> str:
        return f"Rotator(store={self.store!r}, strategy={self.strategy!r})"

    @property
    def store_retry(self) -> StoreRetryPolicy:
        """How this Rotator retries store calls (build another Rotator to change it)."""
        return self._store.policy

    def _retrying(self, operation: str, error: Exception, delay: float) -> None:
        log.info("rotation: store %s failed (%s); retrying in %.2f s", operation, type(error).__name__, delay)

    def store_now(self) -> datetime:
        """The store's time, against which ages of versions (grace periods, due times) are measured.

        Versions carry the store's timestamps, so a rotator clock ahead of the store would make
        them look old and skip a grace period. In order of preference: the store's timestamp of
        this rotator's last write carried forward with the monotonic clock (immune to clock
        steps); else the store's own ``server_time()`` (stores over HTTP know it from their last
        answer, so from a rotation's first read on); else the rotator's clock.
        """
        if self._store_anchor is None:
            server_time = getattr(self.store, "server_time", None)
            now = server_time() if server_time is not None else None
            return now if now is not None else self.clock()
        at, mono = self._store_anchor
        return at + timedelta(seconds=max(self._monotonic() - mono, 0.0))

    # -- public API -----------------------------------------------------------------------

    def rotate(self, secret_name: str, *, due_after: timedelta | None = None) -> RotationResult:
        """Run a whole rotation (or finish an interrupted one).

        With ``due_after``, rotate only if the CURRENT version is at least that old (checked
        under the lock, so many instances racing for a due secret rotate it once).
        Raises :class:`RotationInProgress` when another rotator holds the lock.
        """
        started = time.monotonic()
        vid: str | None = None  # for the "failed" event, once known
        with self._locked(secret_name) as handle:
            ctx = self._ctx(secret_name, handle)
            try:
                current_vid, pending_vid = self._stage_holders(secret_name)
                if due_after is not None and pending_vid is None:
                    current = self._store.get_secret(secret_name)
                    if current.created is not None and self.store_now() - current.created < due_after:
                        return RotationResult(secret_name, False, current.version_id, reason="not due")
                resumed = pending_vid is not None
                if pending_vid is not None and pending_vid == current_vid:
                    vid = pending_vid
                    self._emit("resumed", secret_name, vid, detail=f"promotion done; clearing {self.labels.pending}")
                    self._end(ctx, vid, verified=True)
                    return self._finish(secret_name, vid, None, True, started)
                if pending_vid is not None and self._is_placeholder(secret_name, pending_vid):
                    placeholder = vid = pending_vid  # made by the store's own rotation call: this run fills it
                    self._emit("started", secret_name, vid)
                    vid = self._timed(ctx, "new", vid, lambda: self._new(ctx, placeholder, fresh=True))
                    resumed = False
                elif pending_vid is not None:
                    vid = pending_vid
                    self._emit("resumed", secret_name, vid, detail="resuming interrupted rotation")
                else:
                    fresh_vid = vid = self._version_ids()
                    self._emit("started", secret_name, vid)
                    vid = self._timed(ctx, "new", vid, lambda: self._new(ctx, fresh_vid, fresh=True))
                    if vid != fresh_vid:  # another rotator wrote a PENDING meanwhile: this run joins it
                        resumed = True
                        self._emit("resumed", secret_name, vid, detail="joined a rotation started meanwhile")
                # One read of both versions serves the three steps: the lock is held throughout, and
                # the promotion is a compare-and-set. A store that a whole fleet is reading after the
                # "set" step then serves the rotator's steps with fewer requests.
                loaded = self._timed(ctx, "set", vid, lambda: self._set(ctx, vid, fresh=not resumed))
                self._timed(ctx, "test", vid, lambda: self._test(ctx, vid, loaded))
                self._timed(ctx, "end", vid, lambda: self._end(ctx, vid, verified=True, loaded=loaded))
                return self._finish(secret_name, vid, current_vid, resumed, started)
            except Exception as exc:
                self._emit("failed", secret_name, vid, detail=f"{type(exc).__name__}: {exc}",
                           sessions=self._in_use(secret_name, exc))
                raise

    def step(self, secret_name: str, step: str, version_id: str | None = None) -> str:
        """Run one step, as the seed's Function Compute function does; returns the VersionId to
        pass to the next step.

        ``new`` returns the VersionId of an interrupted rotation's PENDING instead of
        creating another, so a re-run flow resumes it; a PENDING version without a value (AWS's
        ``RotateSecret`` makes one before calling the rotation function) is filled with new
        credentials in the format of CURRENT. ``set``, ``test`` and ``end`` need
        ``version_id``. Every step is idempotent.
        """
        if step not in STEPS:
            raise InvalidRotationSetup(f"step must be one of {', '.join(STEPS)}, not {str(step)[:20]!r}")
        if step != "new" and not version_id:
            raise InvalidRotationSetup(f"step {step!r} needs the VersionId returned by step 'new'")
        with self._locked(secret_name) as handle:
            ctx = self._ctx(secret_name, handle)
            try:
                if step == "new":
                    vid = self._new_or_resume(ctx, version_id or self._version_ids())
                    self._emit("step_done", secret_name, vid, step="new")
                    return vid
                assert version_id is not None
                action = {
                    "set": lambda: self._set(ctx, version_id, fresh=False),
                    "test": lambda: self._test(ctx, version_id),
                    "end": lambda: self._end(ctx, version_id, verified=False),
                }[step]
                self._timed(ctx, step, version_id, action)
                if step == "end":
                    self._emit("promoted", secret_name, version_id)
                    self._publish(secret_name, version_id)
                    self._record_next(secret_name)
                return version_id
            except Exception as exc:
                self._emit("failed", secret_name, version_id, step=step, detail=f"{type(exc).__name__}: {exc}",
                           sessions=self._in_use(secret_name, exc))
                raise

    def plan(self, secret_name: str) -> Plan:
        """What :meth:`rotate` would do now, changing nothing (a dry run)."""
        return make_plan(self._store, self.strategy, replace(self._ctx(secret_name, None), dry_run=True), self.lock)

    def status(self, secret_name: str, interval: timedelta | None = None, *, sessions: bool = True) -> Status:
        """Versions, stages, last and next rotation (``interval`` or the secret's own) and, with
        ``sessions`` and a strategy that can count them, live database sessions per account and stage."""
        status = make_status(self._store, secret_name, interval)
        counter = getattr(self.strategy, "account_sessions", None)
        if not sessions or counter is None or status.current_version_id is None:
            return status
        staged = [(label, vid) for label, vid in ((self.labels.current, status.current_version_id),
                                                  (self.labels.pending, status.pending_version_id),
                                                  (self.labels.previous, status.previous_version_id)) if vid]
        try:
            accounts = [(label, self._store.get_secret(secret_name, version_id=vid).db_credentials().account_name)
                        for label, vid in staged]
            current = self._store.get_secret(secret_name, version_id=status.current_version_id).db_credentials()
            seen = counter(self._ctx(secret_name, None), current, [a for _, a in accounts])
        except SecretClientError as exc:
            return replace(status, sessions_error=f"{type(exc).__name__}: {exc}")
        rows = tuple((label, account, host, n) for label, account in accounts for host, n in seen[account].items())
        rows += tuple((label, account, "", 0) for label, account in accounts if not seen[account])
        self._emit("sessions", secret_name, status.current_version_id, sessions=rows)
        return replace(status, sessions=rows)

    def abort(self, secret_name: str) -> AbortResult:
        """Remove PENDING — only after proving that CURRENT still logs in."""
        with self._locked(secret_name) as handle:
            ctx = self._ctx(secret_name, handle)
            current_vid, pending_vid = self._stage_holders(secret_name)
            if pending_vid is None:
                return AbortResult(secret_name, None, f"no {self.labels.pending} version")
            if pending_vid != current_vid:
                current = self._store.get_secret(secret_name, stage=Stage.CURRENT).db_credentials()
                if not self.strategy.can_login(ctx, current):
                    raise LoginFailed(
                        f"{self.labels.current} of {secret_name!r} does not log in, so {self.labels.pending} "
                        f"{pending_vid!r} is the only working version: finish the rotation (rotation rotate) "
                        "instead of aborting"
                    )
            self._update_stage(secret_name, Stage.PENDING, remove_from=pending_vid)
            self._emit("aborted", secret_name, pending_vid)
            return AbortResult(secret_name, pending_vid, f"{self.labels.pending} removed")

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Register an event listener; returns a function that unregisters it."""
        return self.events.add(listener)

    # -- steps ----------------------------------------------------------------------------

    def _new_or_resume(self, ctx: RotationContext, version_id: str) -> str:
        current_vid, pending_vid = self._stage_holders(ctx.secret_name)
        if pending_vid is not None and pending_vid == current_vid:
            self._update_stage(ctx.secret_name, Stage.PENDING, remove_from=pending_vid)  # leftover label
        elif pending_vid is not None:
            if self._is_placeholder(ctx.secret_name, pending_vid):
                return self._new(ctx, pending_vid, fresh=True)
            if pending_vid != version_id:
                self._emit("resumed", ctx.secret_name, pending_vid, detail="step new found an interrupted rotation")
            return pending_vid
        return self._new(ctx, version_id)

    def _is_placeholder(self, secret_name: str, vid: str) -> bool:
        """Whether version ``vid`` has stages but no value yet (a store-made PENDING to fill)."""
        try:
            self._store.get_secret(secret_name, version_id=vid)
        except SecretNotFound:
            return True
        return False

    def _new(self, ctx: RotationContext, vid: str, *, fresh: bool = False) -> str:
        """Store version ``vid`` as PENDING (also when ``vid`` is a PENDING placeholder without a
        value); returns ``vid``, or the PENDING version another rotator (whatever its lock) wrote
        meanwhile, which this rotation then joins rather than take its label. ``fresh``: no version
        ``vid`` with a value exists (just made up, or a placeholder), so there is none to look up."""
        current = self._store.get_secret(ctx.secret_name, stage=Stage.CURRENT)
        self.strategy.preflight(ctx, current)
        existing = None
        if not fresh:
            with suppress(SecretNotFound):
                existing = self._store.get_secret(ctx.secret_name, version_id=vid)
        if existing is not None:
            if existing.stages & {self.labels.pending, self.labels.current}:
                return vid  # a retry of this very step
            raise RotationConflict(
                f"version {vid!r} of {ctx.secret_name!r} exists but is neither {self.labels.pending} "
                f"nor {self.labels.current}"
            )
        creds = current.db_credentials()
        password = self.strategy.new_password(self._store)
        pending = self.strategy.pending_credentials(creds, password)
        ctx.checkpoint("new:put")
        # PENDING is fenced: never taken from another rotation. Look right before writing, and
        # check right after (a rotator that wrote at the same moment keeps it; this one stops).
        current_vid, holder = self._stage_holders(ctx.secret_name)
        if current_vid != current.version_id:
            raise RotationConflict(
                f"{self.labels.current} of {ctx.secret_name!r} moved while the new version was prepared; "
                "nothing was written: run again"
            )
        if holder is not None and holder != vid:  # ``vid`` itself: the placeholder being filled
            return holder
        # Explicit stages: a version without them would become CURRENT before it was ever set.
        written = self._store.put_secret(ctx.secret_name, vid, pending.to_json(), stages=[Stage.PENDING])
        if written.created is not None:
            self._store_anchor = (written.created, self._monotonic())
        _, holder = self._stage_holders(ctx.secret_name)
        if holder != vid:
            raise RotationConflict(
                f"{self.labels.pending} of {ctx.secret_name!r} went to version {holder!r} while {vid!r} was "
                "written; this rotation stopped before changing the database"
            )
        return vid

    def _load(self, ctx: RotationContext, vid: str) -> tuple[Secret, Secret]:
        """(CURRENT, the version ``vid``) — ``vid`` must be PENDING or already CURRENT."""
        version = self._store.get_secret(ctx.secret_name, version_id=vid)
        if not version.stages & {self.labels.pending, self.labels.current}:
            raise RotationConflict(
                f"version {vid!r} of {ctx.secret_name!r} is not {self.labels.pending} "
                f"(stages: {sorted(version.stages)})"
            )
        return self._store.get_secret(ctx.secret_name, stage=Stage.CURRENT), version

    def _set(self, ctx: RotationContext, vid: str, *, fresh: bool) -> tuple[Secret, Secret]:
        """Set the database; returns what :meth:`_load` read, for the next steps of the same run."""
        current, version = loaded = self._load(ctx, vid)
        if self.labels.current in version.stages:
            return loaded  # promoted already: its account is CURRENT now and must not be touched
        self.strategy.preflight(ctx, current)
        self.strategy.set(ctx, current.db_credentials(), version.db_credentials(), fresh=fresh)
        return loaded

    def _test(self, ctx: RotationContext, vid: str, loaded: tuple[Secret, Secret] | None = None) -> None:
        current, version = loaded or self._load(ctx, vid)
        if self.labels.current in version.stages:
            if not self.strategy.can_login(ctx, version.db_credentials()):
                raise LoginFailed(f"{self.labels.current} version {vid!r} of {ctx.secret_name!r} does not log in")
            return
        self.strategy.test(ctx, current.db_credentials(), version.db_credentials())

    def _end(self, ctx: RotationContext, vid: str, *, verified: bool,
             loaded: tuple[Secret, Secret] | None = None) -> None:
        current, version = loaded or self._load(ctx, vid)
        if self.labels.current not in version.stages:
            if not verified:  # never promote what has not logged in
                self.strategy.test(ctx, current.db_credentials(), version.db_credentials())
            ctx.checkpoint("end:promote")
            try:
                # Compare-and-set: fails if another rotator moved CURRENT since we read it.
                self._store.update_stage(ctx.secret_name, Stage.CURRENT, move_to=vid, remove_from=current.version_id)
            except VersionConflict:
                raise RotationConflict(
                    f"{self.labels.current} of {ctx.secret_name!r} moved away from {current.version_id!r} "
                    "during the rotation"
                ) from None
            ctx.checkpoint("end:mid")
        _, pending_vid = self._stage_holders(ctx.secret_name)
        if pending_vid == vid:
            self._update_stage(ctx.secret_name, Stage.PENDING, remove_from=vid)

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _locked(self, secret_name: str) -> Iterator[LockHandle]:
        handle = self.lock.acquire(secret_name, self.lock_timeout)
        if handle is None:
            self._emit("skipped", secret_name, None, detail="another rotator holds the lock")
            raise RotationInProgress(f"another rotator is rotating {secret_name!r} right now")
        try:
            yield handle
        finally:
            handle.release()

    def _ctx(self, secret_name: str, handle: LockHandle | None) -> RotationContext:
        hook = self._checkpoint

        def checkpoint(point: str) -> None:
            if handle is not None:
                handle.check()
            if hook is not None:
                hook(point)

        return RotationContext(store=self._store, secret_name=secret_name, now=self.store_now, checkpoint=checkpoint)

    def _stage_holders(self, secret_name: str) -> tuple[str | None, str | None]:
        """VersionIds of the CURRENT and PENDING versions (None when no version has the stage)."""
        versions = self._store.list_versions(secret_name)
        current = stage_holder(versions, self.labels.current)
        pending = stage_holder(versions, self.labels.pending)
        return (current.version_id if current else None, pending.version_id if pending else None)

    def _update_stage(self, secret_name: str, stage: str, *, remove_from: str) -> None:
        # VersionConflict: already removed by a retry or another rotator, the goal state holds.
        with suppress(VersionConflict):
            self._store.update_stage(secret_name, stage, remove_from=remove_from)

    def _timed(self, ctx: RotationContext, step: str, vid: str, action: Callable[[], _T]) -> _T:
        ctx.checkpoint(f"{step}:start")
        t0 = time.monotonic()
        out = action()
        self._emit("step_done", ctx.secret_name, vid, step=step, duration=time.monotonic() - t0)
        ctx.checkpoint(f"{step}:done")
        return out

    def _finish(self, name: str, vid: str, previous: str | None, resumed: bool, started: float) -> RotationResult:
        duration = time.monotonic() - started
        self._emit("promoted", name, vid, duration=duration)
        self._publish(name, vid)
        self._record_next(name)
        return RotationResult(name, True, vid, previous, resumed, duration)

    def _record_next(self, name: str) -> None:
        if self.rotation_interval is not None:
            record_next_rotation(self.store, name, self.store_now() + self.rotation_interval)

    def _publish(self, name: str, vid: str) -> None:
        if self.client is not None:
            self.client.publish(self._store.get_secret(name, version_id=vid))

    def _in_use(self, secret_name: str, exc: Exception) -> SessionRows:
        """The sessions an :class:`AccountInUse` counted, as (PREVIOUS label, its account, host,
        count) rows for listeners (metrics); () for another error or when the account is unknown."""
        if not isinstance(exc, AccountInUse) or not exc.sessions:
            return ()
        try:
            account = self._store.get_secret(secret_name, stage=Stage.PREVIOUS).db_credentials().account_name
        except SecretClientError:  # the refusal is reported either way
            return ()
        return tuple((self.labels.previous, account, host, n) for host, n in exc.sessions.items())

    def _emit(self, kind: Any, name: str, vid: str | None, *, step: str | None = None,
              duration: float | None = None, detail: str = "", sessions: SessionRows = ()) -> None:
        self.events.emit(RotationEvent(kind, name, vid, step, duration, detail, self.clock(), sessions))


