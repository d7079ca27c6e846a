"""A database account behind a secret, for the connection tests (no tests here; its fixture,
``account``, is in conftest.py)."""

from __future__ import annotations

import json
import secrets
from typing import Any

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
