"""Shared helpers for the rotation tests (no tests here; their fixtures are in conftest.py)."""

from __future__ import annotations

import itertools
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql
from rotation_child import STRATEGIES, child_env, make_strategy, open_store

from secretclient.errors import InvalidParameter
from secretclient.model import ACS_STAGES, AWS_STAGES, CURRENT, PENDING, PREVIOUS, Secret, VersionInfo
from secretclient.stores.embedded import EmbeddedStore

_names = itertools.count(1)




# -- stores ------------------------------------------------------------------------------


@dataclass
class StoreHandle:
    """A store for the test process, and what a child process needs to open the same one."""

    kind: str
    store: Any
    spec: dict[str, Any]
    backing: EmbeddedStore
    closers: list[Any] = field(default_factory=list)
    #: The backing store's clock (set its offset to move the store's time).
    clock: Any = None

    def open_again(self) -> Any:
        return open_store(self.spec)

    def close(self) -> None:
        for c in reversed(self.closers):
            c()


class ShiftedClock:
    """A UTC clock that can be set back (to create secrets "hours ago")."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def start_store(kind: str, tmp_path: Path, clock: ShiftedClock | None = None) -> StoreHandle:
    clock = clock or ShiftedClock()
    backing = EmbeddedStore(tmp_path / "secrets.db", clock=clock)
    if kind == "embedded":
        return StoreHandle(kind, backing, {"kind": "embedded", "path": str(tmp_path / "secrets.db")}, backing,
                           [backing.close], clock)
    from secretclient.testing.kms_emulator import KmsEmulator

    emulator = KmsEmulator(store=backing).start()
    store = emulator.store()
    spec = {"kind": "kms", "region": emulator.region, "endpoint": emulator.endpoint,
            "ak": emulator.access_key_id, "sk": emulator.access_key_secret}
    return StoreHandle(kind, store, spec, backing, [backing.close, emulator.stop, store.close], clock)


class AwsLabelledStore:
    """A real EmbeddedStore seen through AWS's labels (``AWSCURRENT``…): every stage going in is
    translated from its role, every stage coming out is relabelled, and an ACS label is refused,
    so code that still says ``ACSCurrent`` fails here instead of working by accident."""

    stage_labels = AWS_STAGES

    def __init__(self, inner: EmbeddedStore) -> None:
        self.inner = inner

    def _in(self, stage: str | None) -> str | None:
        if stage is None:
            return None
        if stage in (ACS_STAGES.current, ACS_STAGES.pending, ACS_STAGES.previous):
            raise InvalidParameter(f"{stage!r} is not a stage of this store (it uses AWS labels)")
        role = AWS_STAGES.role(stage)
        return ACS_STAGES.label(role) if role else stage

    def _out(self, stages: frozenset[str]) -> frozenset[str]:
        return frozenset(AWS_STAGES.label(ACS_STAGES.role(s) or s) for s in stages)

    def _secret(self, secret: Secret) -> Secret:
        return Secret(secret.name, secret.version_id, self._out(secret.stages), secret.data, secret.created,
                      secret.secret_type, secret.extended_config)

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Secret:
        return self._secret(self.inner.get_secret(name, stage=self._in(stage), version_id=version_id))

    def put_secret(self, name: str, version_id: str, data: str | bytes, *, stages: Any = None) -> VersionInfo:
        mapped = None if stages is None else [self._in(s) for s in stages]
        v = self.inner.put_secret(name, version_id, data, stages=mapped)
        return VersionInfo(v.version_id, self._out(v.stages), v.created)

    def update_stage(self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None) -> None:
        self.inner.update_stage(name, self._in(stage) or "", move_to=move_to, remove_from=remove_from)

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        return [VersionInfo(v.version_id, self._out(v.stages), v.created)
                for v in self.inner.list_versions(name, include_deprecated=include_deprecated)]

    def __getattr__(self, name: str) -> Any:  # describe, random_password, create_secret, close…
        return getattr(self.inner, name)


# -- database accounts -------------------------------------------------------------------


@dataclass
class App:
    """A database, an admin (MasterSecret) and an application account behind secret ``name``."""

    db: Any
    store: Any
    name: str
    master_name: str
    account: str
    database: str
    hosts: tuple[str, ...]
    admin_account: str

    def current(self) -> Any:
        return self.store.get_secret(self.name, stage=CURRENT).db_credentials()

    def login(self, creds: Any) -> pymysql.Connection:
        return pymysql.connect(host=creds.endpoint, port=creds.port, user=creds.account_name,
                               password=creds.account_password, database=creds.db_name,
                               connect_timeout=5, read_timeout=10, ssl_disabled=True)

    def can_login(self, creds: Any) -> bool:
        try:
            self.login(creds).close()
        except pymysql.err.OperationalError as exc:
            if exc.args[0] in (1045, 1044):
                return False
            raise
        return True


_HASH_RE = re.compile(r" IDENTIFIED (BY PASSWORD|VIA \w+ USING) '[^']*'")


def own_grants(conn: pymysql.Connection, account: str) -> list[str]:
    """``SHOW GRANTS`` of the logged-in account, normalised: its name replaced, hashes cut, sorted."""
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        rows = [str(r[0]) for r in cur.fetchall()]
    return sorted(_HASH_RE.sub("", r).replace(f"`{account}`@", "`ACCOUNT`@") for r in rows)


def all_grants(db: Any, account: str, hosts: tuple[str, ...]) -> dict[str, list[str]]:
    """Per host, ``SHOW GRANTS`` of ``account`` seen by root, normalised as in :func:`own_grants`."""
    out = {}
    with db.admin() as conn, conn.cursor() as cur:
        for host in hosts:
            cur.execute("SHOW GRANTS FOR %s@%s", (account, host))
            out[host] = sorted(_HASH_RE.sub("", str(r[0])).replace(f"`{account}`@", "`ACCOUNT`@") for r in cur.fetchall())
    return out


def account_state(db: Any, account: str) -> dict[str, list[Any]]:
    """Everything the server keeps about ``account``, raw: password hashes, plugin, TLS and limits
    (``mysql.global_priv``), table/column/routine privileges, roles and ``SHOW GRANTS``."""
    where = "WHERE User = %s ORDER BY Host"
    out: dict[str, list[Any]] = {}
    with db.admin() as conn, conn.cursor() as cur:
        for table in ("global_priv", "db", "tables_priv", "columns_priv", "procs_priv", "roles_mapping"):
            cur.execute(f"SELECT * FROM mysql.{table} {where}", (account,))
            out[table] = sorted(map(repr, cur.fetchall()))
        cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (account,))
        for (host,) in cur.fetchall():
            cur.execute("SHOW GRANTS FOR %s@%s", (account, host))
            out[f"grants@{host}"] = [str(r[0]) for r in cur.fetchall()]
    return out


def drop_accounts(db: Any, *names: str) -> None:
    with db.admin() as conn, conn.cursor() as cur:
        for name in names:
            cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (name,))
            for (host,) in cur.fetchall():
                cur.execute("DROP USER %s@%s", (name, host))


def make_app(db: Any, store: Any, kind: str, *, account: str | None = None, password: str | None = None,
             rich: bool = True, extra: dict[str, Any] | None = None) -> App:
    """Create the accounts and secrets for a strategy ``kind``; rich grants unless ``rich=False``."""
    n = next(_names)
    account = account or f"app{n}{secrets.token_hex(2)}"
    password = password or secrets.token_urlsafe(16)
    database = db.create_database("rot")
    admin = f"adm{n}{secrets.token_hex(2)}"
    admin_pw = secrets.token_urlsafe(16)
    db.create_user(admin, admin_pw)
    db.execute("GRANT ALL ON *.* TO %s@%s WITH GRANT OPTION", (admin, "%"))
    hosts: tuple[str, ...] = ("%",)
    with db.admin() as conn, conn.cursor() as cur:
        q = db.quote_ident(database).replace("%", "%%")
        cur.execute(f"CREATE TABLE {q}.t (a INT, b INT, c INT)")
        cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (account, "%", password))
        cur.execute(f"GRANT SELECT, INSERT ON {q}.* TO %s@%s", (account, "%"))
        if rich and kind != "self":
            role = f"role{n}{secrets.token_hex(2)}"
            cur.execute(f"CREATE ROLE {db.quote_ident(role)}")
            cur.execute(f"GRANT SELECT ON {q}.* TO {db.quote_ident(role)}")
            cur.execute(f"GRANT UPDATE (b, c) ON {q}.t TO %s@%s WITH GRANT OPTION", (account, "%"))
            cur.execute(f"GRANT {db.quote_ident(role)} TO %s@%s", (account, "%"))
            # Granting a role needs its ADMIN OPTION (the docs list the MasterSecret's privileges).
            cur.execute(f"GRANT {db.quote_ident(role)} TO %s@%s WITH ADMIN OPTION", (admin, "%"))
            cur.execute(f"SET DEFAULT ROLE {db.quote_ident(role)} FOR %s@%s", (account, "%"))
            cur.execute("ALTER USER %s@%s WITH MAX_USER_CONNECTIONS 40", (account, "%"))
            # A second host entry with its own grants: the login from 127.0.0.1 matches this one.
            cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (account, "127.0.0.1", password))
            cur.execute(f"GRANT SELECT ON {q}.t TO %s@%s", (account, "127.0.0.1"))
            hosts = ("%", "127.0.0.1")
    master_name = f"master-{n}"
    name = f"app-{n}/db"
    store.create_secret(master_name, json.dumps({
        "Endpoint": db.host, "Port": db.port, "AccountName": admin, "AccountPassword": admin_pw, "SSL": False,
    }), version_id="m1")
    data = {"Endpoint": db.host, "Port": db.port, "AccountName": account, "AccountPassword": password,
            "DBName": database, "SSL": False, **(extra or {})}
    if kind != "self":
        data["MasterSecret"] = master_name
    store.create_secret(name, json.dumps(data), version_id="v0")
    return App(db, store, name, master_name, account, database, hosts, admin)


def stages_snapshot(store: Any, name: str) -> dict[str, tuple[str, Any]]:
    """{stage: (version_id, DbCredentials)} for every stage label of the secret."""
    out = {}
    for v in store.list_versions(name):
        for stage in v.stages:
            out[stage] = (v.version_id, store.get_secret(name, version_id=v.version_id).db_credentials())
    return out


__all__ = [
    "CURRENT",
    "PENDING",
    "PREVIOUS",
    "STRATEGIES",
    "App",
    "AwsLabelledStore",
    "ShiftedClock",
    "StoreHandle",
    "account_state",
    "all_grants",
    "child_env",
    "drop_accounts",
    "make_app",
    "make_strategy",
    "open_store",
    "own_grants",
    "stages_snapshot",
    "start_store",
]
