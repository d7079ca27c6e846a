"""Under load on PostgreSQL: 8 threads do INSERT + SELECT through plain psycopg connections
(reconnecting often, with the stored credentials: ACSCurrent, then ACSPending) while 8
alternating-users and 4 single-user rotations run; not one query fails, and a table created by
the login in use before each rotation is readable and writable by the login in use after it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from postgresql_rotation_support import drop_app, make_app, make_strategy  # noqa: E402

from rotation import Rotator  # noqa: E402
from secretclient.errors import SecretNotFound  # noqa: E402
from secretclient.model import CURRENT, PENDING  # noqa: E402
from secretclient.stores.embedded import EmbeddedStore  # noqa: E402

pytestmark = pytest.mark.slow

THREADS = 8
RECONNECT_EVERY = 5  # queries per connection: logins keep happening during every rotation


def _connect(app: Any, store: Any) -> Any:
    """Log in as an application would: ACSCurrent, else ACSPending (a rotation between its
    set and end steps), re-reading both after each refusal; bounded."""
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


def test_eight_threads_see_no_failed_query_through_twelve_rotations(postgresql, tmp_path) -> None:
    store = EmbeddedStore(tmp_path / "secrets.db")
    app = make_app(postgresql, store, "alternating")
    try:
        with app.login(app.current()) as conn:
            conn.execute("CREATE TABLE load (worker int, n int)")
            conn.commit()
        stop = threading.Event()
        queries = [0] * THREADS
        failures: list[str] = []

        def worker(i: int) -> None:
            reader = EmbeddedStore(tmp_path / "secrets.db")
            try:
                n = 0
                while not stop.is_set():
                    with _connect(app, reader) as conn:
                        for _ in range(RECONNECT_EVERY):
                            try:
                                conn.execute("INSERT INTO load VALUES (%s, %s)", (i, n))
                                got = conn.execute("SELECT count(*) FROM load WHERE worker = %s", (i,)).fetchone()
                                conn.commit()
                            except psycopg.Error as exc:
                                failures.append(f"worker {i}: {type(exc).__name__}: {exc}")
                                return
                            n += 1
                            queries[i] += 1
                            if got[0] != n:
                                failures.append(f"worker {i}: {got[0]} rows, expected {n}")
                                return
            except Exception as exc:  # a login that no stage could make counts as a failure too
                failures.append(f"worker {i}: {type(exc).__name__}: {exc}")
            finally:
                reader.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        alternating = Rotator(store, strategy=make_strategy("alternating"))
        single = Rotator(store, strategy=make_strategy("single-master"))
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
        rows = postgresql.execute("SELECT count(*) FROM load", dbname=app.database)[0][0]
        assert rows == sum(queries)
    finally:
        store.close()
        drop_app(postgresql, app)
