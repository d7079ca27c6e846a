"""Races between logins and version changes, seen under rotation load as
"InvalidRequestError: This connection is closed" (SQLAlchemy's "reconnection attempts exhausted
on checkout"): a new connection whose version is replaced while it logs in, and a connect that
notes an older CURRENT version after a refresh noted a newer one."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy import event

from secretclient.client import SecretClient
from secretclient.db import Connector
from secretclient.db.sqlalchemy import VERSION_KEY, create_engine
from secretclient.stores.embedded import EmbeddedStore


def _value(password: str) -> str:
    return json.dumps({"AccountName": "app", "AccountPassword": password, "Endpoint": "127.0.0.1", "Port": 3306})


def _one_secret() -> tuple[EmbeddedStore, SecretClient, Connector]:
    """A store with the secret "db" at version v1, a client (no DescribeSecret) and a connector."""
    store = EmbeddedStore()
    store.create_secret("db", _value("pw-1"), version_id="v1")
    client = SecretClient(store, rotation_aware=False)
    return store, client, Connector("db", client)


def test_a_late_note_of_the_older_current_version_does_not_retire_the_newer_one():
    store, client, connector = _one_secret()
    connector.watch()
    retired_events = []
    connector.on_retire(lambda: retired_events.append(connector.current_version))
    read_before = client.get("db")  # a connect's read, just before the refresh
    connector.credentials()
    store.put_secret("db", "v2", _value("pw-2"))
    client.refresh("db")  # the background refresh: the connector hears of v2 and retires v1
    assert connector.current_version == "v2" and connector.is_retired("v1")
    assert retired_events == ["v2"]
    # The connect that read v1 gets to note it only now.
    connector._view.credentials(read_before)
    assert connector.current_version == "v2"
    assert not connector.is_retired("v2") and connector.is_retired("v1")
    assert retired_events == ["v2"]  # no sweep of v2's connections
    client.close()


def test_a_rollback_in_the_store_makes_the_older_version_current_again():
    store, client, connector = _one_secret()
    connector.credentials()
    store.put_secret("db", "v2", _value("pw-2"))
    client.refresh("db")
    connector.credentials()
    assert connector.current_version == "v2"
    store.update_stage("db", "ACSCurrent", move_to="v1", remove_from="v2")  # rolled back
    client.refresh("db")
    connector.credentials()
    assert connector.current_version == "v1"
    assert connector.is_retired("v2") and not connector.is_retired("v1")
    client.close()


def test_a_connection_whose_version_is_replaced_while_it_logs_in_still_serves_its_checkout(account):
    # Two rotations in quick succession (the client learns each from its refresh): the version a
    # new connection logged in with is replaced before the pool hands it out. Multi-user
    # rotation keeps that account working, so it serves this checkout and closes at checkin.
    engine = create_engine("mysql+pymysql:///", secret=account.secret, client=account.client, pool_size=2)
    rotations_left = 2

    @event.listens_for(engine, "connect")
    def rotate_meanwhile(dbapi_conn, conn_rec):
        nonlocal rotations_left
        if rotations_left:
            rotations_left -= 1
            account.put(account.user, account.passwords[-1], None)  # a new CURRENT, same login
            account.client.refresh(account.secret)

    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert conn.connection.info[VERSION_KEY] == "v1"
        raw = conn.connection.dbapi_connection
    assert not raw.open  # its version was replaced: closed at checkin
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    engine.dispose()
