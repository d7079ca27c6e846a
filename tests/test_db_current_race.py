"""A connect that read CURRENT just before a refresh cached a newer version must not take the
connector back to the older one (which retired the newer version and made every engine drop its
new connections at checkout: "Reconnection attempts exhausted", seen under load)."""

from __future__ import annotations

import json

from secretclient.client import SecretClient
from secretclient.db import Connector
from secretclient.stores.embedded import EmbeddedStore


def _value(password: str) -> str:
    return json.dumps({"AccountName": "app", "AccountPassword": password, "Endpoint": "127.0.0.1", "Port": 3306})


def test_a_late_note_of_the_older_current_version_does_not_retire_the_newer_one():
    store = EmbeddedStore()
    store.create_secret("db", _value("pw-1"), version_id="v1")
    client = SecretClient(store, rotation_aware=False)
    connector = Connector("db", client)
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
    store = EmbeddedStore()
    store.create_secret("db", _value("pw-1"), version_id="v1")
    client = SecretClient(store, rotation_aware=False)
    connector = Connector("db", client)
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
