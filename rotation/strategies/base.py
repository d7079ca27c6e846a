"""What a rotation strategy does for the engine, and the context the engine gives it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from secretclient.errors import SecretNotFound
from secretclient.model import DbCredentials, PasswordPolicy, Secret, Stage, StageLabels, stage_labels
from secretclient.stores.base import SecretStore

from ..dbconn import ConnectOptions
from ..errors import AccountInUse, InvalidRotationSetup, ProtectedAccount, RotationError, RotationTooSoon
from ..passwords import PasswordSource, new_password

__all__ = [
    "DEFAULT_GRACE",
    "REFUSE_IF_IN_USE",
    "RESERVED_ACCOUNTS",
    "RESERVED_PREFIXES",
    "AlternatingUsersBase",
    "Check",
    "DrainPolicy",
    "RotationContext",
    "SingleUserBase",
    "SqlStrategy",
    "Strategy",
    "StrategyPlan",
    "allow_list",
    "alternate_credentials",
    "check_grace",
    "check_not_reserved",
    "swap_suffix",
    "wait_for_drain",
]

#: Accounts a rotation through a privileged session never touches unless allowed explicitly:
#: superusers and the accounts servers and cloud providers keep for themselves.
RESERVED_ACCOUNTS = frozenset({
    "root", "admin", "debian-sys-maint", "rdsadmin", "rdsrepladmin", "rds_superuser", "aliyun_root",
    "aurora", "azure_superuser", "cloudsqlsuperuser", "PUBLIC",
})
#: Name prefixes of reserved accounts (``mysql.sys``, ``mariadb.sys``, ``rdsadmin…``, ``aliyun_…``).
RESERVED_PREFIXES = ("mysql.", "mariadb.", "rdsadmin", "rdsrepl", "aliyun_", "rds_")


@dataclass(frozen=True)
class RotationContext:
    """Handed to every strategy call.

    ``checkpoint(point)`` must be called at the named points of a step (``"set:mid"``): the
    engine re-checks its lock there (and test hooks may pause the process there).
    """

    store: SecretStore
    secret_name: str
    now: Callable[[], datetime]
    checkpoint: Callable[[str], None] = field(default=lambda point: None)
    #: True for a dry run (:meth:`Rotator.plan`): report, never wait.
    dry_run: bool = False

    @property
    def labels(self) -> StageLabels:
        """The store's own labels for the three roles (for messages)."""
        return stage_labels(self.store)


@dataclass(frozen=True, slots=True)
class DrainPolicy:
    """What a rotation does when the account it is about to reset (the PREVIOUS account of
    alternating users) still has live sessions, the rotator's own excluded.

    By default it stops with :class:`~rotation.errors.AccountInUse` and changes nothing.
    ``wait``: seconds to wait for the sessions to end first (checked every ``poll`` seconds).
    ``proceed=True``: reset the account anyway (those sessions keep running until they reconnect).
    """

    wait: float = 0.0
    poll: float = 1.0
    proceed: bool = False

    def __post_init__(self) -> None:
        for value in (self.wait, self.poll):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidRotationSetup("DrainPolicy wait and poll must be finite and not negative")
        if self.wait > 86400 or self.poll <= 0:
            raise InvalidRotationSetup("DrainPolicy needs wait <= 86400 s and poll > 0")


#: How long after a rotation the PREVIOUS account is not reset: one hour, the default cache TTL of
#: ``SecretClient`` and of AWS's caching client, so a consumer that cached the PREVIOUS credentials
#: (and has no session open, which the drain check would see) has refreshed before they change.
DEFAULT_GRACE = timedelta(hours=1)

#: The default: stop with AccountInUse when the account to reset has sessions.
REFUSE_IF_IN_USE = DrainPolicy()


@dataclass(frozen=True, slots=True)
class Check:
    """One check of a dry run: what, whether it passed, and why (never a secret)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StrategyPlan:
    """What ``set`` would do: accounts touched, SQL with passwords redacted, grant changes, checks."""

    accounts: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    grant_changes: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()


@runtime_checkable
class Strategy(Protocol):
    """How credentials of one kind are rotated. Every method is idempotent."""

    #: Short name for logs and the CLI ("single-user", "alternating-users").
    name: str
    password_policy: PasswordPolicy

    def preflight(self, ctx: RotationContext, current: Secret) -> None:
        """Validate everything that can be validated before any change (names, grace periods)."""

    def pending_credentials(self, current: DbCredentials, password: str) -> DbCredentials:
        """The credentials the new version will hold."""

    def new_password(self, store: Any) -> str:
        """A new password following the strategy's policy."""

    def set(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials, *, fresh: bool) -> None:
        """Make ``pending`` valid in the database. ``fresh`` is True when the pending version was
        written moments ago in this process, so it cannot be applied already."""

    def test(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> None:
        """Log in with ``pending`` and check privileges and TLS; raise if anything is off."""

    def can_login(self, ctx: RotationContext, creds: DbCredentials) -> bool:
        """Whether ``creds`` log in right now."""

    def plan(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> StrategyPlan:
        """What :meth:`set` would do, changing nothing."""


def allow_list(accounts: Any) -> frozenset[str]:
    """The ``allow_accounts=`` option of a strategy, checked: account names as strings."""
    if isinstance(accounts, str) or not all(isinstance(a, str) and a for a in accounts):
        raise InvalidRotationSetup("allow_accounts must be a collection of account names (not one string)")
    return frozenset(accounts)


def check_not_reserved(account: str, allowed: frozenset[str], *, master_account: str | None = None,
                       what: str = "account") -> None:
    """Raise :class:`ProtectedAccount` when ``account`` may not be changed through a privileged
    session: the privileged account itself (always refused: its own secret would stop working),
    or a reserved name not in ``allowed``."""
    if master_account is not None and account == master_account:
        raise ProtectedAccount(
            f"{what} {account!r} is the MasterSecret's own account: rotating it through the MasterSecret "
            "would leave the MasterSecret unable to log in"
        )
    if account in allowed:
        return
    folded = account.lower()
    if folded in {a.lower() for a in RESERVED_ACCOUNTS} or folded.startswith(RESERVED_PREFIXES):
        raise ProtectedAccount(
            f"{what} {account!r} is a reserved or administrative account; refusing to rotate it through a "
            "privileged session (allow it with the strategy's allow_accounts= if this is intended)"
        )


def swap_suffix(account: str, suffix: str) -> str:
    """The other account of an alternating pair (``appuser`` <-> ``appuser_rt``), not validated."""
    if account.endswith(suffix) and len(account) > len(suffix):
        return account[: -len(suffix)]
    return account + suffix


def alternate_credentials(current: DbCredentials, alternate: str, password: str) -> DbCredentials:
    """The pending version of an alternating rotation: ``current`` as the ``alternate`` account
    with ``password`` (a new version, on no stage yet)."""
    return current.with_changes(account_name=alternate, account_password=password, version_id=None,
                                stages=frozenset())


def check_grace(ctx: RotationContext, current: Secret, alternate: str, grace: timedelta) -> None:
    """Raise :class:`RotationTooSoon` when ``alternate`` holds PREVIOUS and CURRENT is younger
    than ``grace``: consumers may still use the PREVIOUS credentials from their caches."""
    if not grace or current.created is None:
        return
    try:
        previous = ctx.store.get_secret(ctx.secret_name, stage=Stage.PREVIOUS).db_credentials()
    except SecretNotFound:
        return
    age = ctx.now() - current.created
    if previous.account_name == alternate and age < grace:
        raise RotationTooSoon(
            f"account {alternate!r} ({ctx.labels.previous}) may still be in use for "
            f"{(grace - age).total_seconds():.0f} s more (grace {grace.total_seconds():.0f} s)"
        )


def wait_for_drain(ctx: RotationContext, policy: DrainPolicy, account: str,
                   sessions: Callable[[], Mapping[str, int]], *, sleep: Callable[[float], None],
                   monotonic: Callable[[], float]) -> None:
    """Return once ``sessions()`` (live sessions of ``account`` per client host, the rotator's own
    excluded) is empty; wait up to the policy's bound (no wait in a dry run), then raise
    :class:`AccountInUse`, having changed nothing. The caller handles ``policy.proceed``."""
    deadline = monotonic() + (0.0 if ctx.dry_run else policy.wait)
    while True:
        live = dict(sessions())
        if not live:
            return
        left = deadline - monotonic()
        if left <= 0:
            where = ", ".join(f"{n} from {h}" for h, n in live.items())
            raise AccountInUse(
                f"account {account!r} ({ctx.labels.previous}) still has {sum(live.values())} live "
                f"session(s) ({where}); nothing was changed. Rotate when they have ended, wait for them "
                "(DrainPolicy(wait=…)) or proceed explicitly (DrainPolicy(proceed=True))",
                sessions=live,
            )
        ctx.checkpoint("drain:wait")
        sleep(min(policy.poll, left))


class SqlStrategy:
    """What the SQL strategies (MySQL/MariaDB, PostgreSQL) share: the *MasterSecret* — named in
    the secret or by ``master_secret=``, on the rotated secret's Endpoint and Port — the
    password policy and source, how they connect, and the accounts an operator allows to be
    changed through the MasterSecret despite looking administrative (:func:`check_not_reserved`).

    A subclass sets :attr:`default_password_policy`, :attr:`default_port` and implements :meth:`_admin` (a session of
    the MasterSecret account) and :meth:`_execute` (run one statement).
    """

    name = "sql"
    #: The password policy when ``password_policy=`` is not given.
    default_password_policy: PasswordPolicy
    #: The port of a secret that names none (the database family's).
    default_port: int

    def __init__(
        self,
        *,
        master_secret: str | None = None,
        password_policy: PasswordPolicy | None = None,
        password_source: PasswordSource | None = None,
        connect_options: ConnectOptions = ConnectOptions(),  # noqa: B008 - frozen, shared safely
        allow_accounts: Iterable[str] = (),
    ) -> None:
        self.allow_accounts = allow_list(allow_accounts)
        self.master_secret = master_secret
        self.password_policy = password_policy or self.default_password_policy
        self.password_source = password_source
        self.connect_options = connect_options

    def __repr__(self) -> str:
        return f"{type(self).__name__}(master_secret={self.master_secret!r})"

    def new_password(self, store: Any) -> str:
        return new_password(store, self.password_policy, self.password_source)

    def _master_name(self, current: DbCredentials) -> str | None:
        return self.master_secret or current.master_secret

    def _master(self, store: Any, secret_name: str, current: DbCredentials) -> DbCredentials:
        """The MasterSecret's credentials, checked to point at the rotated account's server."""
        name = self._master_name(current)
        if not name:
            raise InvalidRotationSetup(
                f"secret {secret_name!r} has no MasterSecret and none was configured "
                "(--master-secret, ROTATION_MASTER_SECRET or the strategy's master_secret=)"
            )
        master: DbCredentials = store.get_secret(name).db_credentials()
        here, there = master.port_or(self.default_port), current.port_or(self.default_port)
        if (master.endpoint, here) != (current.endpoint, there):
            raise InvalidRotationSetup(
                f"MasterSecret {name!r} points at {master.endpoint}:{here}, "
                f"not at the rotated account's {current.endpoint}:{there}"
            )
        return master

    def _lock_candidates(self, store: Any, secret_name: str) -> tuple[DbCredentials, list[DbCredentials]]:
        """(CURRENT, who may hold the lock connection in order): the MasterSecret account, else the
        secret's own CURRENT, else its PENDING (after a crash in self-rotation only that one logs in)."""
        current: DbCredentials = store.get_secret(secret_name).db_credentials()
        candidates = []
        if self._master_name(current):
            candidates.append(self._master(store, secret_name, current))
        candidates.append(current)
        with suppress(SecretNotFound):
            candidates.append(store.get_secret(secret_name, stage=Stage.PENDING).db_credentials())
        return current, candidates

    def _admin(self, ctx: RotationContext, current: DbCredentials) -> Any:
        """A session of the MasterSecret account on the rotated server."""
        raise NotImplementedError

    def _login(self, creds: DbCredentials, who: str) -> Any:
        """A session of ``creds`` (``who`` names them in errors)."""
        raise NotImplementedError

    def _sessions(self, conn: Any, account: str) -> dict[str, int]:
        """Live sessions of ``account`` per client host, ``conn``'s own excluded."""
        raise NotImplementedError

    def account_sessions(self, ctx: RotationContext, current: DbCredentials,
                         accounts: Iterable[str]) -> dict[str, dict[str, int]]:
        """Live sessions per client host of each of ``accounts``, seen by the MasterSecret
        account, else by the secret's own account (on MySQL it then sees its own sessions only)."""
        if self._master_name(current):
            conn = self._admin(ctx, current)
        else:
            conn = self._login(current, f"{ctx.labels.current} account")
        with closing(conn):
            return {a: self._sessions(conn, a) for a in dict.fromkeys(accounts)}

    def _execute(self, conn: Any, stmt: Any) -> None:
        """Run one statement on ``conn``, errors without secrets."""
        raise NotImplementedError

    def _admin_or_check(self, ctx: RotationContext, current: DbCredentials) -> Any:
        """For dry runs: the MasterSecret connection, or the failed check saying why there is none."""
        try:
            return self._admin(ctx, current)
        except RotationError as exc:
            return Check("MasterSecret logs in", False, str(exc))

    def _apply(self, ctx: RotationContext, conn: Any, statements: Sequence[Any]) -> None:
        """Run ``statements`` in order; the engine re-checks its lock after the first."""
        for i, stmt in enumerate(statements):
            self._execute(conn, stmt)
            if i == 0:
                ctx.checkpoint("set:mid")

    @staticmethod
    def _check_endpoint(current: DbCredentials) -> None:
        if not current.endpoint:
            raise InvalidRotationSetup("the secret has no Endpoint: rotation must know which server to change")



class SingleUserBase(SqlStrategy):
    """Single user, any SQL family: one account whose password changes in place, through the
    MasterSecret account when there is one (or ``use_master=True``), else by the account itself."""

    name = "single-user"

    def __init__(self, *, use_master: bool | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.use_master = use_master

    def _uses_master(self, current: DbCredentials) -> bool:
        return self.use_master if self.use_master is not None else bool(self._master_name(current))

    def _preflight_master(self, creds: DbCredentials) -> bool:
        """Checks the Endpoint and that a MasterSecret exists if it must; whether it is used."""
        self._check_endpoint(creds)
        uses = self._uses_master(creds)
        if uses and not self._master_name(creds):
            raise InvalidRotationSetup("use_master=True but the secret has no MasterSecret")
        return uses

    def pending_credentials(self, current: DbCredentials, password: str) -> DbCredentials:
        return current.with_changes(account_password=password, version_id=None, stages=frozenset())

    @staticmethod
    def _check_same_account(current: DbCredentials, pending: DbCredentials) -> None:
        if pending.account_name != current.account_name:
            raise InvalidRotationSetup(
                f"single-user rotation of {current.account_name!r} found a pending version for {pending.account_name!r}"
            )


class AlternatingUsersBase(SqlStrategy):
    """Alternating users, any SQL family: two accounts (``app`` ↔ ``app_rt``), each rotation
    preparing the one not in use through the MasterSecret account; ``grace`` keeps the PREVIOUS
    account from being reset too soon and ``drain`` says what to do while it still has sessions."""

    name = "alternating-users"
    #: Characters a suffix may have besides letters and digits.
    suffix_punctuation = "_"

    def __init__(self, *, suffix: str = "_rt", grace: timedelta = DEFAULT_GRACE,
                 drain: DrainPolicy = REFUSE_IF_IN_USE, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, **options: Any) -> None:
        super().__init__(**options)
        if not isinstance(drain, DrainPolicy):
            raise InvalidRotationSetup("drain must be a rotation.DrainPolicy")
        if not suffix or not suffix.isascii() or not all(c.isalnum() or c in self.suffix_punctuation for c in suffix):
            allowed = ", ".join(repr(c) for c in self.suffix_punctuation)
            raise InvalidRotationSetup(f"suffix must be letters, digits or {allowed}")
        if grace < timedelta(0):
            raise InvalidRotationSetup("grace must not be negative")
        self.suffix = suffix
        self.grace = grace
        self.drain = drain
        self._sleep = sleep
        self._monotonic = monotonic

    def alternate(self, account: str) -> str:
        """The other account of the pair, both names validated."""
        raise NotImplementedError

    def _require_master(self, ctx: RotationContext, current: DbCredentials) -> None:
        self._check_endpoint(current)
        if not self._master_name(current):
            raise InvalidRotationSetup(
                f"alternating users need a privileged account: put MasterSecret into {ctx.secret_name!r} "
                "or name one (--master-secret, ROTATION_MASTER_SECRET or the strategy's master_secret=)"
            )

    def pending_credentials(self, current: DbCredentials, password: str) -> DbCredentials:
        return alternate_credentials(current, self.alternate(current.account_name), password)

    def _drain_check(self, conn: Any, account: str) -> Check:
        """For dry runs: whether ``account`` could be reset now (no live sessions, or told to proceed)."""
        sessions = self._sessions(conn, account)
        return Check(f"{account} has no live sessions", not sessions or self.drain.proceed,
                     ", ".join(f"{n} from {h}" for h, n in sessions.items()))

    def _wait_for_drain(self, ctx: RotationContext, account: str,
                        sessions: Callable[[], Mapping[str, int]]) -> None:
        wait_for_drain(ctx, self.drain, account, sessions, sleep=self._sleep, monotonic=self._monotonic)
