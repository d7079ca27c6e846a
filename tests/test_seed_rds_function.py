"""Alibaba's own rotation function (seed, scenario 1: ApsaraDB RDS through the RDS API), unchanged,
against our KMS and RDS emulators (through the real SDK, HTTPS to kms-vpc.<region>.aliyuncs.com and
http://rds.aliyuncs.com — the SDK's default for RDS — via the SDK's proxy settings and a ProxyRouter) and a throwaway MariaDB:
new -> set -> end, twice (alternating users)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import secrets
import uuid
from types import ModuleType, SimpleNamespace

import pymysql
import pytest
from seed_harness import FC_ROLE, fc_context, load_seed

from secretclient.model import CURRENT, PENDING, PREVIOUS
from secretclient.testing import KmsEmulator, ProxyRouter, RdsEmulator


@pytest.fixture(scope="module")
def seed() -> ModuleType:
    return load_seed("alibaba_rds_rotation.py")


@pytest.fixture
def cloud(mariadb, monkeypatch):
    """KMS and RDS emulators reached exactly as the seed's handler reaches them in a VPC."""
    with KmsEmulator() as kms, RdsEmulator(mariadb) as rds, ProxyRouter(kms, rds) as router:
        for emu in (kms, rds):  # the FC role's STS credentials, valid for both services
            emu.add_access_key(FC_ROLE[0], FC_ROLE[1], security_token=FC_ROLE[2])
        # KMS requests go out over HTTPS (CONNECT), the SDK's RDS requests over plain HTTP.
        monkeypatch.setenv("HTTPS_PROXY", router.proxy_url)
        monkeypatch.setenv("HTTP_PROXY", router.proxy_url)
        monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", str(router.ca_file))
        monkeypatch.delenv("EXCLUDE_CHARACTERS", raising=False)
        yield SimpleNamespace(kms=kms, rds=rds, router=router)


def run_step(seed: ModuleType, cloud, name: str, step: str, version_id: str | None) -> str:
    event = {"SecretName": name, "RegionId": cloud.kms.region, "InstanceId": cloud.rds.instance_id, "Step": step}
    if version_id:
        event["VersionId"] = version_id
    return seed.handler(json.dumps(event), fc_context(str(uuid.uuid4())))["VersionId"]


def rds_call(rds: RdsEmulator, action: str, **params: str) -> dict:
    module = importlib.import_module(f"aliyunsdkrds.request.v20140815.{action}Request")
    request = getattr(module, f"{action}Request")()
    request.set_accept_format("json")
    for key, value in {"DBInstanceId": rds.instance_id, **params}.items():
        request.add_query_param(key, value)
    return json.loads(rds.acs_client().do_action_with_exception(request))


def privileges(rds: RdsEmulator, account: str) -> dict[str, str]:
    (acc,) = rds_call(rds, "DescribeAccounts", AccountName=account)["Accounts"]["DBInstanceAccount"]
    return {p["DBName"]: p["AccountPrivilege"] for p in acc["DatabasePrivileges"]["DatabasePrivilege"]}


def can_login(mariadb, creds: dict) -> bool:
    try:
        conn = mariadb.connect(creds["AccountName"], creds["AccountPassword"], ssl_disabled=True)
    except pymysql.OperationalError:
        return False
    conn.close()
    return True


def test_seed_rds_rotation_runs_unchanged(seed, cloud, mariadb):
    user = "s" + secrets.token_hex(4)
    password = "Seed-Pass_2024"
    db = mariadb.create_database("seedrds")
    try:
        rds_call(cloud.rds, "CreateAccount", AccountName=user, AccountPassword=password)
        rds_call(cloud.rds, "GrantAccountPrivilege", AccountName=user, DBName=db, AccountPrivilege="ReadWrite")
        store = cloud.kms.backing_store
        store.create_secret("rds-app", json.dumps({"AccountName": user, "AccountPassword": password}), version_id="v1")

        version = run_step(seed, cloud, "rds-app", "new", None)
        pending = json.loads(store.get_secret("rds-app", stage=PENDING).data)
        assert store.get_secret("rds-app", stage=PENDING).version_id == version
        assert pending["AccountName"] == user + "_rt" and not can_login(mariadb, pending)
        run_step(seed, cloud, "rds-app", "set", version)
        assert can_login(mariadb, pending)
        assert privileges(cloud.rds, user + "_rt") == {db: "ReadWrite"}
        assert store.get_secret("rds-app").version_id == "v1"  # nothing promoted before "end"
        run_step(seed, cloud, "rds-app", "end", version)
        stages = {v.version_id: set(v.stages) for v in store.list_versions("rds-app")}
        assert stages == {version: {CURRENT}, "v1": {PREVIOUS}}

        # Second rotation: back to the original account, whose password the RDS API resets.
        second = run_step(seed, cloud, "rds-app", "new", None)
        for step in ("set", "end"):
            run_step(seed, cloud, "rds-app", step, second)
        current = json.loads(store.get_secret("rds-app").data)
        assert current["AccountName"] == user and current["AccountPassword"] != password
        assert can_login(mariadb, current) and can_login(mariadb, pending)
        assert cloud.rds.calls["CreateAccount"] == 2 and cloud.rds.calls["ResetAccountPassword"] == 1
        assert cloud.kms.calls["GetRandomPassword"] == 2
    finally:
        mariadb.drop_user(user)
        mariadb.drop_user(user + "_rt")
