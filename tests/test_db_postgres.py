"""PostgreSQL connections (psycopg 3) through the same credential search, against a real server."""

from __future__ import annotations

import json
import secrets
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import QueuePool

from secretclient.client import SecretClient
from secretclient.db import (
    POSTGRES,
    ClientMisconfigured,
    Connector,
    CredentialsRejected,
    ErrorKind,
)
from secretclient.db.psycopg import connect
from secretclient.db.sqlalchemy import create_engine
from secretclient.db.tags import SessionTag, parse_session_tag
from secretclient.model import CURRENT, PENDING
from secretclient.stores.embedded import EmbeddedStore


class PgAccount:
    """A PostgreSQL role, its secret, and single-user rotation by SQL plus store updates."""

    def __init__(self, pg: Any, *, ssl: bool | None = False) -> None:
        self.pg = pg
        self.user = f"app_{secrets.token_hex(3)}"
        self.database = pg.create_database("conn")
        self.secret = f"pg/{self.user}"
        self.ssl = ssl
        self.passwords = [self.new_password()]
        pg.create_user(self.user, self.passwords[0], grants=(f"ALL ON DATABASE {self.database}",))
        self.store = EmbeddedStore()
        self.store.create_secret(self.secret, self.doc(self.passwords[0]), version_id="v1")
        self.versions = 1
        self.client = SecretClient(self.store, rotation_aware=False)

    @staticmethod
    def new_password() -> str:
        return "pw-€ü-" + secrets.token_urlsafe(12)  # non-ASCII on purpose

    def doc(self, password: str) -> str:
        data: dict[str, Any] = {"engine": "postgres", "username": self.user, "password": password,
                                "host": self.pg.host, "port": self.pg.port, "dbname": self.database}
        if self.ssl is not None:
            data["SSL"] = self.ssl
        return json.dumps(data)

    def put(self, password: str, stages: list[str] | None) -> str:
        self.versions += 1
        version = f"v{self.versions}"
        self.store.put_secret(self.secret, version, self.doc(password), stages=stages)
        return version

    def rotate(self) -> str:
        password = self.new_password()
        self.passwords.append(password)
        version = self.put(password, [PENDING])
        self.pg.execute(psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            psycopg.sql.Identifier(self.user), psycopg.sql.Literal(password)))
        self.store.update_stage(self.secret, CURRENT, move_to=version)
        self.store.update_stage(self.secret, PENDING, remove_from=version)
        return version

    def failed_logins(self) -> int:
        return int(self.pg.failed_logins(self.user))


@pytest.fixture
def pg_account(postgresql):
    acc = PgAccount(postgresql)
    yield acc
    acc.client.close()


def test_connect_logs_in_from_the_secret_and_tags_the_session(pg_account):
    with connect(pg_account.secret, client=pg_account.client, application_name="w") as conn:
        user, db, name = conn.execute("SELECT current_user, current_database(), "
                                      "current_setting('application_name')").fetchone()
    assert (user, db) == (pg_account.user, pg_account.database)
    # PostgreSQL keeps 63 bytes of application_name: the tag goes in when it fits (it does here).
    assert name.startswith("w secretclient secret=")
    assert parse_session_tag(name) == SessionTag(pg_account.secret, "v1")
    assert pg_account.failed_logins() == 0


def test_a_rotation_costs_one_failed_login_and_recovers(pg_account):
    connector = Connector(pg_account.secret, pg_account.client, family=POSTGRES)
    connector.connect()[0].close()
    new_version = pg_account.rotate()
    conn, creds = connector.connect()
    conn.close()
    assert creds.version_id == new_version
    stats = connector.stats()
    assert (stats.rejected, stats.recovered) == (1, 1)
    assert pg_account.failed_logins() == 1


def test_a_wrong_secret_costs_one_failed_login_per_password(pg_account):
    pg_account.put("wrong-" + secrets.token_hex(6), None)
    pg_account.put("wrong-" + secrets.token_hex(6), None)
    with pytest.raises(CredentialsRejected) as info:
        connect(pg_account.secret, client=pg_account.client)
    assert [a.kind for a in info.value.attempts] == [ErrorKind.BAD_CREDENTIALS] * 2
    assert pg_account.failed_logins() == 2
    for password in pg_account.passwords:
        assert password not in str(info.value)


def test_engine_on_postgresql_psycopg(pg_account):
    engine = create_engine("postgresql+psycopg:///", secret=pg_account.secret, client=pg_account.client,
                           poolclass=QueuePool, pool_size=2)
    try:
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT current_user")).scalar_one() == pg_account.user
        pg_account.rotate()
        pg_account.client.refresh(pg_account.secret)  # the idle pooled session is swept
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert pg_account.failed_logins() == 0
    finally:
        engine.dispose()


def test_tls_is_verify_full_and_never_weaker(postgresql_tls, postgresql):
    acc = PgAccount(postgresql_tls, ssl=True)
    try:
        ca = str(postgresql_tls.ca_file)
        with connect(acc.secret, client=acc.client, sslrootcert=ca) as conn:
            assert POSTGRES.session_cipher(conn)
        with pytest.raises(ClientMisconfigured, match="sslmode"):
            connect(acc.secret, client=acc.client, sslmode="require", sslrootcert=ca)
        with pytest.raises(ClientMisconfigured):  # the system CAs do not know the test CA
            connect(acc.secret, client=acc.client)
    finally:
        acc.client.close()
    plain = PgAccount(postgresql, ssl=True)  # a server without TLS
    try:
        with pytest.raises(ClientMisconfigured):
            connect(plain.secret, client=plain.client, sslrootcert=ca)
        assert plain.failed_logins() == 0
    finally:
        plain.client.close()


@pytest.mark.parametrize(("message", "sqlstate", "kind"), [
    ('connection failed: FATAL:  password authentication failed for user "app"', None, ErrorKind.BAD_CREDENTIALS),
    ('FATAL:  role "x" does not exist', None, ErrorKind.BAD_CREDENTIALS),
    ('FATAL:  database "nope" does not exist', None, ErrorKind.ACCESS),
    ('FATAL:  role "x" is not permitted to log in', None, ErrorKind.ACCOUNT_UNAVAILABLE),
    ("FATAL:  sorry, too many clients already", "53300", ErrorKind.SERVER_BUSY),
    ("FATAL:  remaining connection slots are reserved for superuser", None, ErrorKind.SERVER_BUSY),
    ("FATAL:  the database system is starting up", None, ErrorKind.NETWORK),
    ("connection to server at \"127.0.0.1\", port 1 failed: Connection refused", None, ErrorKind.NETWORK),
    ("connection to server at \"10.0.0.1\" failed: timeout expired", None, ErrorKind.NETWORK),
    ('FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "a", database "b", no encryption', None,
     ErrorKind.CLIENT_CONFIG),
    ("SSL error: certificate verify failed", None, ErrorKind.CLIENT_CONFIG),
    ("server does not support SSL, but SSL was required", None, ErrorKind.CLIENT_CONFIG),
    ("anything", "28P01", ErrorKind.BAD_CREDENTIALS),
    ("anything", "57P03", ErrorKind.NETWORK),
    ("something else entirely", None, ErrorKind.OTHER),
])
def test_postgres_classifier(message, sqlstate, kind):
    exc = psycopg.OperationalError(message)
    if sqlstate is not None:
        exc = psycopg.errors.lookup(sqlstate)(message)
    verdict = POSTGRES.classify(exc)
    assert verdict.kind is kind and verdict.sqlstate == sqlstate


def test_asyncio_engine_on_postgresql_psycopg(pg_account):
    import asyncio

    from secretclient.db.asyncio import create_async_engine

    engine = create_async_engine("postgresql+psycopg:///", secret=pg_account.secret, client=pg_account.client,
                                 pool_size=2)

    async def main() -> tuple[str, Any]:
        try:
            async with engine.connect() as c:
                first = (await c.execute(sa.text("SELECT current_user"))).scalar_one()
            await asyncio.to_thread(pg_account.rotate)
            await asyncio.to_thread(pg_account.client.refresh, pg_account.secret)
            conns = [await engine.connect() for _ in range(3)]  # the pooled one of v1 rolls over
            versions = [(await c.get_raw_connection()).info.get("secretclient.version") for c in conns]
            for c in conns:
                await c.close()
            return first, versions
        finally:
            await engine.dispose()

    user, versions = asyncio.run(main())
    assert user == pg_account.user
    assert versions == ["v2"] * 3
    assert pg_account.failed_logins() == 0


def test_a_secret_without_a_port_takes_the_family_default():
    from secretclient.db import MYSQL
    from secretclient.model import DbCredentials

    creds = DbCredentials.from_mapping({"engine": "postgres", "username": "app", "password": "pw", "host": "db"})
    assert creds.port is None
    assert POSTGRES.login_kwargs(creds, {}, secret="s", tag=False)["port"] == 5432
    assert MYSQL.login_kwargs(creds, {}, secret="s", tag=False)["port"] == 3306
    assert POSTGRES.login_kwargs(creds.with_changes(port=6432), {}, secret="s", tag=False)["port"] == 6432
    assert "port" not in creds.to_json_dict()  # a rotation writes back no port the secret did not have


def test_a_portless_postgresql_secret_and_its_master_on_5432_are_one_server():
    from rotation import InvalidRotationSetup
    from rotation.strategies.mysql import SingleUserStrategy
    from rotation.strategies.postgres import PostgresSingleUserStrategy

    store = EmbeddedStore()
    store.create_secret("master", json.dumps({"username": "admin", "password": "pw", "host": "db", "port": 5432}))
    creds = json.dumps({"engine": "postgres", "username": "app", "password": "pw", "host": "db",
                        "masterarn": "master"})
    store.create_secret("app", creds)
    app = store.get_secret("app").db_credentials()
    master = PostgresSingleUserStrategy()._master(store, "app", app)
    assert (master.account_name, master.port) == ("admin", 5432)
    with pytest.raises(InvalidRotationSetup, match="db:5432, not at the rotated account's db:3306"):
        SingleUserStrategy()._master(store, "app", app)
