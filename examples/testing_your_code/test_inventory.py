"""Testing inventory.py with secretclient's pytest fixtures — no mocks.

Installing secretclient registers the fixtures (a pytest plugin), so they are simply there:

* ``mariadb`` — a throwaway MariaDB server for the session (create your own database and user);
* ``kms_emulator`` — a local Alibaba KMS endpoint per test; ``kms_emulator.store()`` is an
  ``AliyunKmsStore`` talking to it over HTTP through the real aliyun SDK, signatures checked.

Run it with ``python -m pytest examples/testing_your_code``.
"""

from __future__ import annotations

import json
import secrets
import uuid

import inventory
import pytest

from secretclient import SecretClient


@pytest.fixture
def app_secret(mariadb, kms_emulator):
    """A database and an account for this test, and a KMS secret holding its credentials."""
    database = mariadb.create_database("inv")
    user = f"inv_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    mariadb.create_user(user, password, grants=(f"ALL ON {mariadb.quote_ident(database)}.*",))
    value = {"AccountName": user, "AccountPassword": password, "Endpoint": mariadb.host,
             "Port": mariadb.port, "DBName": database, "SSL": False}
    kms_emulator.backing_store.create_secret("inventory/db", json.dumps(value), version_id="v1")
    yield "inventory/db", value
    mariadb.drop_user(user)


@pytest.fixture
def client(kms_emulator):
    with kms_emulator.store() as store, SecretClient(store) as client:
        yield client


def test_receive_and_read_back(app_secret, client):
    engine = inventory.make_engine(client, app_secret[0])
    inventory.create_schema(engine)
    assert inventory.receive(engine, "pen", 5) == 5
    assert inventory.receive(engine, "pen", 2) == 7
    assert inventory.level(engine, "ink") == 0
    with pytest.raises(ValueError):
        inventory.receive(engine, "pen", 0)
    engine.dispose()


def test_keeps_working_when_the_password_rotates(app_secret, client, mariadb, kms_emulator):
    name, value = app_secret
    engine = inventory.make_engine(client, name)
    inventory.create_schema(engine)
    inventory.receive(engine, "pen", 1)
    engine.dispose()  # no pooled session left: the next query must log in again

    # Rotate as another process would: database first, then a new ACSCurrent in KMS.
    value = {**value, "AccountPassword": secrets.token_urlsafe(16)}
    mariadb.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (value["AccountName"], value["AccountPassword"]))
    kms_emulator.backing_store.put_secret(name, str(uuid.uuid4()), json.dumps(value))

    assert inventory.level(engine, "pen") == 1  # refused once, re-read the secret, logged in
    assert client.get(name).version_id != "v1"
    engine.dispose()


def test_keeps_working_while_kms_is_down(app_secret, client, kms_emulator):
    engine = inventory.make_engine(client, app_secret[0])
    inventory.create_schema(engine)
    with kms_emulator.faults.outage():  # every KMS call fails from here on
        assert inventory.receive(engine, "pen", 3) == 3  # the cached secret is enough
        engine.dispose()
        assert inventory.level(engine, "pen") == 3  # new logins too
    engine.dispose()
