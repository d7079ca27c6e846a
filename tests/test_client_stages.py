"""The client speaks stage roles: over a store whose labels are AWS's, nothing assumes ``ACSCurrent``."""

from __future__ import annotations

import pytest
from store_helpers import AwsLabelledStore

from secretclient.client import SecretClient
from secretclient.errors import InvalidParameter, SecretNotFound
from secretclient.model import Stage
from secretclient.testing import ManualClock, ManualExecutor


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> AwsLabelledStore:
    from secretclient.stores.embedded import EmbeddedStore

    s = AwsLabelledStore(EmbeddedStore(clock=clock.utc))
    s.create_secret("db", "one", version_id="v1")
    s.put_secret("db", "v2", "two", stages=["AWSPENDING"])
    return s


def make_client(store, clock, **kw) -> SecretClient:
    return SecretClient(store, clock=clock, wall_clock=clock.utc, executor=ManualExecutor(), rotation_aware=False, **kw)


def test_the_wrapper_really_has_aws_labels_only(store):
    assert store.get_secret("db").stages == {"AWSCURRENT"}
    with pytest.raises(SecretNotFound):
        store.get_secret("db", stage="ACSCurrent")


def test_default_read_and_roles_and_own_labels_share_one_entry(store, clock):
    client = make_client(store, clock)
    secret = client.get("db")
    assert secret.version_id == "v1" and secret.stages == {"AWSCURRENT"}
    assert client.get("db", Stage.CURRENT) is secret
    assert client.get("db", "AWSCURRENT") is secret
    assert client.get_text("db", "CURRENT") == "one"
    assert client.get("db", Stage.PENDING).version_id == "v2"
    assert client.get("db", "AWSPENDING") is client.get("db", Stage.PENDING)
    assert client.stats().store_calls == 2  # CURRENT once, PENDING once, whatever the spelling


def test_publish_takes_the_stores_current_label(store, clock):
    client = make_client(store, clock)
    client.get("db")
    seen = []
    client.subscribe("db", seen.append)
    store.update_stage("db", "AWSCURRENT", move_to="v2")
    promoted = store.get_secret("db")
    client.publish(promoted)
    assert client.get("db") is promoted and [s.version_id for s in seen] == ["v2"]
    # the version promoted carries AWSCURRENT: an ACS-labelled copy is refused
    import dataclasses

    with pytest.raises(InvalidParameter, match="AWSCURRENT"):
        client.publish(dataclasses.replace(promoted, stages=frozenset({"ACSCurrent"})))


def test_version_change_drops_other_stages_and_refresh_uses_roles(store, clock):
    client = make_client(store, clock)
    client.get("db")
    assert client.get("db", "AWSPENDING").version_id == "v2"
    store.update_stage("db", Stage.CURRENT, move_to="v2")
    assert client.refresh("db") is True  # default: the CURRENT role
    assert client.get("db").version_id == "v2"
    assert client.get("db", Stage.PREVIOUS).version_id == "v1"  # re-read, not the old PENDING entry
    assert client.refresh("db", "AWSCURRENT") is False


def test_version_id_with_a_current_label_is_allowed_and_another_stage_is_not(store, clock):
    client = make_client(store, clock)
    assert client.get("db", "AWSCURRENT", version_id="v1").version_id == "v1"
    with pytest.raises(InvalidParameter, match="not both"):
        client.get("db", Stage.PENDING, version_id="v1")


def test_rotation_awareness_describes_under_the_stores_label(store, clock):
    from datetime import timedelta

    store.set_rotation("db", timedelta(hours=1))
    executor = ManualExecutor()
    client = SecretClient(store, clock=clock, wall_clock=clock.utc, executor=executor, ttl=86400)
    client.get("db")
    assert executor.run_pending() == 1  # DescribeSecret ran against the AWSCURRENT entry
    clock.advance(3600 + 2 * 60 + 1)
    client.get("db")  # past the rotation time (+ up to twice rotation_delay): a refresh is queued
    assert executor.pending == 1


