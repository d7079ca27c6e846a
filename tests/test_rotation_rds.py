"""RdsApiStrategy: alternating users through the RDS API (aliyun-python-sdk-rds over HTTP to the
RDS emulator, acting on a real MariaDB), with the embedded store and the KMS emulator; the
Function Compute handler with the seed's Scenario-1 event; the CLI."""

from __future__ import annotations

import importlib
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import pymysql
import pytest
from click.testing import CliRunner

import rotation.fc
from rotation import InvalidRotationSetup, RdsApiError, RdsApiStrategy, Rotator, UnsafeAccountName, UnsupportedGrant
from rotation.cli import main as cli
from rotation._factories import make_strategy
from rotation.passwords import rds_accepts
from rotation.strategies.rds import privilege_changes, rds_client
from secretclient.model import CURRENT, PENDING, PREVIOUS
from secretclient.testing import MariaDB, ProxyRouter, RdsEmulator

# store_handle: an EmbeddedStore file, or the KMS emulator through the SDK.
PASSWORD = "Start-Pass_42x"


@dataclass
class RdsApp:
    db: MariaDB
    rds: RdsEmulator
    store: object
    name: str
    account: str
    databases: tuple[str, str]

    @property
    def alternate(self) -> str:
        return self.account + "_rt"

    def api(self, action: str, **params: str) -> dict:
        """An RDS call through the SDK's request class for ``action``."""
        module = importlib.import_module(f"aliyunsdkrds.request.v20140815.{action}Request")
        request = getattr(module, f"{action}Request")()
        request.set_accept_format("json")
        for key, value in {"DBInstanceId": self.rds.instance_id, **params}.items():
            request.add_query_param(key, value)
        return json.loads(self.rds.acs_client().do_action_with_exception(request))

    def privileges(self, account: str) -> dict[str, str] | None:
        accounts = self.api("DescribeAccounts", AccountName=account)["Accounts"]["DBInstanceAccount"]
        if not accounts:
            return None
        return {p["DBName"]: p["AccountPrivilege"] for p in accounts[0]["DatabasePrivileges"]["DatabasePrivilege"]}

    def password_hash(self, account: str) -> list:
        return self.db.execute("SELECT authentication_string FROM mysql.user WHERE User = %s", (account,))

    def can_login(self, account: str, password: str) -> bool:
        try:
            self.db.connect(account, password, database=self.databases[0], ssl_disabled=True).close()
        except pymysql.OperationalError as exc:
            assert exc.args[0] in (1045, 1044)
            return False
        return True

    def strategy(self, **kw) -> RdsApiStrategy:
        kw.setdefault("grace", timedelta(0))  # back-to-back rotations: explicit, not the 1 h default
        return RdsApiStrategy(self.rds.instance_id, self.rds.acs_client(), **kw)

    def rotator(self, **kw) -> Rotator:
        strategy = self.strategy()
        return Rotator(self.store, strategy=strategy, lock=strategy.lock(self.store), **kw)


@pytest.fixture
def accounts(mariadb: MariaDB) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        mariadb.drop_user(name)
        mariadb.drop_user(name + "_rt")


def make_app(mariadb, rds, store, accounts, *, endpoint: bool = True) -> RdsApp:
    """An account made through the RDS API (ReadWrite on one database, ReadOnly on another) and a
    secret for it: the seed's two fields, plus where to log in when ``endpoint``."""
    account = "ra" + secrets.token_hex(4)
    accounts.append(account)
    app = RdsApp(mariadb, rds, store, f"rds/{account}", account,
                 (mariadb.create_database("rw"), mariadb.create_database("ro")))
    app.api("CreateAccount", AccountName=account, AccountPassword=PASSWORD)
    app.api("GrantAccountPrivilege", AccountName=account, DBName=",".join(app.databases),
            AccountPrivilege="ReadWrite,ReadOnly")
    value: dict = {"AccountName": account, "AccountPassword": PASSWORD}
    if endpoint:
        value |= {"Endpoint": mariadb.host, "Port": mariadb.port, "DBName": app.databases[0], "SSL": False}
    store.create_secret(app.name, json.dumps(value), version_id="v0")
    return app


def test_rotates_ten_times_alternating_with_identical_privileges(mariadb, rds_emulator, store_handle, accounts):
    store = store_handle.store
    app = make_app(mariadb, rds_emulator, store, accounts)
    original = app.privileges(app.account)
    assert original == {app.databases[0]: "ReadWrite", app.databases[1]: "ReadOnly"}
    rotator = app.rotator()
    seen_passwords = {PASSWORD}
    for i in range(10):
        previous = store.get_secret(app.name).db_credentials()
        result = rotator.rotate(app.name)
        current = store.get_secret(app.name)
        creds = current.db_credentials()
        assert result.rotated and current.version_id == result.version_id and PENDING not in current.stages
        assert creds.account_name == (app.alternate if i % 2 == 0 else app.account)
        assert creds.account_password not in seen_passwords and rds_accepts(creds.account_password)
        seen_passwords.add(creds.account_password)
        assert app.can_login(creds.account_name, creds.account_password)
        # ACSPrevious still logs in (its account was not touched), and both have the same privileges.
        assert store.get_secret(app.name, stage=PREVIOUS).version_id == previous.version_id
        assert app.can_login(previous.account_name, previous.account_password)
        assert app.privileges(app.account) == app.privileges(app.alternate) == original
    conn = pymysql.connect(host=mariadb.host, port=mariadb.port, user=creds.account_name,
                           password=creds.account_password, database=app.databases[0], ssl_disabled=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x INT)")  # ReadWrite really works for the rotated account
    assert rds_emulator.calls["CreateAccount"] == 2  # the app's own, then the alternate once


def test_set_never_touches_acscurrent_and_revokes_extra_privileges(mariadb, rds_emulator, accounts):
    from secretclient.stores.embedded import EmbeddedStore

    with EmbeddedStore(":memory:") as store:
        app = make_app(mariadb, rds_emulator, store, accounts)
        extra = mariadb.create_database("extra")
        # A stale alternate: another type of privilege on one database, and one database too many.
        app.api("CreateAccount", AccountName=app.alternate, AccountPassword=PASSWORD)
        app.api("GrantAccountPrivilege", AccountName=app.alternate, DBName=f"{app.databases[0]},{extra}",
                AccountPrivilege="DDLOnly,ReadWrite")
        before = (app.password_hash(app.account), app.privileges(app.account))
        rotator = app.rotator()
        vid = rotator.step(app.name, "new")
        rotator.step(app.name, "set", vid)
        assert (app.password_hash(app.account), app.privileges(app.account)) == before
        assert app.privileges(app.alternate) == before[1]  # the seed would have kept DDLOnly and `extra`
        pending = store.get_secret(app.name, stage=PENDING).db_credentials()
        assert app.can_login(app.alternate, pending.account_password)
        assert store.get_secret(app.name).version_id == "v0"  # nothing promoted before end
        rotator.step(app.name, "set", vid)  # idempotent: a retried set changes nothing more
        rotator.step(app.name, "test", vid)
        rotator.step(app.name, "end", vid)
        assert store.get_secret(app.name).db_credentials().account_name == app.alternate


def test_custom_privileges_stop_before_any_change(mariadb, rds_emulator, accounts):
    from secretclient.stores.embedded import EmbeddedStore

    with EmbeddedStore(":memory:") as store:
        app = make_app(mariadb, rds_emulator, store, accounts)
        mariadb.execute(f"GRANT SELECT, INSERT ON {mariadb.quote_ident(mariadb.create_database('cu'))}.* TO %s@'%%'",
                        (app.account,))
        with pytest.raises(UnsupportedGrant, match="Custom"):
            app.rotator().rotate(app.name)
        assert app.privileges(app.alternate) is None  # not created
        assert rds_emulator.calls["CreateAccount"] == 1


@pytest.mark.parametrize(("account", "error"), [
    ("abcdefghijklmn", "limit is 16"),       # 14 + "_rt" is longer than RDS's 16 (the seed's check)
    ("app-user", "not an RDS account name"),
    ("app'user", "characters other than"),
])
def test_unsafe_names_are_refused_up_front(rds_emulator, account, error):
    from secretclient.stores.embedded import EmbeddedStore

    with EmbeddedStore(":memory:") as store:
        store.create_secret("s", json.dumps({"AccountName": account, "AccountPassword": PASSWORD}), version_id="v0")
        strategy = RdsApiStrategy(rds_emulator.instance_id, rds_emulator.acs_client())
        with pytest.raises(UnsafeAccountName, match=error):
            Rotator(store, strategy=strategy, lock=strategy.lock(store)).rotate("s")
        assert [v.version_id for v in store.list_versions("s")] == ["v0"]
        assert rds_emulator.calls["DescribeAccounts"] == 0


def test_no_password_in_logs_events_errors_or_plans(mariadb, rds_emulator, accounts, caplog):
    from secretclient.stores.embedded import EmbeddedStore

    caplog.set_level(logging.DEBUG)  # the SDK logs request parameters at DEBUG
    events = []
    with EmbeddedStore(":memory:") as store:
        app = make_app(mariadb, rds_emulator, store, accounts)
        rotator = app.rotator(listeners=[events.append])
        plan = rotator.plan(app.name)
        assert plan.ok and any("AccountPassword=<redacted>" in s for s in plan.statements)
        assert f"{app.alternate}: +{app.databases[0]}:ReadWrite" in plan.grant_changes
        rotator.rotate(app.name)
        rotator.rotate(app.name)
        wrong = RdsApiStrategy(rds_emulator.instance_id, rds_emulator.acs_client(secret="wrong"), grace=timedelta(0))
        with pytest.raises(RdsApiError) as info:
            Rotator(store, strategy=wrong, lock=wrong.lock(store)).rotate(app.name)
        assert info.value.code == "InvalidAccessKeySecret" and info.value.http_status == 400
        passwords = {v.db_credentials().account_password for v in
                     (store.get_secret(app.name, version_id=x.version_id) for x in store.list_versions(app.name))}
        assert len(passwords) == 2  # the wrong key fails in preflight, before a PENDING version is written
        text = "\n".join([caplog.text, repr(events), str(info.value), repr(info.value), repr(wrong), *plan.lines()])
        assert "DescribeAccounts" in caplog.text  # the SDK did log its requests
        for password in passwords:
            assert password not in text


def test_privilege_changes_grant_missing_and_revoke_extra():
    assert privilege_changes({"a": "ReadWrite", "b": "ReadOnly"}, {"a": "DDLOnly", "c": "ReadOnly"}) == [
        ("revoke", "a", None), ("revoke", "c", None), ("grant", "a", "ReadWrite"), ("grant", "b", "ReadOnly")]
    assert privilege_changes({"a": "ReadOnly"}, {"a": "ReadOnly"}) == []


def test_config_needs_an_instance_id_and_keeps_rds_passwords():
    with pytest.raises(InvalidRotationSetup, match="instance id"):
        make_strategy("rds", rds_client=object())
    with pytest.raises(InvalidRotationSetup, match="RDS client"):
        make_strategy("rds", instance_id="rm-1")
    strategy = make_strategy("rds", instance_id="rm-1", rds_client=object(), exclude_characters="AB")
    assert isinstance(strategy, RdsApiStrategy)
    for _ in range(20):
        password = strategy.new_password(None)
        assert rds_accepts(password) and not set("AB") & set(password)


def _seed_event(app: RdsApp, step: str, version_id: str | None = None) -> bytes:
    # Scenario 1's payload (SecretName, RegionId, InstanceId) plus the flow's Step / $local.VersionId.
    event = {"SecretName": app.name, "RegionId": app.rds.region, "InstanceId": app.rds.instance_id, "Step": step}
    if version_id:
        event["VersionId"] = version_id
    return json.dumps(event).encode()


def test_fc_handler_runs_the_scenario_1_flow(mariadb, rds_emulator, store_handle, accounts, monkeypatch):
    store = store_handle.store
    app = make_app(mariadb, rds_emulator, store, accounts, endpoint=False)  # the seed's secret: two fields
    if store_handle.kind == "kms":
        monkeypatch.setenv("ROTATION_STORE", "kms")
        monkeypatch.setenv("ROTATION_KMS_ENDPOINT", store_handle.spec["endpoint"])
        key = (store_handle.spec["ak"], store_handle.spec["sk"])
        rds_emulator.add_access_key(*key)  # the FC role's key works for KMS and RDS alike
    else:
        monkeypatch.setenv("ROTATION_STORE", f"embedded:{store_handle.spec['path']}")
        key = (rds_emulator.access_key_id, rds_emulator.access_key_secret)
    monkeypatch.delenv("ROTATION_STRATEGY", raising=False)  # InstanceId in the event selects "rds"
    monkeypatch.delenv("EXCLUDE_CHARACTERS", raising=False)
    monkeypatch.setenv("ROTATION_RDS_ENDPOINT", rds_emulator.endpoint)
    monkeypatch.setenv("ROTATION_GRACE_SECONDS", "0")  # flows back to back: explicit, not the 1 h default
    creds = SimpleNamespace(accessKeyId=key[0], accessKeySecret=key[1], securityToken=None)
    for run, expected in ((1, app.alternate), (2, app.account)):
        context = SimpleNamespace(requestId=f"fc-req-{run}", credentials=creds)
        local = rotation.fc.handler(_seed_event(app, "new"), context)
        assert local == {"VersionId": f"fc-req-{run}"}
        for step in ("set", "end"):  # Scenario 1's flow has no test step: end verifies before promoting
            assert rotation.fc.handler(_seed_event(app, step, local["VersionId"]), context) == local
        current = store.get_secret(app.name)
        assert current.version_id == local["VersionId"] and current.stages == frozenset({CURRENT})
        creds_now = current.db_credentials()
        assert creds_now.account_name == expected and creds_now.endpoint is None
        assert app.can_login(expected, creds_now.account_password)
        assert app.privileges(expected) == app.privileges(app.account)
    assert rds_emulator.calls["ResetAccountPassword"] == 1  # run 2 reset the original account


def test_cli_rotates_with_strategy_rds(mariadb, rds_emulator, tmp_path, accounts):
    from secretclient.stores.embedded import EmbeddedStore

    path = tmp_path / "secrets.db"
    with EmbeddedStore(path) as store:
        app = make_app(mariadb, rds_emulator, store, accounts, endpoint=False)
    base = ["--store", f"embedded:{path}", "--region", rds_emulator.region, "--name-limit", "16",
            "--access-key-id", rds_emulator.access_key_id, "--access-key-secret", rds_emulator.access_key_secret,
            "--strategy", "rds", "--rds-endpoint", rds_emulator.endpoint, "--grace", "0"]
    runner = CliRunner()
    out = runner.invoke(cli, [*base, "rotate", app.name])
    assert out.exit_code == 1 and "instance id" in out.output
    out = runner.invoke(cli, [*base, "--instance-id", rds_emulator.instance_id, "plan", app.name])
    assert out.exit_code == 0, out.output
    assert f"CreateAccount AccountName={app.alternate}" in out.output
    out = runner.invoke(cli, [*base, "--instance-id", rds_emulator.instance_id, "rotate", app.name])
    assert out.exit_code == 0, out.output
    with EmbeddedStore(path) as store:
        creds = store.get_secret(app.name).db_credentials()
    assert creds.account_name == app.alternate and app.can_login(creds.account_name, creds.account_password)


def test_strategy_talks_https_to_the_regions_rds_host(mariadb, accounts, monkeypatch):
    """No endpoint given: the SDK's host for the region, over HTTPS — here through a ProxyRouter that
    answers only CONNECT (HTTP_PROXY unset: a plain-HTTP request would fail to resolve the host)."""
    from secretclient.stores.embedded import EmbeddedStore

    with RdsEmulator(mariadb) as rds, ProxyRouter(rds) as router, EmbeddedStore(":memory:") as store:
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        monkeypatch.setenv("HTTPS_PROXY", router.proxy_url)
        monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", str(router.ca_file))
        app = make_app(mariadb, rds, store, accounts, endpoint=False)
        client = rds_client(rds.region, access_key_id=rds.access_key_id, access_key_secret=rds.access_key_secret)
        strategy = RdsApiStrategy(rds.instance_id, client)
        Rotator(store, strategy=strategy, lock=strategy.lock(store)).rotate(app.name)
        creds = store.get_secret(app.name).db_credentials()
        assert creds.account_name == app.alternate and app.can_login(app.alternate, creds.account_password)


@pytest.mark.parametrize("target", ["super", "root"])
def test_super_and_reserved_accounts_are_refused_before_any_change(mariadb, rds_emulator, accounts, target, tmp_path):
    from rotation import LocalLock, ProtectedAccount
    from secretclient.stores.embedded import EmbeddedStore

    store = EmbeddedStore(tmp_path / "s.db")
    app = make_app(mariadb, rds_emulator, store, accounts)
    if target == "super":
        account = "rs" + secrets.token_hex(4)
        accounts.append(account)
        app.api("CreateAccount", AccountName=account, AccountPassword=PASSWORD, AccountType="Super")
    else:
        account = "root"
    data = json.loads(store.get_secret(app.name).text) | {"AccountName": account}
    store.put_secret(app.name, "hostile", json.dumps(data))
    before = app.password_hash(account), app.privileges(account + "_rt")
    with pytest.raises(ProtectedAccount):  # an in-process lock: the GET_LOCK login as root would fail first
        Rotator(store, strategy=app.strategy(), lock=LocalLock()).rotate(app.name)
    assert (app.password_hash(account), app.privileges(account + "_rt")) == before
    assert [v.version_id for v in store.list_versions(app.name)] == ["hostile", "v0"]
    store.close()
