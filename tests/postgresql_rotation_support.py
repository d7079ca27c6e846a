"""Shared helpers for the PostgreSQL rotation tests and their child process (no tests here).

``python postgresql_rotation_support.py '<json spec>'`` runs a Rotator (or a Scheduler) on a
PostgreSQL secret in its own process; with ``pause_at`` it prints ``PAUSED <point>`` at that
checkpoint and waits to be killed. Kept free of pytest so that it starts fast.
"""

from __future__ import annotations

import itertools
import json
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from rotation_child import child_env, open_store  # noqa: E402

from rotation import DrainPolicy, Rotator  # noqa: E402
from rotation.strategies.postgres import PostgresAlternatingUsersStrategy, PostgresSingleUserStrategy  # noqa: E402
from secretclient.model import CURRENT  # noqa: E402

KINDS = ("alternating", "single-master", "self")
_names = itertools.count(1)


def make_strategy(kind: str, **kw: Any) -> Any:
    if kind == "alternating":
        return PostgresAlternatingUsersStrategy(**{"grace": timedelta(0), **kw})  # back to back: explicit
    return PostgresSingleUserStrategy(use_master=(kind == "single-master"), **kw)


@dataclass
class PgApp:
    """A database, a CREATEROLE master (MasterSecret) and an application role behind secret ``name``."""

    pg: Any
    store: Any
    name: str
    master_name: str
    account: str
    database: str

    def current(self) -> Any:
        return self.store.get_secret(self.name, stage=CURRENT).db_credentials()

    def login(self, creds: Any, **kw: Any) -> Any:
        import psycopg

        kw.setdefault("sslmode", "disable")
        return psycopg.connect(host=creds.endpoint, port=creds.port, user=creds.account_name,
                               password=creds.account_password, dbname=creds.db_name, connect_timeout=5, **kw)

    def can_login(self, creds: Any) -> bool:
        import psycopg

        try:
            self.login(creds).close()
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return False
            raise
        return True


def make_app(pg: Any, store: Any, kind: str, *, attributes: str = "CONNECTION LIMIT 40") -> PgApp:
    """Roles, a database where the app may create tables, and the secrets (engine postgres)."""
    n = next(_names)
    account = f"pgapp{n}{secrets.token_hex(2)}"
    password = secrets.token_urlsafe(16)
    database = pg.create_database("pgrot")
    admin = f"pgadm{n}{secrets.token_hex(2)}"
    admin_pw = secrets.token_urlsafe(16)
    pg.create_user(admin, admin_pw, attributes="CREATEROLE")
    pg.create_user(account, password, grants=(f"ALL ON DATABASE {pg.quote_ident(database)}",), attributes=attributes)
    pg.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {pg.quote_ident(account)}", dbname=database)
    master_name = f"pgmaster-{n}"
    name = f"pgapp-{n}/db"
    store.create_secret(master_name, json.dumps({
        "engine": "postgres", "Endpoint": pg.host, "Port": pg.port, "AccountName": admin,
        "AccountPassword": admin_pw, "SSL": False,
    }), version_id="m1")
    data = {"engine": "postgres", "Endpoint": pg.host, "Port": pg.port, "AccountName": account,
            "AccountPassword": password, "DBName": database, "SSL": False}
    if kind != "self":
        data["MasterSecret"] = master_name
    store.create_secret(name, json.dumps(data), version_id="v0")
    return PgApp(pg, store, name, master_name, account, database)


def drop_app(pg: Any, app: PgApp) -> None:
    """Drop the app's database and roles (the twin first: it is a member of the base role)."""
    pg.execute(f"DROP DATABASE IF EXISTS {pg.quote_ident(app.database)} WITH (FORCE)")
    for role in (app.account + "_rt", app.account):
        pg.drop_user(role)


# -- the child process -------------------------------------------------------------------


def _child(spec: dict[str, Any]) -> int:
    store = open_store(spec["store"])
    pause_at = spec.get("pause_at")

    def checkpoint(point: str) -> None:
        if point == pause_at:
            print(f"PAUSED {point}", flush=True)
            time.sleep(600)  # the parent SIGKILLs us here

    proceed = spec.get("drain") == "proceed" and spec["strategy"] == "alternating"
    options = {"drain": DrainPolicy(proceed=True)} if proceed else {}
    rotator = Rotator(store, strategy=make_strategy(spec["strategy"], **options), checkpoint=checkpoint)
    if spec["mode"] == "rotate":
        result = rotator.rotate(spec["secret"])
        print(f"DONE {result.version_id}", flush=True)
        return 0
    from rotation import Scheduler

    # All four processes start their schedulers at the same instant.
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    scheduler = Scheduler(rotator, spec["secret"], interval=timedelta(hours=1), poll=0.2)
    results: list[Any] = []
    rotator.add_listener(lambda e: results.append(e.kind) if e.kind in ("promoted", "skipped") else None)
    with scheduler:
        scheduler.wait_for_pass(2, timeout=20)
    print("RESULT " + json.dumps(results), flush=True)
    return 0


__all__ = ["KINDS", "PgApp", "child_env", "drop_app", "make_app", "make_strategy", "open_store"]

if __name__ == "__main__":
    sys.exit(_child(json.loads(sys.argv[1])))
