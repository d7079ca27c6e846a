"""Sessions say which secret version they logged in with; pooled sessions of a replaced version
close while idle (issue 14, items 1 and 2, the connection side)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from db_support import Account
from sqlalchemy.pool import QueuePool

from rotation.dbconn import ConnectOptions
from rotation.dbconn import connect as rotation_connect
from secretclient.db import Connector, connect
from secretclient.db.asyncio import create_async_engine
from secretclient.db.errors import SessionAttributesUnavailable
from secretclient.db.sqlalchemy import create_engine
from secretclient.db.tags import SessionTag, parse_session_tag, session_tag, tagged_sessions, with_tag
from secretclient.model import DbCredentials
from secretclient.testing import MariaDB


@pytest.fixture(scope="module")
def pfs_mariadb() -> Iterator[MariaDB]:
    with MariaDB(options={"performance_schema": "ON"}) as db:
        yield db


def _tags(db: MariaDB, user: str) -> dict[int, SessionTag | None]:
    with db.admin() as admin:
        return {s.session_id: s.tag for s in tagged_sessions(admin) if s.user == user}


def test_every_kind_of_connection_is_tagged_with_its_secret_and_version(pfs_mariadb):
    account = Account(pfs_mariadb)
    try:
        expected = SessionTag(account.secret, "v1")
        conn = connect(account.secret, client=account.client, program_name="billing-worker")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                (cid,) = cur.fetchone()
            attrs = dict(pfs_mariadb.execute(
                "SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs "
                "WHERE PROCESSLIST_ID = %s", (cid,)))
            raw = attrs["program_name"]
            assert attrs["_client_name"] == "pymysql"
            assert raw.startswith("billing-worker secretclient secret=")  # the caller's name first
            assert _tags(pfs_mariadb, account.user)[cid] == expected
        finally:
            conn.close()

        engine = create_engine("mysql+pymysql:///", secret=account.secret, client=account.client)
        with engine.connect() as c:
            cid = c.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
            assert _tags(pfs_mariadb, account.user)[cid] == expected
        engine.dispose()

        async def via_asyncio() -> None:
            aengine = create_async_engine("mysql+aiomysql:///", secret=account.secret, client=account.client)
            try:
                async with aengine.connect() as c:
                    acid = (await c.exec_driver_sql("SELECT CONNECTION_ID()")).scalar_one()
                    assert (await asyncio.to_thread(_tags, pfs_mariadb, account.user))[acid] == expected
            finally:
                await aengine.dispose()

        asyncio.run(via_asyncio())

        account.rotate()
        creds = DbCredentials.from_secret(account.store.get_secret(account.secret))
        with rotation_connect(creds, ConnectOptions(), secret=account.secret) as rconn, rconn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (rid,) = cur.fetchone()
            assert _tags(pfs_mariadb, account.user)[rid] == SessionTag(account.secret, creds.version_id)
    finally:
        account.client.close()


def test_tags_round_trip_and_stay_within_the_attribute_size():
    for secret, version in (("prod/app-db", "v7"), ("a b%c", "ü €"), ("x", None)):
        assert parse_session_tag(session_tag(secret, version)) == SessionTag(secret, version)
        assert parse_session_tag("my app " + session_tag(secret, version)) == SessionTag(secret, version)
    for untagged in (None, "", "my app", "secretclient", "secretclient secret=x"):
        assert parse_session_tag(untagged) is None
    assert with_tag("worker", "s" * 300, "v1") == "worker"  # too long: the caller's name alone
    assert with_tag(None, "s" * 300, "v1") is None
    assert len(with_tag(None, "s" * 200, "v1").encode()) <= 255


def test_without_the_performance_schema_the_error_says_what_to_enable(mariadb):
    with mariadb.admin() as admin, pytest.raises(SessionAttributesUnavailable, match="performance_schema=ON"):
        tagged_sessions(admin)


def _sessions(db: MariaDB, user: str) -> set[int]:
    return {int(r[0]) for r in db.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))}


def _until_gone(db: MariaDB, user: str, ids: set[int]) -> set[int]:
    """The sessions of ``ids`` still open after waiting (at most 5 s) for them to go."""
    deadline = time.monotonic() + 5.0
    while (left := _sessions(db, user) & ids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def test_idle_pooled_sessions_of_a_replaced_version_close_without_a_checkout(mariadb):
    account = Account(mariadb)
    connector = Connector(account.secret, account.client)
    engine = create_engine("mysql+pymysql:///", connector=connector, poolclass=QueuePool, pool_size=4)
    try:
        held = [engine.connect() for _ in range(4)]
        ids = {c.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one() for c in held}
        in_use = held.pop()
        in_use_id = in_use.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
        for c in held:
            c.close()  # back to the pool: idle
        assert _sessions(mariadb, account.user) == ids

        account.rotate()
        account.client.refresh(account.secret)  # the client learns of the new version

        # The three idle sessions are closed at once; the one in use is left alone.
        assert _until_gone(mariadb, account.user, ids - {in_use_id}) == set()
        assert in_use.exec_driver_sql("SELECT 1").scalar_one() == 1
        in_use.close()  # checked in: closed now, not left idle
        assert _until_gone(mariadb, account.user, {in_use_id}) == set()
        assert connector.stats().rollovers == 4

        with engine.connect() as c:  # new sessions log in with the new version at once
            assert c.exec_driver_sql("SELECT 1").scalar_one() == 1
        assert account.failed_logins() == 0
    finally:
        engine.dispose()
        account.client.close()
