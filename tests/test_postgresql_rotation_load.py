"""Under load on PostgreSQL: 8 threads do INSERT + SELECT while 8 alternating-users and 4
single-user rotations run; not one query fails, and a table created by the login in use before
each rotation is readable and writable by the login in use after it. Twice: through plain
psycopg connections (reconnecting often with the stored credentials: CURRENT, then PENDING),
and through ``secretclient.db.create_engine("postgresql+psycopg:///")`` with a SecretClient."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from postgresql_rotation_support import PgApp, drop_app, make_app, make_strategy  # noqa: E402

from rotation import DrainPolicy, Rotator  # noqa: E402
from secretclient.errors import SecretNotFound  # noqa: E402
from secretclient.model import CURRENT, PENDING  # noqa: E402
from secretclient.stores.embedded import EmbeddedStore  # noqa: E402

pytestmark = pytest.mark.slow

THREADS = 8
RECONNECT_EVERY = 5  # queries per plain connection: logins keep happening during every rotation

#: One worker's round: INSERT a row numbered ``n`` and return how many rows the worker has.
Query = Callable[[int, int], int]


def _connect(app: Any, store: Any) -> Any:
    """Log in as an application would: CURRENT, else PENDING (a rotation between its set and
    end steps), re-reading both after each refusal; bounded."""
    last: Exception | None = None
    for _ in range(6):
        for stage in (CURRENT, PENDING):
            try:
                creds = store.get_secret(app.name, stage=stage).db_credentials()
            except SecretNotFound:
                continue
            try:
                return app.login(creds)
            except psycopg.OperationalError as exc:
                if "password authentication failed" not in str(exc):
                    raise
                last = exc
    raise AssertionError(f"no stored credentials log in: {last}")


def _drive(pg: Any, store: Any, app: PgApp, worker_round: Callable[[int, threading.Event, list[int]], None],
           client: Any = None) -> None:
    """Run the workers while 8 alternating and 4 single-user rotations happen; assert the outcome."""
    with app.login(app.current()) as conn:
        conn.execute("CREATE TABLE load (worker int, n int)")
        conn.commit()
    stop = threading.Event()
    queries = [0] * THREADS
    failures: list[str] = []

    def worker(i: int) -> None:
        try:
            worker_round(i, stop, queries)
        except Exception as exc:  # a failed query or a login no stage could make
            failures.append(f"worker {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    # Pooled sessions of the PREVIOUS login roll over at their next checkout (and a closed session
    # may linger in pg_stat_activity for a moment): the drain check waits for them, bounded.
    drain = DrainPolicy(wait=20, poll=0.05)
    alternating = Rotator(store, strategy=make_strategy("alternating", drain=drain), client=client)
    single = Rotator(store, strategy=make_strategy("single-master"), client=client)
    accounts, tables = [], []
    try:
        for round_, rotator in enumerate([alternating] * 8 + [single] * 4):
            before = app.current()
            table = f"made_{round_}"
            with app.login(before) as conn:
                conn.execute(f"CREATE TABLE {table} (v int)")
                conn.execute(f"INSERT INTO {table} VALUES (1)")
                conn.commit()
            tables.append(table)
            mark = sum(queries)
            assert rotator.rotate(app.name).rotated
            after = app.current()
            accounts.append(after.account_name)
            with app.login(after) as conn:
                for t in tables:
                    conn.execute(f"INSERT INTO {t} VALUES (2)")
                    assert conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] >= 2
                conn.commit()
            # Let the workers run a little under the new credentials before the next rotation.
            while sum(queries) < mark + 40 and not failures and all(t.is_alive() for t in threads):
                stop.wait(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert failures == []
    assert all(q > 0 for q in queries), queries
    twin = app.account + "_rt"
    assert accounts[:8] == [twin, app.account] * 4  # alternating turns
    assert set(accounts[8:]) == {app.account}  # single user: the same login, new passwords
    rows = pg.execute("SELECT count(*) FROM load", dbname=app.database)[0][0]
    assert rows == sum(queries)


def test_plain_psycopg_connections_see_no_failed_query_through_twelve_rotations(postgresql, tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "secrets.db")
    app = make_app(postgresql, store, "alternating")

    def worker_round(i: int, stop: threading.Event, queries: list[int]) -> None:
        with EmbeddedStore(tmp_path / "secrets.db") as reader:
            n = 0
            while not stop.is_set():
                with _connect(app, reader) as conn:
                    for _ in range(RECONNECT_EVERY):
                        conn.execute("INSERT INTO load VALUES (%s, %s)", (i, n))
                        got = conn.execute("SELECT count(*) FROM load WHERE worker = %s", (i,)).fetchone()[0]
                        conn.commit()
                        n += 1
                        queries[i] += 1
                        assert got == n, f"{got} rows, expected {n}"

    try:
        _drive(postgresql, store, app, worker_round)
    finally:
        store.close()
        drop_app(postgresql, app)


def test_sqlalchemy_engine_sees_no_failed_query_through_twelve_rotations(postgresql, tmp_path: Path) -> None:
    sa = pytest.importorskip("sqlalchemy")
    from secretclient.client import SecretClient
    from secretclient.db.sqlalchemy import create_engine

    store = EmbeddedStore(tmp_path / "secrets.db")
    app = make_app(postgresql, store, "alternating")
    # A short TTL: the client also notices promotions by itself, as other processes of a fleet would.
    client = SecretClient(EmbeddedStore(tmp_path / "secrets.db"), ttl=0.5, rotation_aware=False, close_store=True)
    engine = create_engine("postgresql+psycopg:///", secret=app.name, client=client, pool_size=THREADS,
                           max_overflow=THREADS, pool_timeout=20)

    def worker_round(i: int, stop: threading.Event, queries: list[int]) -> None:
        n = 0
        while not stop.is_set():
            with engine.connect() as conn:  # checkout: connections of a replaced version roll over
                conn.execute(sa.text("INSERT INTO load VALUES (:w, :n)"), {"w": i, "n": n})
                got = conn.execute(sa.text("SELECT count(*) FROM load WHERE worker = :w"), {"w": i}).scalar_one()
                conn.commit()
            n += 1
            queries[i] += 1
            assert got == n, f"{got} rows, expected {n}"

    try:
        _drive(postgresql, store, app, worker_round, client=client)
        with engine.connect() as conn:  # after the last promotion, new checkouts run as its login
            session = conn.execute(sa.text("SELECT session_user")).scalar_one()
        assert session == app.current().account_name
    finally:
        engine.dispose()
        client.close()
        store.close()
        drop_app(postgresql, app)
