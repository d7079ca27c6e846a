"""PostgreSQL strategies: single user and alternating users (``app`` ↔ ``app_rt``).

Passwords are sent as SCRAM-SHA-256 verifiers computed here (:mod:`rotation._pg_sql`), so the
plaintext never reaches the server or its logs. The lock is ``pg_advisory_lock`` on a dedicated
connection to the rotated database (:class:`rotation._pg_conn.PgAdvisoryLock`).

**Alternating users: one owner, two logins.** The *base* role (the name without the suffix,
``app``) holds every privilege, membership and object. The twin ``app_rt`` is a login that acts
as the base role: it is a member of ``app`` and its sessions start with ``SET ROLE app``
(``ALTER ROLE app_rt SET role = 'app'``), so a table created through either login is owned by
``app`` and usable through both, and no object privilege ever needs copying. Each rotation gives
the alternate login the CURRENT login's role attributes (LOGIN, INHERIT, CREATEDB, CREATEROLE,
REPLICATION, BYPASSRLS, SUPERUSER, CONNECTION LIMIT, VALID UNTIL) by difference, and makes the
twin's direct memberships exactly ``{app}``. Before resetting the PREVIOUS login it counts that
login's sessions in ``pg_stat_activity`` and follows the :class:`~rotation.DrainPolicy` (stop
with ``AccountInUse`` by default, wait, or proceed), as the MySQL strategy does.
The MasterSecret account needs CREATEROLE (on PostgreSQL 16+ also ADMIN OPTION on ``app``;
SUPERUSER, REPLICATION or BYPASSRLS attributes can only be copied by a superuser).
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from secretclient.db import POSTGRES
from secretclient.model import DbCredentials, Secret

from .._pg_conn import PgAdvisoryLock, pg_connect, pg_connect_first, pg_query, pg_try_login
from .._pg_sql import (
    MEMBERSHIPS_QUERY,
    SETTINGS_QUERY,
    Hidden,
    Ident,
    PgStatement,
    RoleAttributes,
    alter_attributes,
    check_role_name,
    scram_sha256_verifier,
    set_password,
)
from ..errors import InvalidRotationSetup, LoginFailed, ProtectedAccount, RotationError, VerificationFailed
from ..passwords import POSTGRES_PASSWORD_POLICY
from .base import (
    AlternatingUsersBase,
    Check,
    RotationContext,
    SingleUserBase,
    SqlStrategy,
    StrategyPlan,
    check_grace,
    check_not_reserved,
    swap_suffix,
)

__all__ = ["PostgresAlternatingUsersStrategy", "PostgresSingleUserStrategy"]

_SESSION = "SELECT current_user, session_user"
_SESSIONS_OF = (
    "SELECT CASE WHEN client_addr IS NOT NULL THEN host(client_addr) WHEN client_port = -1 THEN 'local' "
    "ELSE 'unknown host' END AS h, count(*) FROM pg_catalog.pg_stat_activity "
    "WHERE usename = %s AND pid <> pg_backend_pid() GROUP BY h ORDER BY h"
)
#: PostgreSQL's own administrator (``pg_`` names are reserved by the server and cannot be made).
_PG_RESERVED = frozenset({"postgres", "azure_pg_admin", "rds_superuser", "cloudsqladmin"})


class _PostgresStrategy(SqlStrategy):
    name = "postgres"
    default_password_policy = POSTGRES_PASSWORD_POLICY
    default_port = POSTGRES.default_port

    def can_login(self, ctx: RotationContext, creds: DbCredentials) -> bool:
        return pg_try_login(creds, self.connect_options)

    def _admin(self, ctx: RotationContext, current: DbCredentials) -> Any:
        master = self._master(ctx.store, ctx.secret_name, current)
        return pg_connect(master, self.connect_options, database=current.db_name, who="MasterSecret account")

    def _execute(self, conn: Any, stmt: PgStatement) -> None:
        pg_query(conn, stmt)

    def _login(self, creds: DbCredentials, who: str) -> Any:
        return pg_connect(creds, self.connect_options, who=who)

    def _sessions(self, conn: Any, account: str) -> dict[str, int]:
        """Live sessions of login ``account`` per client address (``local``: the unix socket),
        this session excluded. Every role sees every session's login in ``pg_stat_activity``;
        the client address only with the privileges of that role or ``pg_read_all_stats``."""
        return {str(host): int(n) for host, n in pg_query(conn, _SESSIONS_OF, (account,))}

    def _protect_names(self, ctx: RotationContext, current: DbCredentials, accounts: tuple[str, ...]) -> None:
        """Refuse, before any change, to touch through the MasterSecret its own role or a reserved
        one (unless in ``allow_accounts``). Reads the store only; attributes are checked in ``set``."""
        master = self._master(ctx.store, ctx.secret_name, current)
        for account in accounts:
            check_not_reserved(account, self.allow_accounts, master_account=master.account_name)
            if account.lower() in _PG_RESERVED and account not in self.allow_accounts:
                raise ProtectedAccount(
                    f"account {account!r} is PostgreSQL's administrative role; refusing to rotate it through a "
                    "privileged session (allow it with the strategy's allow_accounts= if this is intended)"
                )

    def _protect_attributes(self, role: str, attributes: RoleAttributes | None) -> None:
        """Refuse a role holding administrative attributes (unless in ``allow_accounts``): whoever can
        write the rotated secret must not gain control of such a role through the MasterSecret."""
        if attributes is None or role in self.allow_accounts:
            return
        held = [name for name in ("superuser", "createrole", "replication", "bypassrls") if getattr(attributes, name)]
        if held:
            raise ProtectedAccount(
                f"role {role!r} has {', '.join(a.upper() for a in held)}; refusing to rotate it through the "
                "MasterSecret (allow it with the strategy's allow_accounts= if intended)"
            )

    @staticmethod
    def _attributes(conn: Any, role: str) -> RoleAttributes | None:
        rows = pg_query(conn, RoleAttributes.QUERY, (role,))
        return RoleAttributes.from_row(rows[0]) if rows else None

    def lock_connection(self, store: Any, secret_name: str) -> Any:
        """A connection to the rotated database for the lock: the MasterSecret account, else the
        secret's own CURRENT, else its PENDING (after a crash in self-rotation only that one logs in)."""
        current, candidates = self._lock_candidates(store, secret_name)
        return pg_connect_first(candidates, self.connect_options, database=current.db_name, who="lock account")

    def lock(self, store: Any) -> PgAdvisoryLock:
        """The Rotator's lock: ``pg_advisory_lock`` through :meth:`lock_connection`."""
        return PgAdvisoryLock(lambda name: self.lock_connection(store, name))

    @staticmethod
    def _check_session(conn: Any, pending: DbCredentials, acting_as: str) -> None:
        """The pending login's session: logged in as itself, acting as ``acting_as``, TLS as required."""
        current_user, session_user = pg_query(conn, _SESSION)[0]
        # libpq's own view: pg_stat_ssl hides the row from a session acting as another role.
        ssl = conn.pgconn.ssl_in_use
        if session_user != pending.account_name:
            raise VerificationFailed(f"logged in as {session_user!r}, not {pending.account_name!r}")
        if current_user != acting_as:
            raise VerificationFailed(f"account {pending.account_name!r} acts as {current_user!r}, not as {acting_as!r}")
        if pending.ssl and not ssl:
            raise VerificationFailed(f"account {pending.account_name!r} logged in without TLS although TLS is required")


class PostgresSingleUserStrategy(SingleUserBase, _PostgresStrategy):
    """One role whose password changes in place: ``ALTER ROLE … PASSWORD '<SCRAM verifier>'``,
    run by the MasterSecret account (CREATEROLE) when there is one (or ``use_master=True``),
    else by the role itself (any role may change its own password)."""

    def preflight(self, ctx: RotationContext, current: Secret) -> None:
        creds = current.db_credentials()
        check_role_name(creds.account_name, what="account name")
        if self._preflight_master(creds):
            self._protect_names(ctx, creds, (creds.account_name,))

    def set(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials, *, fresh: bool) -> None:
        self._check_same_account(current, pending)
        statement = set_password(current.account_name, pending.account_password)
        if self._uses_master(current):
            with closing(self._admin(ctx, current)) as conn:
                attributes = self._attributes(conn, current.account_name)
                if attributes is None:
                    raise InvalidRotationSetup(f"role {current.account_name!r} does not exist on the server")
                self._protect_attributes(current.account_name, attributes)
                pg_query(conn, statement)
                ctx.checkpoint("set:mid")
            return
        if not fresh and self.can_login(ctx, pending):
            return  # applied before a crash: the old password no longer works, the new one does
        try:
            conn = pg_connect(current, self.connect_options, who=f"{ctx.labels.current} account")
        except LoginFailed:
            raise LoginFailed(
                f"neither {ctx.labels.current} nor {ctx.labels.pending} of {ctx.secret_name!r} logs in as "
                f"{current.account_name!r}; "
                "repair by hand (see docs/rotation.md)"
            ) from None
        with closing(conn):
            # Its own password even when its sessions act as another role (ALTER ROLE … SET role).
            pg_query(conn, "SET ROLE NONE")
            ctx.checkpoint("set:mid")
            pg_query(conn, statement)

    def test(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> None:
        with closing(pg_connect(pending, self.connect_options, who=f"{ctx.labels.pending} account")) as conn:
            acting_as = pg_query(conn, "SELECT current_user")[0][0]
            self._check_session(conn, pending, acting_as)

    def plan(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> StrategyPlan:
        checks = [Check(f"{ctx.labels.current} logs in", self.can_login(ctx, current))]
        statement = PgStatement(
            "ALTER ROLE {} PASSWORD {}", (Ident(current.account_name), Hidden())
        ).redacted() + " -- a SCRAM-SHA-256 verifier"
        if not self._uses_master(current):
            return StrategyPlan((f"{current.account_name} (changes its own password)",),
                                ("SET ROLE NONE", statement), (), tuple(checks))
        conn = self._admin_or_check(ctx, current)
        if isinstance(conn, Check):
            return StrategyPlan((current.account_name,), (), (), (*checks, conn))
        with closing(conn):
            attributes = self._attributes(conn, current.account_name)
        checks += [Check("MasterSecret logs in", True), Check("role exists", attributes is not None)]
        try:
            self._protect_attributes(current.account_name, attributes)
        except ProtectedAccount as exc:
            checks.append(Check("role may be rotated", False, str(exc)))
        return StrategyPlan((current.account_name,), (statement,), (), tuple(checks))


class PostgresAlternatingUsersStrategy(AlternatingUsersBase, _PostgresStrategy):
    """Two logins, ``app`` and ``app_rt``, acting as the one role ``app``; each rotation
    prepares the login not in use (see the module's docstring for the design).

    ``set`` creates the alternate login when missing (``app_rt`` only: ``app`` owns the
    objects and must exist), sets its password as a SCRAM verifier, copies the CURRENT login's
    role attributes by difference and, for ``app_rt``, makes its memberships exactly ``{app}``
    with ``SET role = 'app'``. It never changes the CURRENT role, and refuses to reset the
    PREVIOUS role within ``grace`` of the current version's creation.
    """

    def alternate(self, account: str) -> str:
        """The other login of the pair (``app`` ↔ ``app_rt``), both names validated."""
        check_role_name(account, what="account name")
        return check_role_name(swap_suffix(account, self.suffix), what=f"alternate account name of {account!r}")

    def base(self, account: str) -> str:
        """The role both logins act as: the name without the suffix."""
        if account.endswith(self.suffix) and len(account) > len(self.suffix):
            return account[: -len(self.suffix)]
        return account

    def preflight(self, ctx: RotationContext, current: Secret) -> None:
        creds = current.db_credentials()
        alternate = self.alternate(creds.account_name)
        self._require_master(ctx, creds)
        self._protect_names(ctx, creds, (creds.account_name, alternate))
        check_grace(ctx, current, alternate, self.grace)
        if not self.drain.proceed:
            with closing(self._admin(ctx, creds)) as conn:
                self._drain(ctx, conn, alternate)

    def _drain(self, ctx: RotationContext, conn: Any, account: str) -> None:
        """Stop with :class:`~rotation.errors.AccountInUse` while login ``account`` has sessions,
        after waiting up to the drain policy's bound (no wait in a dry run)."""
        if self._attributes(conn, account) is None:
            return  # nothing to drain: the alternate does not exist yet
        self._wait_for_drain(ctx, account, lambda: self._sessions(conn, account))

    def _guard(self, current: DbCredentials, pending: DbCredentials) -> str:
        alt = self.alternate(current.account_name)
        if pending.account_name != alt:
            raise InvalidRotationSetup(
                f"the pending version is for {pending.account_name!r}, expected the alternate {alt!r}"
            )
        return alt

    @staticmethod
    def _memberships(conn: Any, role: str) -> dict[str, bool]:
        return {str(name): bool(admin) for name, admin in pg_query(conn, MEMBERSHIPS_QUERY, (role,))}

    @staticmethod
    def _settings(conn: Any, role: str) -> list[str]:
        rows = pg_query(conn, SETTINGS_QUERY, (role,))
        return list(rows[0][0] or []) if rows else []

    def _twin_ready(self, conn: Any, twin: str, base: str) -> bool:
        return base in self._memberships(conn, twin) and f"role={base}" in self._settings(conn, twin)

    def _work(self, conn: Any, current: DbCredentials, pending: DbCredentials) -> tuple[list[PgStatement], list[str]]:
        """(statements, readable changes) making the alternate ready; reads only."""
        alt = pending.account_name
        base = self.base(current.account_name)
        twin = base + self.suffix
        want = self._attributes(conn, current.account_name)
        if want is None:
            raise InvalidRotationSetup(f"role {current.account_name!r} does not exist on the server")
        if current.account_name == twin and not self._twin_ready(conn, twin, base):
            raise InvalidRotationSetup(
                f"the current login {twin!r} does not act as {base!r}, so objects it created are its own: "
                f"run GRANT {base} TO {twin}; ALTER ROLE {twin} SET role = '{base}'; and REASSIGN OWNED BY {twin} "
                f"TO {base} (in each database) before rotating"
            )
        have = self._attributes(conn, alt)
        # The template's attributes would be copied, and an existing alternate's replaced.
        self._protect_attributes(current.account_name, want)
        self._protect_attributes(alt, have)
        created = have is None
        verifier = Hidden(scram_sha256_verifier(pending.account_password))
        changes: list[str] = []
        if have is None:
            if alt == base:
                raise InvalidRotationSetup(f"role {base!r} (which owns the objects) does not exist; create it first")
            # The password first: after a crash in the middle, a retry finds the role and resumes.
            stmts = [PgStatement("CREATE ROLE {} WITH LOGIN PASSWORD {}", (Ident(alt), verifier))]
            have = RoleAttributes()
            changes.append(f"{alt}: created")
        else:
            stmts = [PgStatement("ALTER ROLE {} PASSWORD {}", (Ident(alt), verifier))]
        stmts += alter_attributes(alt, want, have)
        changes += [f"{alt}: {c}" for c in want.describe(have)]
        if alt == twin:
            members = {} if created else self._memberships(conn, twin)
            if base not in members:
                stmts.append(PgStatement("GRANT {} TO {}", (Ident(base), Ident(twin))))
                changes.append(f"{twin}: +member of {base}")
            for extra in sorted(set(members) - {base}):
                stmts.append(PgStatement("REVOKE {} FROM {}", (Ident(extra), Ident(twin))))
                changes.append(f"{twin}: -member of {extra}")
            settings = [] if created else self._settings(conn, twin)
            if f"role={base}" not in settings:
                stmts.append(PgStatement("ALTER ROLE {} SET role = {}", (Ident(twin), base)))
                changes.append(f"{twin}: SET role = {base}")
        for s in stmts:  # the invariant, checked rather than assumed: only the alternate is changed
            if s.args[-1 if s.template.startswith(("GRANT", "REVOKE")) else 0] != Ident(alt):
                raise RotationError("internal error: a statement would change a role other than the alternate")
        return stmts, changes

    def set(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials, *, fresh: bool) -> None:
        self._guard(current, pending)
        with closing(self._admin(ctx, current)) as conn:
            stmts, _ = self._work(conn, current, pending)
            self._apply(ctx, conn, stmts)

    def test(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> None:
        alt = self._guard(current, pending)
        base = self.base(current.account_name)
        # Checked from the pending login's own session (these catalogs are readable by every
        # role): one login fewer than through the MasterSecret account.
        with closing(pg_connect(pending, self.connect_options, who=f"{ctx.labels.pending} account")) as conn:
            self._check_session(conn, pending, acting_as=base)
            want, have = self._attributes(conn, current.account_name), self._attributes(conn, alt)
            if have is None or want is None:
                raise VerificationFailed(f"role {alt!r} or {current.account_name!r} does not exist")
            if want != have:
                raise VerificationFailed(
                    f"role attributes of {alt!r} differ from {ctx.labels.current}'s: {have.describe(want)[:10]}"
                )
            if alt != base:
                members = self._memberships(conn, alt)
                if set(members) != {base} or not self._twin_ready(conn, alt, base):
                    raise VerificationFailed(
                        f"role {alt!r} is not set up to act as {base!r} (member of {sorted(members)})"
                    )

    def plan(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> StrategyPlan:
        self._guard(current, pending)
        checks = [Check(f"{ctx.labels.current} logs in", self.can_login(ctx, current))]
        conn = self._admin_or_check(ctx, current)
        if isinstance(conn, Check):
            return StrategyPlan((pending.account_name,), (), (), (*checks, conn))
        with closing(conn):
            checks.append(Check("MasterSecret logs in", True))
            checks.append(self._drain_check(conn, pending.account_name))
            try:
                stmts, changes = self._work(conn, current, pending)
            except RotationError as exc:
                return StrategyPlan((pending.account_name,), (), (),
                                    (*checks, Check("alternate can be prepared", False, str(exc))))
        checks.append(Check("alternate can be prepared", True))
        return StrategyPlan((pending.account_name,), tuple(s.redacted() for s in stmts), tuple(changes), tuple(checks))
