"""A database account behind a secret, for the connection tests (no tests here; its fixture,
``account``, is in conftest.py), and threads that query through an engine while a test rotates."""

from __future__ import annotations

import json
import random
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from store_helpers import CountingStore

from secretclient.client import SecretClient
from secretclient.model import CURRENT, PENDING
from secretclient.stores.embedded import EmbeddedStore


class Account:
    """A database user, its secret and the means to rotate it (SQL + store)."""

    def __init__(self, mariadb, *, ssl: bool | None = False, port: int | None = None) -> None:
        self.db = mariadb
        self.database = mariadb.create_database("conn")
        self.user = f"app_{secrets.token_hex(3)}"
        self.secret = f"db/{self.user}"
        self.passwords: list[str] = []
        self.ssl = ssl
        self.port = port or mariadb.port
        password = self.new_password()
        mariadb.create_user(self.user, password, grants=(f"ALL ON {self.database}.*",))
        self.store = CountingStore(EmbeddedStore())
        self.store.create_secret(self.secret, self.doc(self.user, password), version_id="v1")
        self.versions = 1
        self.client = SecretClient(self.store, rotation_aware=False)

    def new_password(self) -> str:
        password = "pw-" + secrets.token_urlsafe(16)
        self.passwords.append(password)
        return password

    def doc(self, user: str, password: str) -> str:
        data: dict[str, Any] = {"AccountName": user, "AccountPassword": password, "Endpoint": self.db.host,
                                "Port": self.port, "DBName": self.database}
        if self.ssl is not None:
            data["SSL"] = self.ssl
        return json.dumps(data)

    def set_password(self, user: str, password: str) -> None:
        self.db.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))

    def put(self, user: str, password: str, stages: list[str] | None) -> str:
        self.versions += 1
        version = f"v{self.versions}"
        self.store.inner.put_secret(self.secret, version, self.doc(user, password), stages=stages)
        return version

    def rotate(self, *, promote: bool = True) -> str:
        """Single-user rotation: new (ACSPending), set (ALTER USER), end (promote)."""
        password = self.new_password()
        version = self.put(self.user, password, [PENDING])
        self.set_password(self.user, password)
        if promote:
            self.promote(version)
        return version

    def promote(self, version: str) -> None:
        self.store.inner.update_stage(self.secret, CURRENT, move_to=version)
        self.store.inner.update_stage(self.secret, PENDING, remove_from=version)

    def failed_logins(self) -> int:
        return self.db.failed_logins(self.user)


@dataclass
class Load:
    """What the querying threads did: queries per thread, and each failure as "Type: message"."""

    per_thread: list[int]
    failures: list[str] = field(default_factory=list)

    @property
    def queries(self) -> int:
        return sum(self.per_thread)


@contextmanager
def querying(engine: sa.Engine, threads: int, *, pause: float = 0.0) -> Iterator[Load]:
    """``threads`` threads run ``SELECT 1`` through ``engine`` until the block ends, ``pause``
    seconds apart; one connection in five is dropped after its query, so new logins keep
    happening all the time, across every rotation."""
    load = Load([0] * threads)
    stop = threading.Event()

    def worker(i: int) -> None:
        rng = random.Random(i)
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
                    if rng.random() < 0.2:
                        conn.invalidate()
                load.per_thread[i] += 1
            except Exception as exc:  # noqa: BLE001 - any failure at all is what the tests count
                load.failures.append(f"{type(exc).__name__}: {exc}")
            if pause:
                stop.wait(pause)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in workers:
        t.start()
    try:
        yield load
    finally:
        stop.set()
        for t in workers:
            t.join(30)
