"""What a rotation strategy does for the engine, and the context the engine gives it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from secretclient.errors import SecretNotFound
from secretclient.model import DbCredentials, PasswordPolicy, Secret, Stage, StageLabels, stage_labels
from secretclient.stores.base import SecretStore

from ..errors import InvalidRotationSetup, ProtectedAccount, RotationTooSoon

__all__ = [
    "DEFAULT_GRACE",
    "REFUSE_IF_IN_USE",
    "RESERVED_ACCOUNTS",
    "RESERVED_PREFIXES",
    "Check",
    "DrainPolicy",
    "RotationContext",
    "Strategy",
    "StrategyPlan",
    "allow_list",
    "check_grace",
    "check_not_reserved",
    "swap_suffix",
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
