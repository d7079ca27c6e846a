"""MySQL / MariaDB strategies: single user and alternating users (the seed's ``_rt`` scheme).

Both read the server version once per connection and write SQL for it (:mod:`rotation.sql`).
A privileged account comes from the *MasterSecret* named in the secret (or ``master_secret=``);
its Endpoint and Port must match the rotated secret's.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import pymysql

from secretclient.db import MYSQL
from secretclient.model import DbCredentials, Secret

from ..dbconn import connect, connect_first, query, run, sees_database, session_cipher, try_login
from ..errors import (
    InvalidRotationSetup,
    LoginFailed,
    ProtectedAccount,
    RotationError,
    VerificationFailed,
)
from ..grants import Grants, grant_statements, parse_grants
from ..passwords import MYSQL_PASSWORD_POLICY
from ..sql import (
    NAME_LIMIT_MYSQL,
    AccountOptions,
    Dialect,
    ServerVersion,
    Statement,
    check_account_name,
    check_host,
)
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

__all__ = ["AlternatingUsersStrategy", "SingleUserStrategy"]

# Live sessions of an account, this session excluded; HOST is "client:port" (or "localhost").
_SESSIONS = "SELECT HOST FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()"
# Without PROCESS a session sees only its own account's sessions: a drain check would be blind.
_HAS_PROCESS = Statement(
    "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE = 'PROCESS' AND GRANTEE = "
    "CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")"
)
# Host entries of an account holding global administrative privileges (SUPER, CREATE USER or
# GRANT OPTION on *.*): such an account is never rotated through the MasterSecret unless allowed.
_ADMIN_ENTRIES = Statement(
    "SELECT Host FROM mysql.user WHERE User = %s AND (Super_priv = 'Y' OR Create_user_priv = 'Y' OR Grant_priv = 'Y')"
)


class _MySqlStrategy(SqlStrategy):
    name = "mysql"
    default_password_policy = MYSQL_PASSWORD_POLICY
    default_port = MYSQL.default_port

    def __init__(self, *, name_limit: int = NAME_LIMIT_MYSQL, **options: Any) -> None:
        if not isinstance(name_limit, int) or not 1 <= name_limit <= 80:
            raise InvalidRotationSetup("name_limit must be from 1 to 80 (16 RDS, 32 MySQL, 80 MariaDB)")
        super().__init__(**options)
        self.name_limit = name_limit

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name_limit={self.name_limit}, master_secret={self.master_secret!r})"

    # -- shared helpers -----------------------------------------------------------------------

    def can_login(self, ctx: RotationContext, creds: DbCredentials) -> bool:
        return try_login(creds, self.connect_options, database=creds.db_name)

    @staticmethod
    def _sessions(conn: pymysql.Connection, account: str) -> dict[str, int]:
        """Live sessions of ``account`` per client host (this session excluded)."""
        out: dict[str, int] = {}
        for (host,) in query(conn, Statement(_SESSIONS, (account,))):
            text = str(host or "")
            client, _, port = text.rpartition(":")
            name = client if client and port.isdigit() else text
            out[name] = out.get(name, 0) + 1
        return dict(sorted(out.items()))

    def _login(self, creds: DbCredentials, who: str) -> pymysql.Connection:
        return connect(creds, self.connect_options, who=who)

    def _protect(self, ctx: RotationContext, current: DbCredentials, accounts: tuple[str, ...],
                 conn: pymysql.Connection | None = None) -> None:
        """Refuse, before any change, to touch ``accounts`` through the MasterSecret when one is the
        MasterSecret's own, reserved, or holds global administrative privileges (unless allowed):
        whoever can write the rotated secret must not gain control of such an account."""
        master = self._master(ctx.store, ctx.secret_name, current)
        for account in accounts:
            check_not_reserved(account, self.allow_accounts, master_account=master.account_name)
        todo = [a for a in accounts if a not in self.allow_accounts]
        if not todo:
            return
        with closing(self._admin(ctx, current)) if conn is None else _borrowed(conn) as session:
            for account in todo:
                if query(session, Statement(_ADMIN_ENTRIES.sql, (account,))):
                    raise ProtectedAccount(
                        f"account {account!r} holds SUPER, CREATE USER or GRANT OPTION on *.*; refusing to rotate "
                        "it through the MasterSecret (allow it with the strategy's allow_accounts= if intended)"
                    )

    def _admin(self, ctx: RotationContext, current: DbCredentials) -> pymysql.Connection:
        master = self._master(ctx.store, ctx.secret_name, current)
        if current.ssl and not master.ssl:
            # This session carries the account's new password: it must be at least as protected
            # as the account, so an "SSL": true account makes it verified TLS whatever the master says.
            master = master.with_changes(ssl=True)
        return connect(master, self.connect_options, who="MasterSecret account")

    @staticmethod
    def _dialect(conn: pymysql.Connection) -> Dialect:
        row = query(conn, Statement("SELECT VERSION(), @@version_comment"))[0]
        return Dialect(ServerVersion.parse(str(row[0]), str(row[1] or "")))

    @staticmethod
    def _hosts(conn: pymysql.Connection, user: str) -> list[str]:
        """The host entries of ``user`` (at least one, else :class:`InvalidRotationSetup`)."""
        rows = query(
            conn, Statement("SELECT Host FROM mysql.user WHERE User = %s AND Host <> '' ORDER BY Host", (user,))
        )
        if not rows:
            raise InvalidRotationSetup(f"account {user!r} does not exist on the server")
        return [check_host(str(r[0])) for r in rows]

    @staticmethod
    def _options(conn: pymysql.Connection, user: str, host: str) -> AccountOptions | None:
        rows = query(conn, Statement(AccountOptions.QUERY, (user, host)))
        return AccountOptions.from_row(rows[0]) if rows else None

    @staticmethod
    def _grants(conn: pymysql.Connection, user: str, host: str) -> Grants:
        rows = query(conn, Statement("SHOW GRANTS FOR %s@%s", (user, host)))
        return parse_grants((str(r[0]) for r in rows), user, host)

    def lock_connection(self, store: Any, secret_name: str) -> pymysql.Connection:
        """A connection for the rotation lock: the MasterSecret account, else the secret's own
        CURRENT, else its PENDING (after a crash in self-rotation only that one logs in)."""
        _, candidates = self._lock_candidates(store, secret_name)
        return connect_first(candidates, self.connect_options, who="lock account")

    def _execute(self, conn: pymysql.Connection, stmt: Statement) -> None:
        run(conn, stmt)

    def _test_session(self, conn: pymysql.Connection, pending: DbCredentials, needs_tls: bool) -> None:
        """Exercise a real privilege and the TLS mode on a session of the pending account."""
        if pending.db_name:
            if not sees_database(conn, pending.db_name):
                raise VerificationFailed(f"account {pending.account_name!r} cannot see database {pending.db_name!r}")
        elif not query(conn, Statement("SHOW GRANTS")):
            raise VerificationFailed(f"account {pending.account_name!r} has no grants at all")
        if (needs_tls or pending.ssl) and not session_cipher(conn):
            raise VerificationFailed(f"account {pending.account_name!r} logged in without TLS although TLS is required")


class _borrowed:
    """A context manager lending a connection the caller keeps open."""

    def __init__(self, conn: pymysql.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> pymysql.Connection:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        return None


class SingleUserStrategy(SingleUserBase, _MySqlStrategy):
    """One account whose password changes in place.

    With a MasterSecret (in the secret or ``master_secret=``) the privileged account runs
    ``ALTER USER`` on every host entry of the account; otherwise the account changes its own
    password (``SET PASSWORD`` / ``ALTER USER USER()``), which needs no privileges.
    ``retain_current_password`` (MySQL 8.0.14+ only) keeps the old password valid until the
    next rotation, closing the gap during which only the new one works.
    """

    def __init__(self, *, retain_current_password: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.retain_current_password = retain_current_password

    def preflight(self, ctx: RotationContext, current: Secret) -> None:
        creds = current.db_credentials()
        check_account_name(creds.account_name, self.name_limit)
        if self._preflight_master(creds):
            self._protect(ctx, creds, (creds.account_name,))

    def _statements(self, ctx: RotationContext, conn: pymysql.Connection, current: DbCredentials,
                    pending: DbCredentials, *, fresh: bool) -> list[Statement]:
        dialect = self._dialect(conn)
        user = current.account_name
        retain = self.retain_current_password and dialect.has_retain_current_password
        if retain and not fresh and self.can_login(ctx, pending):
            # Applied before (a retried or resumed set): retaining again would replace the
            # retained old password, still in use by CURRENT's consumers, with the new one.
            retain = False
        out = []
        for host in self._hosts(conn, user):
            opts = self._options(conn, user, host) or AccountOptions()
            out.append(dialect.set_password(user, host, pending.account_password, plugin=opts.plugin, retain=retain))
        return out

    def set(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials, *, fresh: bool) -> None:
        self._check_same_account(current, pending)
        if self._uses_master(current):
            with closing(self._admin(ctx, current)) as conn:
                self._apply(ctx, conn, self._statements(ctx, conn, current, pending, fresh=fresh))
            return
        if not fresh and self.can_login(ctx, pending):
            return  # applied before a crash: the old password no longer works, the new one does
        try:
            conn = connect(current, self.connect_options, who="CURRENT account")
        except LoginFailed:
            if self.can_login(ctx, pending):
                return  # applied meanwhile by another rotator that joined this rotation
            raise LoginFailed(
                f"neither CURRENT nor PENDING of {ctx.secret_name!r} logs in as {current.account_name!r}; "
                "repair by hand (see docs/rotation.md)"
            ) from None
        with closing(conn):
            dialect = self._dialect(conn)
            native = self._own_native(conn)
            ctx.checkpoint("set:mid")
            run(conn, dialect.set_own_password(pending.account_password, current.account_password,
                                               retain=self.retain_current_password, native=native))

    @staticmethod
    def _own_native(conn: pymysql.Connection) -> bool:
        """Whether the session's account stores a ``mysql_native_password`` hash (its own grants say)."""
        rows = query(conn, Statement("SHOW GRANTS FOR CURRENT_USER()"))
        return bool(rows) and "IDENTIFIED BY PASSWORD '*" in str(rows[0][0])

    def test(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> None:
        with closing(connect(pending, self.connect_options, database=pending.db_name, who="PENDING account")) as conn:
            self._test_session(conn, pending, needs_tls=False)

    def plan(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> StrategyPlan:
        checks = [Check("CURRENT logs in", self.can_login(ctx, current))]
        if not self._uses_master(current):
            stmts: tuple[str, ...] = ()
            accounts = (f"{current.account_name} (changes its own password)",)
            if checks[0].ok:
                with closing(connect(current, self.connect_options)) as conn:
                    d = self._dialect(conn)
                    stmts = (d.set_own_password(pending.account_password, current.account_password,
                                                retain=self.retain_current_password,
                                                native=self._own_native(conn)).redacted(),)
            return StrategyPlan(accounts, stmts, (), tuple(checks))
        admin = self._admin_or_check(ctx, current)
        if isinstance(admin, Check):
            return StrategyPlan((current.account_name,), (), (), (*checks, admin))
        with closing(admin):
            # fresh=True: a dry run never logs in with a placeholder password.
            stmts_ = self._statements(ctx, admin, current, pending, fresh=True)
            return StrategyPlan(
                tuple(f"{s.params[0]}@{s.params[1]}" for s in stmts_),
                tuple(s.redacted() for s in stmts_),
                (),
                (*checks, Check("MasterSecret logs in", True)),
            )


class AlternatingUsersStrategy(AlternatingUsersBase, _MySqlStrategy):
    """Two accounts, ``appuser`` and ``appuser_rt``; each rotation prepares the one not in use.

    ``set`` creates the alternate account when missing, gives it the auth plugin, TLS
    requirement and resource limits of the CURRENT account, copies grants by difference
    (granting what is missing, revoking what is extra) and sets the password — on every host
    entry of the CURRENT account. It never changes the CURRENT account, and refuses to
    reset the PREVIOUS account within ``grace`` of the current version's creation (set it
    to the consumers' cache TTL). ``name_limit``: 16 for RDS, 32 for MySQL 5.7+, 80 for MariaDB.
    """

    name = "alternating-users"

    suffix_punctuation = "_.-"

    def _drain(self, ctx: RotationContext, conn: pymysql.Connection, account: str) -> None:
        """Stop with :class:`AccountInUse` while ``account`` has sessions, after waiting up to the
        drain policy's bound (no wait in a dry run)."""
        policy = self.drain
        if policy.proceed or not query(conn, Statement("SELECT 1 FROM mysql.user WHERE User = %s LIMIT 1", (account,))):
            return  # told to, or nothing to drain: the account does not exist yet
        if not query(conn, _HAS_PROCESS)[0][0]:
            raise InvalidRotationSetup(
                "the MasterSecret account needs the PROCESS privilege to see who still uses the account to be "
                "reset (or give the strategy drain=DrainPolicy(proceed=True))"
            )
        self._wait_for_drain(ctx, account, lambda: self._sessions(conn, account))

    def alternate(self, account: str) -> str:
        """The other account of the pair (``appuser`` ↔ ``appuser_rt``), both names validated."""
        check_account_name(account, self.name_limit)
        return check_account_name(
            swap_suffix(account, self.suffix), self.name_limit, what=f"alternate account name of {account!r}"
        )

    def preflight(self, ctx: RotationContext, current: Secret) -> None:
        creds = current.db_credentials()
        alternate = self.alternate(creds.account_name)
        self._require_master(ctx, creds)
        check_grace(ctx, current, alternate, self.grace)
        with closing(self._admin(ctx, creds)) as conn:
            # The alternate gets the CURRENT account's grants: both must be ordinary accounts.
            self._protect(ctx, creds, (creds.account_name, alternate), conn)
            self._drain(ctx, conn, alternate)

    def _guard(self, current: DbCredentials, pending: DbCredentials) -> str:
        alternate = self.alternate(current.account_name)
        if pending.account_name != alternate or pending.account_name == current.account_name:
            raise InvalidRotationSetup(
                f"pending account {pending.account_name!r} is not the alternate {alternate!r} "
                f"of CURRENT account {current.account_name!r}; refusing to modify it"
            )
        if (pending.endpoint, pending.port) != (current.endpoint, current.port):
            raise InvalidRotationSetup("the pending version points at another Endpoint/Port than CURRENT")
        return alternate

    def _work(
        self, conn: pymysql.Connection, current: DbCredentials, pending: DbCredentials
    ) -> list[tuple[str, list[Statement], Grants, Grants]]:
        """Per host: the statements, and the alternate's grants before and the grants wanted."""
        dialect = self._dialect(conn)
        user, alt = current.account_name, pending.account_name
        out = []
        for host in self._hosts(conn, user):
            template = self._options(conn, user, host) or AccountOptions()
            dialect.check_plugin(template.plugin)
            want = self._grants(conn, user, host)
            existing = self._options(conn, alt, host)
            if existing is None:
                stmts = [dialect.create_user(alt, host, pending.account_password, template.plugin)]
                existing, have = AccountOptions(plugin=template.plugin), Grants()
            else:
                stmts = [dialect.set_password(alt, host, pending.account_password, plugin=template.plugin)]
                have = self._grants(conn, alt, host)
            if not existing.tls_equal(template):
                stmts.append(dialect.require(alt, host, template))
            if existing.limits != template.limits:
                stmts.append(dialect.limits(alt, host, template.limits))
            stmts += grant_statements(have, want, alt, host, dialect)
            for s in stmts:  # the invariant, checked rather than assumed: only the alternate is touched
                if s.params[:2] != (alt, host):
                    raise RotationError("internal error: a statement would touch an account other than the alternate")
            out.append((host, stmts, have, want))
        return out

    def set(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials, *, fresh: bool) -> None:
        self._guard(current, pending)
        with closing(self._admin(ctx, current)) as conn:
            for _host, stmts, _have, _want in self._work(conn, current, pending):
                self._apply(ctx, conn, stmts)

    def test(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> None:
        alt = self._guard(current, pending)
        needs_tls = False
        with closing(self._admin(ctx, current)) as admin:
            for host in self._hosts(admin, current.account_name):
                template = self._options(admin, current.account_name, host) or AccountOptions()
                mine = self._options(admin, alt, host)
                if mine is None:
                    raise VerificationFailed(f"account {alt!r}@{host!r} does not exist")
                if not mine.tls_equal(template) or mine.plugin != template.plugin or mine.limits != template.limits:
                    raise VerificationFailed(
                        f"account {alt!r}@{host!r} differs from {current.account_name!r} in TLS, plugin or limits"
                    )
                want, have = self._grants(admin, current.account_name, host), self._grants(admin, alt, host)
                if want != have:
                    diff = [f"+{p}" for p in sorted(map(str, want.privileges - have.privileges))]
                    diff += [f"-{p}" for p in sorted(map(str, have.privileges - want.privileges))]
                    raise VerificationFailed(f"grants of {alt!r}@{host!r} differ from CURRENT's: {diff[:10]}")
                needs_tls = needs_tls or template.requires_tls
        with closing(connect(pending, self.connect_options, database=pending.db_name, who="PENDING account")) as conn:
            self._test_session(conn, pending, needs_tls)

    def plan(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> StrategyPlan:
        self._guard(current, pending)
        checks = [Check("CURRENT logs in", self.can_login(ctx, current))]
        conn = self._admin_or_check(ctx, current)
        if isinstance(conn, Check):
            return StrategyPlan((pending.account_name,), (), (), (*checks, conn))
        with closing(conn):
            checks.append(Check("MasterSecret logs in", True))
            checks.append(self._drain_check(conn, pending.account_name))
            try:
                work = self._work(conn, current, pending)
            except RotationError as exc:
                return StrategyPlan(
                    (pending.account_name,), (), (), (*checks, Check("grants can be copied", False, str(exc)))
                )
        accounts, stmts, changes = [], [], []
        for host, host_stmts, have, want in work:
            accounts.append(f"{pending.account_name}@{host}")
            stmts += [s.redacted() for s in host_stmts]
            changes += [f"{pending.account_name}@{host}: +{p}" for p in want.describe() if p not in have.describe()]
            changes += [f"{pending.account_name}@{host}: -{p}" for p in have.describe() if p not in want.describe()]
        checks.append(Check("grants can be copied", True))
        return StrategyPlan(tuple(accounts), tuple(stmts), tuple(changes), tuple(checks))
