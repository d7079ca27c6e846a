"""Shared by the NCP rotation tests: a Cloud DB-style account and secret on the throwaway MariaDB,
and 8 threads querying through a SQLAlchemy engine whose credentials come from the NCP store."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import db_support
import pymysql

from secretclient import SecretClient
from secretclient.db.policy import RetryPolicy
from secretclient.db.sqlalchemy import create_engine

THREADS = 8


@dataclass
class CdbAccount:
    """A database user and its NCP secret (the seed's keys; cdbPassword the rotation target)."""

    mariadb: object
    emu: object
    user: str = field(default_factory=lambda: "cdb_" + secrets.token_hex(3))
    secret_id: str = ""
    database: str = ""

    def create(self, *, privileged: bool = True, extra: dict | None = None,
               targets: tuple[str, ...] = ("cdbPassword",)) -> CdbAccount:
        self.database = self.mariadb.create_database("ncp")
        password = "pw-" + secrets.token_urlsafe(12)
        grants = [f"ALL ON {self.mariadb.quote_ident(self.database)}.*"]
        if privileged:  # the seed runs ALTER USER as the account itself: MariaDB wants CREATE USER
            grants.append("CREATE USER ON *.*")
        self.mariadb.create_user(self.user, password, grants=grants)
        value = {"cdbHost": self.mariadb.host, "cdbPort": str(self.mariadb.port), "cdbUser": self.user,
                 "cdbDatabase": self.database, "cdbPassword": password, **(extra or {})}
        self.secret_id = self.emu.create_secret("cdb-" + secrets.token_hex(3), json.dumps(value),
                                                rotation_targets=list(targets))
        return self

    def active(self) -> dict:
        return json.loads(self.emu.chain(self.secret_id)["active"])

    def stage(self, label: str) -> dict | None:
        raw = self.emu.chain(self.secret_id).get(label)
        return json.loads(raw) if raw else None

    def can_login(self, value: dict | None) -> bool:
        if value is None:
            return False
        try:
            conn = pymysql.connect(host=value["cdbHost"], port=int(value["cdbPort"]), user=value["cdbUser"],
                                   password=value["cdbPassword"], database=value["cdbDatabase"],
                                   connect_timeout=5, read_timeout=10)
        except pymysql.OperationalError:
            return False
        conn.close()
        return True

    def some_stage_logs_in(self) -> bool:
        return any(self.can_login(self.stage(label)) for label in ("active", "pending", "previous"))


@contextmanager
def querying(account: CdbAccount, store: object, policy: RetryPolicy | None = None) -> Iterator[db_support.Load]:
    """8 threads query through ``create_engine(..., secret=<secret id>, client=SecretClient(store))``
    until the block ends (db_support.querying)."""
    client = SecretClient(store)
    engine = create_engine("mysql+pymysql:///", secret=account.secret_id, client=client, policy=policy,
                           pool_size=THREADS, max_overflow=THREADS, pool_timeout=20)
    try:
        with db_support.querying(engine, THREADS, pause=0.005) as load:
            yield load
    finally:
        engine.dispose()
        client.close()
