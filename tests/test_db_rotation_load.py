"""16 threads query through one engine while the password rotates every second: no query fails.

The rotation is direct SQL plus store updates (ACSPending, ALTER USER, promote), independent of
the rotation engine. Each worker drops its connection after one query in five, so new logins
happen all the time, across every rotation.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from db_support import Account, querying

from secretclient.client import SecretClient
from secretclient.db import Connector
from secretclient.db.sqlalchemy import create_engine
from secretclient.model import CURRENT, PENDING

THREADS = 16
DURATION = 10.0
ROTATE_EVERY = 1.0


def _run_load(engine: sa.Engine, rotate: Callable[[], None]) -> tuple[int, int, list[str]]:
    stop = threading.Event()
    rotations = 0

    def rotator() -> None:
        nonlocal rotations
        next_at = time.monotonic() + ROTATE_EVERY
        # On a fixed schedule, so slow rotations under load do not stretch the interval.
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            rotate()
            rotations += 1
            next_at += ROTATE_EVERY

    with querying(engine, THREADS) as load:
        thread = threading.Thread(target=rotator)
        thread.start()
        time.sleep(DURATION)
        stop.set()
        thread.join(30)
    return load.queries, rotations, load.failures


def _report(title: str, queries: int, rotations: int, connector: Connector, account: Account, user: str) -> None:
    s = connector.stats()
    print(f"\n{title}: {queries} queries by {THREADS} threads in {DURATION:.0f} s, {rotations} rotations; "
          f"connects {s.connects}, logins {s.logins}, retries {s.retries}, rejected {s.rejected}, "
          f"recovered {s.recovered}, store reads {s.store_reads}, rollovers {s.rollovers}, "
          f"server-side failed logins {account.db.failed_logins(user)}")


@pytest.mark.slow
def test_single_user_rotation_under_load(mariadb):
    account = Account(mariadb)
    connector = Connector(account.secret, account.client)
    engine = create_engine("mysql+pymysql:///", connector=connector, pool_size=8, max_overflow=8, pool_timeout=20)
    try:
        queries, rotations, failures = _run_load(engine, lambda: account.rotate())
    finally:
        engine.dispose()
        account.client.close()
    _report("single-user", queries, rotations, connector, account, account.user)
    assert failures == []
    assert rotations >= DURATION / ROTATE_EVERY - 1
    stats = connector.stats()
    assert stats.recovered >= rotations // 2  # the rotations did hit new logins
    assert queries > 1000


@pytest.mark.slow
def test_alternating_users_rotation_under_load(mariadb):
    account = Account(mariadb)
    users = [account.user, account.user + "_rt"]
    mariadb.create_user(users[1], account.new_password(), grants=(f"ALL ON {account.database}.*",))
    # A short TTL: the client notices each promotion in the background, as a fleet would.
    account.client.close()
    account.client = SecretClient(account.store, ttl=0.5, rotation_aware=False)
    current = [0]

    def rotate() -> None:
        other = 1 - current[0]  # never touch the account behind ACSCurrent
        password = "pw-" + secrets.token_urlsafe(16)
        account.passwords.append(password)
        version = account.put(users[other], password, [PENDING])
        account.set_password(users[other], password)
        account.promote(version)
        current[0] = other

    connector = Connector(account.secret, account.client)
    engine = create_engine("mysql+pymysql:///", connector=connector, pool_size=8, max_overflow=8, pool_timeout=20)
    try:
        queries, rotations, failures = _run_load(engine, rotate)
        # Every connection checked out after the last promotion is seen runs as the new account.
        account.client.refresh(account.secret)
        held = [engine.connect() for _ in range(THREADS)]
        sessions = [c.execute(sa.text("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")).scalar_one() for c in held]
        for c in held:
            c.close()
    finally:
        engine.dispose()
        account.client.close()
    _report("alternating users", queries, rotations, connector, account, users[0])
    assert failures == []
    assert rotations >= DURATION / ROTATE_EVERY - 1
    assert set(sessions) == {users[current[0]]}
    assert account.store.inner.get_secret(account.secret, stage=CURRENT).json()["AccountName"] == users[current[0]]
    assert connector.stats().rollovers > 0
