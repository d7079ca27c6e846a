"""Rotation-aware SQLAlchemy asyncio engines (aiomysql) against a real MariaDB.

Driven with ``asyncio.run`` inside plain test functions. Rotations are direct SQL plus store
updates, as in test_db_connect.py, independent of the rotation engine.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import subprocess
import sys
import time

import pymysql
import pytest

pytest.importorskip("aiomysql")
import sqlalchemy as sa
from db_support import Account
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from secretclient import InvalidParameter
from secretclient.db import (
    ClientMisconfigured,
    Connector,
    CredentialsRejected,
    DatabaseUnreachable,
    ErrorKind,
    RetryPolicy,
)
from secretclient.db.asyncio import create_async_engine
from secretclient.db._search import LoginRequest, SleepRequest, StoreRequest
from secretclient.db.sqlalchemy import VERSION_KEY
from secretclient.model import CURRENT, PENDING, PREVIOUS
from secretclient.testing import FaultProxy

WHO = sa.text("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1), CONNECTION_ID()")


def _engine(account: Account, **kw) -> tuple[AsyncEngine, Connector]:
    connector = Connector(account.secret, account.client)
    if "poolclass" not in kw:
        kw.setdefault("pool_size", 1)
        kw.setdefault("max_overflow", 0)
    return create_async_engine("mysql+aiomysql:///", connector=connector, **kw), connector


async def _session(engine: AsyncEngine) -> tuple[str, int, str | None]:
    """(user, connection id, credential version) of a connection checked out of ``engine``."""
    async with engine.connect() as conn:
        user, cid = (await conn.execute(WHO)).one()
        raw = await conn.get_raw_connection()
        return user, cid, raw.info.get(VERSION_KEY)


def test_importing_secretclient_db_does_not_import_aiomysql():
    code = "import sys, secretclient.db; assert 'aiomysql' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_query_keeps_url_query_and_connect_args(account):
    async def main() -> tuple:
        engine = create_async_engine(
            "mysql+aiomysql:///?charset=utf8mb4", secret=account.secret, client=account.client,
            connect_args={"init_command": "SET @marker = 7"},
        )
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(sa.text(
                    "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1), DATABASE(), @marker, @@character_set_client"
                ))).one()
                raw = await conn.get_raw_connection()
                return tuple(row), raw.info[VERSION_KEY], raw.driver_connection.credential_version
        finally:
            await engine.dispose()

    row, tagged, version = asyncio.run(main())
    assert row == (account.user, account.database, 7, "utf8mb4")
    assert tagged == version == "v1"
    assert account.failed_logins() == 0


def test_bad_arguments_are_refused(account):
    for url in ("mysql+aiomysql://u:pw@localhost/db", "mysql+pymysql:///", "sqlite+aiosqlite://"):
        with pytest.raises(InvalidParameter):
            create_async_engine(url, secret=account.secret, client=account.client)
    with pytest.raises(InvalidParameter, match="password"):
        create_async_engine("mysql+aiomysql:///", secret=account.secret, client=account.client,
                            connect_args={"password": "x"})
    with pytest.raises(InvalidParameter, match="async_creator"):
        create_async_engine("mysql+aiomysql:///", secret=account.secret, client=account.client,
                            async_creator=lambda: None)
    with pytest.raises(InvalidParameter):
        create_async_engine("mysql+aiomysql:///", secret=account.secret)


def test_recovers_after_a_single_user_rotation_and_uses_pending(account):
    engine, connector = _engine(account, poolclass=NullPool)

    async def main() -> list[tuple]:
        try:
            seen = [await _session(engine)]
            account.rotate()  # ALTER USER + promote; the client still caches v1
            seen.append(await _session(engine))
            account.rotate(promote=False)  # between "set" and "end": only ACSPending works
            seen.append(await _session(engine))
            return seen
        finally:
            await engine.dispose()

    before = account.store.total()
    seen = asyncio.run(main())
    assert [s[2] for s in seen] == ["v1", "v2", "v3"]  # v3: ACSPending, between set and end
    assert {s[0] for s in seen} == {account.user}
    stats = connector.stats()
    assert (stats.connects, stats.rejected, stats.recovered, stats.failures) == (3, 2, 2, 0)
    assert account.failed_logins() == 2  # v1 once, v2 once: never resent
    assert account.store.total() - before <= 6  # a few forced reads, no hammering


def test_recovery_counts_and_versions(account):
    async def main(engine: AsyncEngine) -> tuple[str, int, str | None]:
        try:
            await _session(engine)
            account.rotate()
            await engine.dispose()  # every new session logs in again, now with the new password
            return await _session(engine)
        finally:
            await engine.dispose()

    engine, connector = _engine(account)
    user, _, version = asyncio.run(main(engine))
    assert (user, version) == (account.user, "v2")
    stats = connector.stats()
    assert (stats.rejected, stats.recovered, stats.failures) == (1, 1, 0)
    assert account.failed_logins() == 1


def test_alternating_users_roll_pooled_connections_over(account):
    other = account.user + "_rt"
    account.db.create_user(other, account.new_password(), grants=(f"ALL ON {account.database}.*",))

    async def main(engine: AsyncEngine) -> tuple[list, list]:
        try:
            # Two pooled connections of the first account, both checked in.
            async with engine.connect() as a, engine.connect() as b:
                first = [(await a.execute(WHO)).one(), (await b.execute(WHO)).one()]
            version = account.put(other, account.passwords[-1], [PENDING])
            account.promote(version)
            account.client.refresh(account.secret)  # the client sees the new version (as a TTL refresh would)
            async with engine.connect() as a, engine.connect() as b:
                second = [(await a.execute(WHO)).one(), (await b.execute(WHO)).one()]
            return first, second
        finally:
            await engine.dispose()

    engine, connector = _engine(account, pool_size=2, pool_pre_ping=True)
    first, second = asyncio.run(main(engine))
    assert {u for u, _ in first} == {account.user}
    assert {u for u, _ in second} == {other}  # the old account's sessions were not reused
    assert not {c for _, c in first} & {c for _, c in second}
    stats = connector.stats()
    assert stats.rollovers == 2 and stats.rejected == 0
    assert account.failed_logins() == 0 and account.db.failed_logins(other) == 0


def test_only_the_slow_path_reads_the_store_off_the_event_loop(account):
    # The search's requests, inspected directly (pure logic): the asyncio driver sends each
    # StoreRequest to a worker thread and answers LoginRequests with an awaited login.
    connector = Connector(account.secret, account.client)
    cold = connector.search({}).steps()
    assert isinstance(next(cold), StoreRequest)  # nothing read yet: the first read may block
    cold.close()
    engine = create_async_engine("mysql+aiomysql:///", connector=connector, poolclass=NullPool)

    async def main() -> None:
        try:
            await _session(engine)
        finally:
            await engine.dispose()

    asyncio.run(main())
    warm = connector.search({}).steps()
    assert isinstance(next(warm), LoginRequest)  # the cached ACSCurrent, read in the loop
    rejected = pymysql.err.OperationalError(1045, "Access denied")
    request = warm.throw(rejected)
    assert isinstance(request, SleepRequest)  # the refresh jitter (RetryPolicy.refresh_jitter), awaited
    request = warm.send(None)
    assert isinstance(request, StoreRequest) and request.args[0] == "ACSCurrent"  # the forced refresh
    warm.close()


TASKS = 8
DURATION = 4.0
ROTATE_EVERY = 0.5


def test_concurrent_tasks_see_no_failed_query_while_the_password_rotates(account):
    async def main(engine: AsyncEngine) -> tuple[int, int, list[str]]:
        stop = asyncio.Event()
        counts = [0] * TASKS
        failures: list[str] = []

        async def worker(i: int) -> None:
            rng = random.Random(i)
            while not stop.is_set():
                try:
                    async with engine.connect() as conn:
                        assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
                        if rng.random() < 0.2:  # new logins all the time, across every rotation
                            await conn.invalidate()
                    counts[i] += 1
                except Exception as exc:  # noqa: BLE001 - any failure at all is what the test counts
                    failures.append(f"{type(exc).__name__}: {exc}")

        async def rotator() -> int:
            rotations = 0
            next_at = time.monotonic() + ROTATE_EVERY
            while time.monotonic() + ROTATE_EVERY / 2 < started + DURATION:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                await asyncio.to_thread(account.rotate)  # blocking SQL and store writes
                rotations += 1
                next_at += ROTATE_EVERY
            return rotations

        started = time.monotonic()
        tasks = [asyncio.create_task(worker(i)) for i in range(TASKS)]
        rotations = await rotator()
        await asyncio.sleep(max(0.0, started + DURATION - time.monotonic()))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await engine.dispose()
        return sum(counts), rotations, failures

    engine, connector = _engine(account, pool_size=4, max_overflow=4, pool_timeout=20)
    queries, rotations, failures = asyncio.run(main(engine))
    s = connector.stats()
    print(f"\nasyncio single-user: {queries} queries by {TASKS} tasks in {DURATION:.0f} s, {rotations} rotations, "
          f"{len(failures)} failed; connects {s.connects}, logins {s.logins}, retries {s.retries}, "
          f"rejected {s.rejected}, recovered {s.recovered}, store reads {s.store_reads}, "
          f"server-side failed logins {account.failed_logins()}")
    assert failures == []
    assert rotations >= DURATION / ROTATE_EVERY - 2
    assert s.recovered >= rotations // 2  # the rotations did hit new logins
    assert queries > 200


def test_wrong_secret_fails_clearly_with_at_most_three_failed_logins(account, caplog):
    caplog.set_level(logging.DEBUG)
    # Current, pending and previous all hold passwords the database never had.
    account.rotate()  # v2 current, v1 previous
    account.put(account.user, account.new_password(), [PENDING])  # v3 pending, never set
    account.set_password(account.user, account.new_password())  # changed behind the secret's back

    async def main(engine: AsyncEngine) -> BaseException:
        try:
            async with engine.connect():
                pass
        except sa.exc.OperationalError as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError("connected with a wrong secret")

    connector = Connector(account.secret, account.client, policy=RetryPolicy(total=3.0))
    engine = create_async_engine("mysql+aiomysql:///", connector=connector, poolclass=NullPool)
    started = time.monotonic()
    wrapped = asyncio.run(main(engine))
    elapsed = time.monotonic() - started
    err = wrapped.orig
    assert isinstance(err, CredentialsRejected) and err.args[0] == 1045
    assert elapsed < 3.0
    message = str(err)
    for name in ("v1", "v2", "v3", CURRENT, PENDING, PREVIOUS):
        assert name in message
    assert sorted(a.version_id for a in err.attempts) == ["v1", "v2", "v3"]
    assert 0 < account.failed_logins() <= 3
    assert "rejected" in caplog.text
    for text in (caplog.text, message, str(wrapped), repr(err), repr(err.attempts), repr(connector),
                 str(connector.stats())):
        for password in account.passwords:
            assert password not in text


def test_tls_secret_means_verified_tls_never_plaintext(mariadb, mariadb_tls):
    plain = Account(mariadb, ssl=True)  # the server offers no TLS
    tls = Account(mariadb_tls, ssl=True)

    async def cipher(acc: Account, url: str) -> str:
        engine = create_async_engine(url, secret=acc.secret, client=acc.client, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(sa.text("SHOW SESSION STATUS LIKE 'Ssl_cipher'"))).one()[1]
        finally:
            await engine.dispose()

    with pytest.raises(sa.exc.OperationalError) as info:
        asyncio.run(cipher(plain, "mysql+aiomysql:///"))
    assert isinstance(info.value.orig, ClientMisconfigured) and info.value.orig.args[0] == 2026
    assert plain.failed_logins() == 0  # refused before any credential was sent
    # The CA from the URL query (SQLAlchemy hands it over as an ``ssl`` dict).
    assert asyncio.run(cipher(tls, f"mysql+aiomysql:///?ssl_ca={mariadb_tls.ca_file}"))
    with pytest.raises(sa.exc.OperationalError) as info:  # the system CAs do not know the test CA
        asyncio.run(cipher(tls, "mysql+aiomysql:///"))
    assert isinstance(info.value.orig, ClientMisconfigured)
    # SSL: false is plaintext.
    no_tls = Account(mariadb_tls, ssl=False)
    assert asyncio.run(cipher(no_tls, "mysql+aiomysql:///")) == ""
    for acc in (plain, tls, no_tls):
        acc.client.close()


def test_silent_server_cannot_hang_the_login(account):
    async def main(proxy: FaultProxy) -> None:
        policy = RetryPolicy(total=0.6, max_attempts=2)
        connector = Connector(account.secret, account.client, policy=policy)
        engine = create_async_engine(f"mysql+aiomysql://{proxy.host}:{proxy.port}", connector=connector,
                                     poolclass=NullPool)
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    with FaultProxy(account.db.host, account.db.port) as proxy:
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as info:
            asyncio.run(main(proxy))
        assert time.monotonic() - started < 3
    err = info.value.orig
    assert isinstance(err, DatabaseUnreachable)
    assert {a.kind for a in err.attempts} == {ErrorKind.NETWORK}


def test_secret_passwords_beyond_latin1_work(account):
    password = "pw-ü€-" + secrets.token_hex(4)
    account.passwords.append(password)
    account.put(account.user, password, [CURRENT])
    account.set_password(account.user, password)
    account.client.refresh(account.secret)

    async def main() -> tuple:
        engine, _ = _engine(account)
        try:
            return await _session(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(main())[0] == account.user
    assert account.failed_logins() == 0
