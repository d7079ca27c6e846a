"""ApsaraDB RDS through the RDS API: alternating users (the seed's Scenario 1), no SQL.

The RDS account API (``aliyun-python-sdk-rds``, extra ``secretclient-rotation[rds]``) creates the
alternate account, resets its password and copies database privileges; the secret needs only
``AccountName`` and ``AccountPassword`` (an ``Endpoint`` lets ``test`` log in for real).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextlib import closing, suppress
from datetime import timedelta
from typing import Any

from secretclient.errors import SecretNotFound
from secretclient.model import DbCredentials, PasswordPolicy, Secret, Stage

from ..dbconn import ConnectOptions, connect, connect_first, sees_database, try_login
from ..errors import (
    InvalidRotationSetup,
    ProtectedAccount,
    RotationError,
    UnsafeAccountName,
    UnsupportedGrant,
    VerificationFailed,
)
from ..lock import LocalLock, Lock, LockHandle, MySqlLock
from ..passwords import RDS_PASSWORD_POLICY, PasswordSource, new_password
from ..sql import NAME_LIMIT_RDS, check_account_name
from ._rds_api import RdsAccount, RdsApi, rds_client
from .base import (
    DEFAULT_GRACE,
    Check,
    RotationContext,
    StrategyPlan,
    allow_list,
    alternate_credentials,
    check_grace,
    check_not_reserved,
    swap_suffix,
)

__all__ = ["RdsAccount", "RdsApi", "RdsApiStrategy", "rds_client"]

#: The privileges the RDS API can grant on a database (MySQL / MariaDB engines).
GRANTABLE = frozenset({"ReadWrite", "ReadOnly", "DDLOnly", "DMLOnly"})
# RDS account names: a letter first, a letter or digit last, letters, digits and '_' between.
_RDS_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*[A-Za-z0-9]")
_REDACTED = "<redacted>"
_CONNECT = ConnectOptions()


def privilege_changes(want: Mapping[str, str], have: Mapping[str, str]) -> list[tuple[str, str, str | None]]:
    """``(action, db, privilege)`` that make ``have`` equal ``want``: revoke what is extra or
    different, grant what is missing (revoke first: RDS keeps one privilege per database)."""
    out: list[tuple[str, str, str | None]] = []
    for db in sorted(have):
        if want.get(db) != have[db]:
            out.append(("revoke", db, None))
    for db in sorted(want):
        if have.get(db) != want[db]:
            out.append(("grant", db, want[db]))
    return out


class _EndpointOrLocalLock:
    """``GET_LOCK`` on the database when the secret has an Endpoint, else an in-process lock."""

    def __init__(self, strategy: RdsApiStrategy, store: Any) -> None:
        self._store = store
        self._db = MySqlLock(lambda name: strategy.lock_connection(store, name))
        self._local = LocalLock()

    def acquire(self, secret_name: str, timeout: float = 0.0) -> LockHandle | None:
        if self._store.get_secret(secret_name).db_credentials().endpoint:
            return self._db.acquire(secret_name, timeout)
        return self._local.acquire(secret_name, timeout)


class RdsApiStrategy:
    """Alternating users on ApsaraDB RDS through the RDS API (the seed's Scenario 1, made safe).

    ``set`` creates the alternate account (``appuser`` ↔ ``appuser_rt``) when missing, with the
    CURRENT account's ``AccountType``, or resets its password; then copies database
    privileges by difference — granting what is missing and revoking what is extra or different
    (the seed never revokes). It never touches the CURRENT account, and refuses to reset the
    PREVIOUS account within ``grace`` of the current version's creation. Privileges RDS reports
    as ``Custom`` cannot be copied through the API: ``set`` stops before changing anything.

    ``test`` checks through ``DescribeAccounts`` that the alternate exists, is ``Available`` and
    has CURRENT's privileges, and — when the secret has an ``Endpoint`` — logs in with the
    pending credentials. Without an Endpoint no login is possible, so ``can_login`` and ``test``
    rest on the API's word only.

    :param instance_id: the DBInstanceId (``rm-…``).
    :param client: an ``aliyunsdkcore`` ``AcsClient`` allowed to call RDS (see :func:`rds_client`).
    """

    name = "rds-api"

    def __init__(
        self,
        instance_id: str,
        client: Any,
        *,
        suffix: str = "_rt",
        name_limit: int = NAME_LIMIT_RDS,
        grace: timedelta = DEFAULT_GRACE,
        password_policy: PasswordPolicy = RDS_PASSWORD_POLICY,
        password_source: PasswordSource | None = None,
        connect_options: ConnectOptions = _CONNECT,
        allow_accounts: Iterable[str] = (),
    ) -> None:
        if not isinstance(name_limit, int) or not 2 <= name_limit <= 64:
            raise InvalidRotationSetup("name_limit must be from 2 to 64 (16 for MySQL 5.6 / the seed, 32 for 5.7+)")
        if not suffix or not re.fullmatch(r"[A-Za-z0-9_]+", suffix) or suffix[-1] == "_":
            raise InvalidRotationSetup("suffix must be letters, digits and '_', not ending in '_'")
        if grace < timedelta(0):
            raise InvalidRotationSetup("grace must not be negative")
        self.api = RdsApi(client, instance_id)
        self.suffix = suffix
        self.name_limit = name_limit
        self.grace = grace
        self.password_policy = password_policy
        self.password_source = password_source
        self.connect_options = connect_options
        #: Reserved or privileged (``Super``) accounts the operator allows to be rotated.
        self.allow_accounts = allow_list(allow_accounts)

    def __repr__(self) -> str:
        return f"RdsApiStrategy(instance_id={self.api.instance_id!r}, name_limit={self.name_limit})"

    @property
    def instance_id(self) -> str:
        return self.api.instance_id

    # -- names ----------------------------------------------------------------------------

    def _check_name(self, name: Any, what: str) -> str:
        check_account_name(name, self.name_limit, what=what)
        if not _RDS_NAME_RE.fullmatch(name):
            raise UnsafeAccountName(
                f"{what} {name!r} is not an RDS account name (a letter first, a letter or digit last, "
                "letters, digits and '_' between)"
            )
        return str(name)

    def alternate(self, account: str) -> str:
        """The other account of the pair (``appuser`` ↔ ``appuser_rt``), both names validated."""
        self._check_name(account, "account name")
        return self._check_name(swap_suffix(account, self.suffix), f"alternate account name of {account!r}")

    def _guard(self, current: DbCredentials, pending: DbCredentials) -> str:
        alternate = self.alternate(current.account_name)
        if pending.account_name != alternate:
            raise InvalidRotationSetup(
                f"pending account {pending.account_name!r} is not the alternate {alternate!r} "
                f"of CURRENT account {current.account_name!r}; refusing to modify it"
            )
        return alternate

    # -- Strategy -------------------------------------------------------------------------

    def new_password(self, store: Any) -> str:
        return new_password(store, self.password_policy, self.password_source)

    def preflight(self, ctx: RotationContext, current: Secret) -> None:
        creds = current.db_credentials()
        alternate = self.alternate(creds.account_name)
        check_grace(ctx, current, alternate, self.grace)
        # The API resets any account of the instance: refuse reserved and Super accounts, whose
        # control would pass to whoever can write the rotated secret.
        for account in (creds.account_name, alternate):
            check_not_reserved(account, self.allow_accounts)
        if creds.account_name not in self.allow_accounts:
            existing = self.api.describe(creds.account_name)
            if existing is not None and existing.account_type == "Super":
                raise ProtectedAccount(
                    f"account {creds.account_name!r} is a Super account; refusing to copy it to {alternate!r} "
                    "(allow it with the strategy's allow_accounts= if intended)"
                )

    def pending_credentials(self, current: DbCredentials, password: str) -> DbCredentials:
        return alternate_credentials(current, self.alternate(current.account_name), password)

    def _current_account(self, current: DbCredentials) -> RdsAccount:
        account = self.api.describe(current.account_name)
        if account is None:
            raise InvalidRotationSetup(
                f"CURRENT account {current.account_name!r} does not exist on RDS instance {self.instance_id}"
            )
        custom = sorted(db for db, p in account.privileges.items() if p not in GRANTABLE)
        if custom:
            raise UnsupportedGrant(
                f"account {current.account_name!r} has privileges the RDS API cannot grant on {custom[:5]} "
                "(Custom); copy them by hand or use the SQL strategy"
            )
        return account

    def set(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials, *, fresh: bool) -> None:
        alternate = self._guard(current, pending)
        template = self._current_account(current)
        existing = self.api.describe(alternate)
        if existing is None:
            self.api.create(alternate, pending.account_password, template.account_type)
            ctx.checkpoint("set:mid")
            existing = self.api.describe(alternate)
            have = dict(existing.privileges) if existing else {}
        else:
            if existing.account_type != template.account_type:
                raise InvalidRotationSetup(
                    f"account {alternate!r} is {existing.account_type} but CURRENT's {current.account_name!r} is "
                    f"{template.account_type}; the API cannot change an account's type: delete {alternate!r} "
                    "(it is not in use) and rotate again"
                )
            self.api.reset_password(alternate, pending.account_password)
            ctx.checkpoint("set:mid")
            have = dict(existing.privileges)
        for action, db, privilege in privilege_changes(template.privileges, have):
            if action == "revoke":
                self.api.revoke(alternate, db)
            else:
                assert privilege is not None
                self.api.grant(alternate, db, privilege)

    def test(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> None:
        alternate = self._guard(current, pending)
        template = self._current_account(current)
        account = self.api.describe(alternate)
        if account is None:
            raise VerificationFailed(f"account {alternate!r} does not exist on RDS instance {self.instance_id}")
        if account.status != "Available":
            raise VerificationFailed(
                f"account {alternate!r} is {account.status or 'in an unknown state'}, not Available"
            )
        if account.account_type != template.account_type or dict(account.privileges) != dict(template.privileges):
            diff = [
                f"{a} {db}" + (f" {p}" if p else "")
                for a, db, p in privilege_changes(template.privileges, account.privileges)
            ]
            raise VerificationFailed(
                f"account {alternate!r} differs from {current.account_name!r}: {diff[:10]} "
                f"(type {account.account_type} vs {template.account_type})"
            )
        if pending.endpoint:
            pending_conn = connect(pending, self.connect_options, database=pending.db_name, who="PENDING account")
            with closing(pending_conn) as conn:
                if pending.db_name and not sees_database(conn, pending.db_name):
                    raise VerificationFailed(f"account {alternate!r} cannot see database {pending.db_name!r}")

    def can_login(self, ctx: RotationContext, creds: DbCredentials) -> bool:
        if creds.endpoint:
            return try_login(creds, self.connect_options, database=creds.db_name)
        account = self.api.describe(creds.account_name)  # no Endpoint: the API's word is all there is
        return account is not None and account.status == "Available"

    def plan(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> StrategyPlan:
        alternate = self._guard(current, pending)
        checks: list[Check] = []
        if current.endpoint:
            checks.append(Check("CURRENT logs in", self.can_login(ctx, current)))
        try:
            template = self._current_account(current)
        except RotationError as exc:
            return StrategyPlan(
                (f"{alternate} on {self.instance_id}",),
                (),
                (),
                (*checks, Check("CURRENT account can be copied", False, str(exc))),
            )
        checks.append(Check("CURRENT account can be copied", True))
        existing = self.api.describe(alternate)
        calls = [
            f"CreateAccount AccountName={alternate} AccountType={template.account_type} AccountPassword={_REDACTED}"
            if existing is None else f"ResetAccountPassword AccountName={alternate} AccountPassword={_REDACTED}"
        ]
        if existing is not None and existing.account_type != template.account_type:
            checks.append(Check("alternate account has the same type", False,
                                f"{alternate!r} is {existing.account_type}, CURRENT is {template.account_type}"))
        changes = []
        for action, db, privilege in privilege_changes(template.privileges, existing.privileges if existing else {}):
            if action == "grant":
                calls.append(f"GrantAccountPrivilege AccountName={alternate} DBName={db} AccountPrivilege={privilege}")
                changes.append(f"{alternate}: +{db}:{privilege}")
            else:
                calls.append(f"RevokeAccountPrivilege AccountName={alternate} DBName={db}")
                changes.append(f"{alternate}: -{db}:{existing.privileges[db] if existing else ''}")
        return StrategyPlan((f"{alternate} on {self.instance_id}",), tuple(calls), tuple(changes), tuple(checks))

    # -- locking --------------------------------------------------------------------------

    def lock_connection(self, store: Any, secret_name: str) -> Any:
        """A connection for ``GET_LOCK``: the secret's CURRENT account, else its PENDING
        one — on the secret's Endpoint, which it must have."""
        current = store.get_secret(secret_name).db_credentials()
        if not current.endpoint:
            raise InvalidRotationSetup(
                f"secret {secret_name!r} has no Endpoint for a database lock: use lock=strategy.lock(store)"
            )
        candidates = [current]
        with suppress(SecretNotFound):
            candidates.append(store.get_secret(secret_name, stage=Stage.PENDING).db_credentials())
        return connect_first(candidates, self.connect_options, who="lock account")

    def lock(self, store: Any) -> Lock:
        """The lock to give :class:`~rotation.Rotator`: ``GET_LOCK`` on the database when the
        secret has an Endpoint, else an in-process lock (then only the store's compare-and-set
        on CURRENT fences rotators in other processes)."""
        return _EndpointOrLocalLock(self, store)

