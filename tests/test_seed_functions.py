"""Alibaba's own rotation function (seed, scenario 2: self-managed MySQL), unchanged, against
our KMS emulator (through the real SDK, HTTPS to kms-vpc.<region>.aliyuncs.com via the SDK's
proxy setting) and a throwaway MariaDB: new -> set -> test -> end, twice (alternating users)."""

from __future__ import annotations

import json
import secrets
import uuid
from types import ModuleType

import pymysql
import pytest
from seed_harness import FC_ROLE, fc_context, load_seed

from secretclient.model import CURRENT, PENDING, PREVIOUS
from secretclient.testing.kms_emulator import KmsEmulator


@pytest.fixture(scope="module")
def seed() -> ModuleType:
    return load_seed("alibaba_mysql_rotation.py")


@pytest.fixture
def kms(monkeypatch):
    """An emulator reached exactly as the seed's handler reaches KMS in a VPC."""
    with KmsEmulator() as emu:
        emu.add_access_key(FC_ROLE[0], FC_ROLE[1], security_token=FC_ROLE[2])
        monkeypatch.setenv("HTTPS_PROXY", emu.proxy_url)
        monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", str(emu.ca_file))
        monkeypatch.delenv("EXCLUDE_CHARACTERS", raising=False)
        yield emu


def run_step(seed: ModuleType, emu: KmsEmulator, name: str, step: str, version_id: str | None) -> str:
    event = {"SecretName": name, "RegionId": emu.region, "Step": step}
    if version_id:
        event["VersionId"] = version_id
    return seed.handler(json.dumps(event), fc_context(str(uuid.uuid4())))["VersionId"]


def can_login(mariadb, creds: dict) -> bool:
    try:
        conn = pymysql.connect(host=creds["Endpoint"], port=int(creds["Port"]), user=creds["AccountName"],
                               password=creds["AccountPassword"], connect_timeout=5, read_timeout=10)
    except pymysql.OperationalError:
        return False
    conn.close()
    return True


def test_seed_rotation_runs_unchanged(seed, kms, mariadb):
    user = "u" + secrets.token_hex(4)
    db = mariadb.create_database("seed")
    password = secrets.token_urlsafe(16)
    mariadb.create_user(user, password, grants=(f"ALL ON {mariadb.quote_ident(db)}.*",))
    store = kms.backing_store
    common = {"Endpoint": mariadb.host, "Port": mariadb.port, "SSL": False}
    store.create_secret("mysql-master", json.dumps({**common, "AccountName": mariadb.admin_user,
                                                    "AccountPassword": mariadb.admin_password}), version_id="m1")
    store.create_secret("mysql-app", json.dumps({**common, "AccountName": user, "AccountPassword": password,
                                                 "DBName": db, "MasterSecret": "mysql-master"}), version_id="v1")

    # new: VersionId comes from the FC request id; the pending version carries the _rt user.
    version = run_step(seed, kms, "mysql-app", "new", None)
    pending = store.get_secret("mysql-app", stage=PENDING)
    assert pending.version_id == version
    pending_creds = json.loads(pending.data)
    assert pending_creds["AccountName"] == user + "_rt"
    assert not can_login(mariadb, pending_creds)
    # Re-running "new" for the same VersionId finds ACSPending and writes nothing.
    puts = kms.calls["PutSecretValue"]
    assert run_step(seed, kms, "mysql-app", "new", version) == version
    assert kms.calls["PutSecretValue"] == puts

    run_step(seed, kms, "mysql-app", "set", version)
    assert can_login(mariadb, pending_creds)
    run_step(seed, kms, "mysql-app", "test", version)
    assert store.get_secret("mysql-app").version_id == "v1"  # nothing promoted before "end"
    run_step(seed, kms, "mysql-app", "end", version)

    stages = {v.version_id: set(v.stages) for v in store.list_versions("mysql-app")}
    assert stages == {version: {CURRENT}, "v1": {PREVIOUS}}
    with mariadb.connect(user + "_rt", pending_creds["AccountPassword"], database=db) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (x INT)")  # the grants were copied

    # A second rotation alternates back to the original user, with a new password.
    second = run_step(seed, kms, "mysql-app", "new", None)
    for step in ("set", "test", "end"):
        run_step(seed, kms, "mysql-app", step, second)
    current = json.loads(store.get_secret("mysql-app").data)
    assert current["AccountName"] == user and current["AccountPassword"] != password
    assert can_login(mariadb, current)
    assert store.get_secret("mysql-app", stage=PREVIOUS).version_id == version
    assert kms.calls["UpdateSecretVersionStage"] == 4
    assert kms.calls["GetRandomPassword"] == 2
