"""NcpSecretManagerStore's part of the store contract (tests/test_store_contract.py), over our NCP
emulator (HTTP and HTTPS): the chain mapped onto roles, what NCP cannot do refused with a typed
error and nothing changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from secretclient import SecretClient
from secretclient.errors import InvalidParameter, SecretNotFound, VersionConflict
from secretclient.model import NCP_STAGES, PasswordPolicy, Stage, stage_labels
from secretclient.stores import open_store
from secretclient.stores.base import SecretStore
from secretclient.stores.ncp import NcpSecretManagerStore, NcpUnsupported, ncp_endpoint
from secretclient.testing import NcpEmulator

ACTIVE, PENDING, PREVIOUS = NCP_STAGES.current, NCP_STAGES.pending, NCP_STAGES.previous


def stages_by_version(store: SecretStore, name: str) -> dict[str, set[str]]:
    """VersionId -> NCP's labels on it."""
    return {v.version_id: set(v.stages) for v in store.list_versions(name)}


@pytest.fixture(params=["ncp-http", "ncp-https"])
def emu(request: pytest.FixtureRequest) -> Iterator[NcpEmulator]:
    with NcpEmulator(https=request.param == "ncp-https") as emulator:
        yield emulator


@pytest.fixture
def store(emu) -> Iterator[NcpSecretManagerStore]:
    with emu.store() as s:
        yield s


def test_store_satisfies_protocol_with_ncp_labels(store):
    assert isinstance(store, SecretStore)
    assert stage_labels(store) == NCP_STAGES


def test_create_then_get_by_name_id_role_and_label(store, emu):
    info = store.create_secret("app-db", '{"cdbUser":"app","cdbPassword":"pw-1"}', description="app db")
    assert info.name == "app-db" and info.description == "app db" and info.created is not None
    sid = emu.secret_id("app-db")
    assert info.arn == sid
    assert emu.chain(sid) == {"active": '{"cdbUser":"app","cdbPassword":"pw-1"}'}
    by_name = store.get_secret("app-db")
    assert by_name.stages == frozenset({ACTIVE}) and by_name.data == '{"cdbUser":"app","cdbPassword":"pw-1"}'
    for kwargs in ({"stage": Stage.CURRENT}, {"stage": ACTIVE}, {"version_id": by_name.version_id}):
        assert store.get_secret("app-db", **kwargs).version_id == by_name.version_id
    assert store.get_secret(sid).data == by_name.data
    with pytest.raises(SecretNotFound):
        store.get_secret("app-db", stage=Stage.PENDING)
    with pytest.raises(SecretNotFound):
        store.get_secret("no-such-name")
    # rotationTargets default to the password key of a JSON value.
    assert store.chain("app-db").rotation_targets == ("cdbPassword",)


def test_version_ids_follow_values_and_reveal_nothing(store):
    store.create_secret("sec-1", "value-one")
    vid = store.get_secret("sec-1").version_id
    assert "value-one" not in vid and len(vid) == 32
    assert store.get_secret("sec-1").version_id == vid  # stable
    store.put_secret("sec-1", None, "value-two")
    assert store.get_secret("sec-1", stage=Stage.PREVIOUS).version_id == vid


def test_put_pending_only_labels_it_and_put_active_shifts(store, emu):
    store.create_secret("sec-1", "one")
    v1 = store.get_secret("sec-1").version_id
    info = store.put_secret("sec-1", None, "two", stages=[Stage.PENDING])
    assert info.stages == frozenset({PENDING})
    assert store.get_secret("sec-1").version_id == v1
    assert store.get_secret("sec-1", stage=Stage.PENDING).data == "two"
    with pytest.raises(SecretNotFound):
        store.get_secret("sec-1", stage=Stage.PREVIOUS)
    assert stages_by_version(store, "sec-1") == {info.version_id: {PENDING}, v1: {ACTIVE}}
    # Same value again: the derived VersionId may be passed back.
    assert store.put_secret("sec-1", info.version_id, "two", stages=[PENDING]).version_id == info.version_id
    three = store.put_secret("sec-1", None, "three")
    assert emu.chain(emu.secret_id("sec-1")) == {"active": "three", "previous": "one", "pending": "two"}
    assert three.stages == frozenset({ACTIVE})


def test_promotion_is_ncp_complete_with_compare_and_set(store, emu):
    store.create_secret("sec-1", "one")
    v1 = store.get_secret("sec-1").version_id
    v2 = store.put_secret("sec-1", None, "two", stages=[Stage.PENDING]).version_id
    other = "not-a-version"
    with pytest.raises(VersionConflict):
        store.update_stage("sec-1", Stage.CURRENT, move_to=v2, remove_from=v2)
    with pytest.raises(SecretNotFound):
        store.update_stage("sec-1", Stage.CURRENT, move_to=other)
    assert emu.chain(emu.secret_id("sec-1")) == {"active": "one", "pending": "two"}
    store.update_stage("sec-1", Stage.CURRENT, move_to=v2, remove_from=v1)
    assert stages_by_version(store, "sec-1") == {v2: {ACTIVE}, v1: {PREVIOUS}}
    store.update_stage("sec-1", Stage.CURRENT, move_to=v2)  # a retried move changes nothing
    assert emu.chain(emu.secret_id("sec-1")) == {"active": "two", "previous": "one"}
    with pytest.raises(VersionConflict):  # pending already gone: the engine treats this as done
        store.update_stage("sec-1", Stage.PENDING, remove_from=v2)


def test_pending_can_be_removed_current_cannot(store):
    store.create_secret("sec-1", "one")
    v2 = store.put_secret("sec-1", None, "two", stages=[PENDING]).version_id
    with pytest.raises(InvalidParameter):
        store.update_stage("sec-1", Stage.CURRENT, remove_from=store.get_secret("sec-1").version_id)
    store.update_stage("sec-1", Stage.PENDING, remove_from=v2)
    assert [set(v.stages) for v in store.list_versions("sec-1")] == [{ACTIVE}]


def test_what_ncp_cannot_do_is_refused_and_changes_nothing(store, emu):
    store.create_secret("sec-1", "one")
    sid = emu.secret_id("sec-1")
    before = emu.chain(sid)
    refused = [
        lambda: store.put_secret("sec-1", None, "two", stages=["Blue"]),
        lambda: store.put_secret("sec-1", "my-version-id", "two"),
        lambda: store.put_secret("sec-1", None, b"\x00\x01"),
        lambda: store.update_stage("sec-1", "Blue", move_to="x"),
        lambda: store.get_secret("sec-1", stage="ACSCurrent"),  # KMS's label means nothing here
        lambda: store.delete_secret("sec-1"),
        lambda: store.create_secret("sec-2", "x", version_id="v1"),
        lambda: store.create_secret("sec-3", "x", extended_config={"a": 1}),
        lambda: store.create_secret("sec-4", b"binary"),
    ]
    for call in refused:
        with pytest.raises(NcpUnsupported) as err:
            call()
        assert isinstance(err.value, InvalidParameter) and "two" not in str(err.value)
    assert emu.chain(sid) == before
    assert [s for s in ("sec-2", "sec-3", "sec-4") if _exists(emu, s)] == []


def _exists(emu, name):
    try:
        emu.secret_id(name)
    except InvalidParameter:
        return False
    return True


def test_create_validation_and_conflict(store):
    with pytest.raises(InvalidParameter):
        store.create_secret("x", "too short a name")
    with pytest.raises(InvalidParameter):
        store.create_secret("ok-name", "v", rotation_interval=timedelta(hours=5))
    store.create_secret("dup", "one")
    with pytest.raises(VersionConflict) as err:
        store.create_secret("dup", "two")
    assert err.value.code == "INVALID_STATUS"
    assert store.get_secret("dup").data == "one"


def test_describe_rotation_fields(store):
    store.create_secret("rot", json.dumps({"password": "p"}), description="weekly",
                        rotation_interval=timedelta(days=7), rotation_targets=["password"])
    info = store.describe("rot")
    assert info.automatic_rotation and info.rotation_interval == timedelta(days=7)
    assert info.next_rotation is not None and info.next_rotation > info.created
    assert store.describe("rot").secret_type == "BASIC"
    store.create_secret("plain", "x")
    assert store.describe("plain").automatic_rotation is False


def test_random_password_follows_policy(store):
    policy = PasswordPolicy(length=24, exclude_characters="abcXYZ019", exclude_punctuation=True)
    assert all(policy.accepts(store.random_password(policy)) for _ in range(3))


def test_values_never_in_reprs_or_errors(store, emu):
    store.create_secret("sec-1", "hunter2-secret")
    secret = store.get_secret("sec-1")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert emu.secret_key not in repr(store)
    token = emu.start_rotation(emu.secret_id("sec-1"))
    job = store.job("sec-1", token)
    assert token not in repr(job)
    chain = job.start()
    assert "hunter2" not in repr(chain)
    with pytest.raises(VersionConflict) as err:
        job.complete()
    assert "hunter2" not in str(err.value) and token not in str(err.value)


def test_client_cache_over_ncp(store, emu):
    store.create_secret("sec-1", '{"cdbUser":"app","cdbPassword":"one"}')
    with SecretClient(store) as client:
        assert client.get("sec-1").data == '{"cdbUser":"app","cdbPassword":"one"}'
        emu.faults.start_outage()
        assert client.get("sec-1").text  # served from the cache during the outage
        emu.faults.stop_outage()


def test_open_store_ncp_and_endpoints(emu):
    env = {"NCLOUD_ACCESS_KEY": emu.access_key, "NCLOUD_SECRET_KEY": emu.secret_key}
    verify = str(emu.ca_file) if emu.https else None
    emu.create_secret("sec-1", "one")
    with open_store("ncp", endpoint=emu.endpoint, env=env, verify=verify) as s:
        assert s.get_secret("sec-1").data == "one"
    assert ncp_endpoint() == "https://secretmanager.apigw.ntruss.com"
    assert ncp_endpoint("kr") == "https://ocapi-kr.ncloud.com"
    assert ncp_endpoint("JP") == "https://ocapi-jp.ncloud.com"
    with pytest.raises(InvalidParameter):
        ncp_endpoint("us")
    with pytest.raises(InvalidParameter) as err:
        NcpSecretManagerStore(env={})
    assert "NCLOUD_ACCESS_KEY" in str(err.value)


def test_secretclient_command_reads_ncp(emu):
    from click.testing import CliRunner

    from secretclient.cli import main

    emu.create_secret("sec-1", '{"cdbUser":"app","cdbPassword":"pw-in-cli"}')
    base = ["--store", "ncp", "--endpoint", emu.endpoint, "--access-key-id", emu.access_key,
            "--access-key-secret", emu.secret_key]
    if emu.https:
        base += ["--ca-file", str(emu.ca_file)]
    runner = CliRunner()
    got = runner.invoke(main, [*base, "get", "sec-1"])
    assert got.exit_code == 0, got.output
    assert "sec-1" in got.output and "active" in got.output and "pw-in-cli" not in got.output
    assert "pw-in-cli" in runner.invoke(main, [*base, "get", "sec-1", "--reveal"]).output
    listed = runner.invoke(main, [*base, "versions", "sec-1"])
    assert listed.exit_code == 0 and "active" in listed.output
    described = runner.invoke(main, [*base, "describe", "sec-1"])
    assert described.exit_code == 0 and '"sec-1"' in described.output
    # The command always picks a VersionId: NCP refuses writes through it (docs/stores.md).
    for args, stdin in ((["delete", "sec-1", "--yes"], None), (["create", "sec-2"], "v"), (["put", "sec-1"], "v")):
        refused = runner.invoke(main, [*base, *args], input=stdin)
        assert refused.exit_code == 1 and "NcpUnsupported" in refused.output, refused.output


def test_list_secrets_reads_every_page_sorted_by_name_without_values(store, emu):
    # 25 secrets over the emulator's pages of 20, created out of name order.
    names = [f"s{(i * 7) % 25:02d}" for i in range(25)]
    for name in names:
        emu.create_secret(name, json.dumps({"cdbPassword": f"value-of-{name}"}))
    infos = store.list_secrets()
    assert [i.name for i in infos] == sorted(names)
    assert all(i.arn == emu.secret_id(i.name) for i in infos)
    assert "value-of-" not in repr(infos)
