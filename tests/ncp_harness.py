"""Shared by the NCP rotation tests: a Cloud DB-style account and secret on the throwaway MariaDB,
and 8 threads querying through a SQLAlchemy engine whose credentials come from the NCP store."""

from __future__ import annotations

import json
import random
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pymysql
import sqlalchemy as sa

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


@dataclass
class Load:
    queries: int = 0
    failures: list[str] = field(default_factory=list)


@contextmanager
def querying(account: CdbAccount, store: object, policy: RetryPolicy | None = None) -> Iterator[Load]:
    """8 threads query through ``create_engine(..., secret=<secret id>, client=SecretClient(store))``
    until the block ends; one connection in five is dropped after its query, so new logins keep
    happening across the rotations."""
    client = SecretClient(store)
    engine = create_engine("mysql+pymysql:///", secret=account.secret_id, client=client, policy=policy,
                           pool_size=THREADS, max_overflow=THREADS, pool_timeout=20)
    load = Load()
    stop = threading.Event()
    lock = threading.Lock()

    def worker(i: int) -> None:
        rng = random.Random(i)
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
                    if rng.random() < 0.2:
                        conn.invalidate()
                with lock:
                    load.queries += 1
            except Exception as exc:  # noqa: BLE001 - any failure is what the test counts
                with lock:
                    load.failures.append(type(exc).__name__)
            stop.wait(0.005)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    try:
        yield load
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        engine.dispose()
        client.close()
