"""The RDS account-API emulator through the real aliyun-python-sdk-rds, acting on a real MariaDB:
signatures, each action's effect on the server, RDS's response shapes and error codes."""

from __future__ import annotations

import importlib
import json
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import pymysql
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from server_support import post_json

from secretclient.testing import MariaDB, RdsEmulator
from secretclient.testing.rds_emulator import ACCOUNT_PRIVILEGES, SUPER_PRIVILEGES
from secretclient.testing.rpc_server import sign

PASSWORD = "Init-Pass_123"


def call(client, action: str, **params: str) -> dict:
    """``action`` built from the SDK's own request class, each parameter through its setter."""
    module = importlib.import_module(f"aliyunsdkrds.request.v20140815.{action}Request")
    request = getattr(module, f"{action}Request")()
    request.set_accept_format("json")
    for key, value in params.items():
        getattr(request, f"set_{key}")(value)
    return json.loads(client.do_action_with_exception(request))


def error_of(client, action: str, **params: str) -> tuple[str, int]:
    with pytest.raises(ServerException) as info:
        call(client, action, **params)
    return info.value.error_code, info.value.get_http_status()


def login(db: MariaDB, user: str, password: str, database: str | None = None) -> pymysql.Connection:
    return db.connect(user, password, database=database, ssl_disabled=True)


def can_login(db: MariaDB, user: str, password: str) -> bool:
    try:
        login(db, user, password).close()
    except pymysql.OperationalError as exc:
        assert exc.args[0] == 1045
        return False
    return True


@pytest.fixture
def rds(rds_emulator: RdsEmulator) -> Iterator[RdsEmulator]:
    yield rds_emulator


@pytest.fixture
def names(mariadb: MariaDB) -> Iterator[list[str]]:
    """Unique account names for a test; dropped afterwards (the MariaDB is shared by the session)."""
    made: list[str] = []
    yield made
    for name in made:
        mariadb.drop_user(name)


def new_name(names: list[str]) -> str:
    names.append("u" + secrets.token_hex(5))
    return names[-1]


def describe(rds: RdsEmulator, client, name: str) -> dict:
    accounts = call(client, "DescribeAccounts", DBInstanceId=rds.instance_id, AccountName=name)["Accounts"]["DBInstanceAccount"]
    assert len(accounts) == 1
    return accounts[0]


def test_create_account_makes_a_real_account(rds, mariadb, names):
    client, name = rds.acs_client(), new_name(names)
    out = call(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword=PASSWORD,
               AccountDescription="app account")
    assert set(out) == {"RequestId"}
    assert can_login(mariadb, name, PASSWORD)
    assert mariadb.execute("SELECT Host FROM mysql.user WHERE User = %s", (name,)) == [("%",)]
    account = describe(rds, client, name)
    assert account == {
        "DBInstanceId": rds.instance_id, "AccountName": name, "AccountStatus": "Available", "AccountType": "Normal",
        "AccountDescription": "app account", "PrivExceeded": "0", "DatabasePrivileges": {"DatabasePrivilege": []},
    }
    assert error_of(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name,
                    AccountPassword=PASSWORD) == ("InvalidAccountName.Duplicate", 400)
    assert rds.calls["CreateAccount"] == 2


def test_super_account_gets_the_privileged_set(rds, mariadb, names):
    client, name = rds.acs_client(), new_name(names)
    call(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword=PASSWORD,
         AccountType="Super")
    assert describe(rds, client, name)["AccountType"] == "Super"
    rows = mariadb.execute("SELECT PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s",
                           (f"'{name}'@'%'",))
    granted = {p.replace("BINLOG MONITOR", "REPLICATION CLIENT") for p, _ in rows}
    assert granted == SUPER_PRIVILEGES and {g for _, g in rows} == {"YES"}
    with login(mariadb, name, PASSWORD) as conn, conn.cursor() as cur:  # it can really manage accounts
        other = new_name(names)
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (other, PASSWORD))


@pytest.mark.parametrize("privilege", sorted(ACCOUNT_PRIVILEGES))
def test_each_account_privilege_maps_to_the_documented_grants(rds, mariadb, names, privilege):
    client, name = rds.acs_client(), new_name(names)
    db = mariadb.create_database("app")  # has '_' in its name: a wildcard unless escaped
    call(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword=PASSWORD)
    call(client, "GrantAccountPrivilege", DBInstanceId=rds.instance_id, AccountName=name, DBName=db,
         AccountPrivilege=privilege)
    (entry,) = describe(rds, client, name)["DatabasePrivileges"]["DatabasePrivilege"]
    assert entry["DBName"] == db and entry["AccountPrivilege"] == privilege
    assert set(entry["AccountPrivilegeDetail"].split(",")) == ACCOUNT_PRIVILEGES[privilege]
    schema = mariadb.execute("SELECT TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
                             "WHERE GRANTEE = %s", (f"'{name}'@'%'",))
    assert {s for s, _ in schema} == {db.replace("_", "\\_")}  # exactly this database, not a pattern
    assert {p for _, p in schema} == ACCOUNT_PRIVILEGES[privilege]
    mariadb.execute(f"CREATE TABLE {mariadb.quote_ident(db)}.t (x INT)")
    # The privileges work on the real server as their names say.
    with login(mariadb, name, PASSWORD, db) as conn, conn.cursor() as cur:
        for sql, allowed in (("SELECT * FROM t", "SELECT"), ("INSERT INTO t VALUES (1)", "INSERT"),
                             ("CREATE TABLE t2 (y INT)", "CREATE")):
            if allowed in ACCOUNT_PRIVILEGES[privilege]:
                cur.execute(sql)
            else:
                with pytest.raises(pymysql.err.OperationalError) as info:
                    cur.execute(sql)
                assert info.value.args[0] in (1142, 1044)


def test_grant_replaces_revoke_removes_and_globals_follow(rds, mariadb, names):
    client, name = rds.acs_client(), new_name(names)
    db1, db2 = mariadb.create_database("g"), mariadb.create_database("g")
    call(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword=PASSWORD)

    def state() -> tuple[dict, set]:
        privs = {p["DBName"]: p["AccountPrivilege"] for p in describe(rds, client, name)["DatabasePrivileges"]["DatabasePrivilege"]}
        rows = mariadb.execute("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s",
                               (f"'{name}'@'%'",))
        return privs, {r[0] for r in rows} - {"USAGE"}

    call(client, "GrantAccountPrivilege", DBInstanceId=rds.instance_id, AccountName=name, DBName=f"{db1},{db2}",
         AccountPrivilege="ReadOnly,ReadWrite")
    assert state() == ({db1: "ReadOnly", db2: "ReadWrite"}, {"PROCESS", "REPLICATION SLAVE", "BINLOG MONITOR"})
    call(client, "GrantAccountPrivilege", DBInstanceId=rds.instance_id, AccountName=name, DBName=db1,
         AccountPrivilege="DMLOnly")  # one privilege per database: replaced, not added
    assert state()[0] == {db1: "DMLOnly", db2: "ReadWrite"}
    call(client, "RevokeAccountPrivilege", DBInstanceId=rds.instance_id, AccountName=name, DBName=f"{db1},{db2}")
    call(client, "GrantAccountPrivilege", DBInstanceId=rds.instance_id, AccountName=name, DBName=db2,
         AccountPrivilege="ReadOnly")
    assert state() == ({db2: "ReadOnly"}, {"REPLICATION SLAVE", "BINLOG MONITOR"})  # ReadOnly has no PROCESS
    call(client, "RevokeAccountPrivilege", DBInstanceId=rds.instance_id, AccountName=name, DBName=db2)
    assert state() == ({}, set())


def test_custom_privileges_are_reported_as_custom(rds, mariadb, names):
    client, name = rds.acs_client(), new_name(names)
    db = mariadb.create_database("c")
    call(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword=PASSWORD)
    mariadb.execute(f"GRANT SELECT, INSERT ON {mariadb.quote_ident(db)}.* TO %s@'%%'", (name,))
    (entry,) = describe(rds, client, name)["DatabasePrivileges"]["DatabasePrivilege"]
    assert (entry["AccountPrivilege"], entry["AccountPrivilegeDetail"]) == ("Custom", "INSERT,SELECT")


def test_reset_password_and_delete_account(rds, mariadb, names):
    client, name = rds.acs_client(), new_name(names)
    call(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword=PASSWORD)
    call(client, "ResetAccountPassword", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword="New#Pass99x")
    assert not can_login(mariadb, name, PASSWORD) and can_login(mariadb, name, "New#Pass99x")
    call(client, "DeleteAccount", DBInstanceId=rds.instance_id, AccountName=name)
    assert mariadb.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (name,)) == [(0,)]
    for action, extra in (("ResetAccountPassword", {"AccountPassword": "New#Pass99x"}), ("DeleteAccount", {}),
                          ("GrantAccountPrivilege", {"DBName": "mysql", "AccountPrivilege": "ReadOnly"})):
        assert error_of(client, action, DBInstanceId=rds.instance_id, AccountName=name, **extra) == (
            "InvalidAccountName.NotFound", 404)


def test_describe_accounts_lists_and_filters(rds, names):
    client = rds.acs_client()
    made = [new_name(names), new_name(names)]
    for name in made:
        call(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword=PASSWORD)
    listed = [a["AccountName"] for a in call(client, "DescribeAccounts", DBInstanceId=rds.instance_id)["Accounts"]["DBInstanceAccount"]]
    assert set(made) <= set(listed) and "root" not in listed
    # An unknown name is an empty list, not an error: the seed relies on it to decide to create.
    out = call(client, "DescribeAccounts", DBInstanceId=rds.instance_id, AccountName="nosuchuser")
    assert out["Accounts"] == {"DBInstanceAccount": []}


def test_describe_db_instances(rds):
    client = rds.acs_client()
    out = call(client, "DescribeDBInstances", DBInstanceId=rds.instance_id)
    (item,) = out["Items"]["DBInstance"]
    assert item["DBInstanceId"] == rds.instance_id and item["DBInstanceStatus"] == "Running"
    assert item["RegionId"] == rds.region and out["TotalRecordCount"] == 1
    assert call(client, "DescribeDBInstances", DBInstanceId="rm-other")["Items"]["DBInstance"] == []


@pytest.mark.parametrize(("action", "params", "expected"), [
    ("CreateAccount", {"AccountName": "1bad", "AccountPassword": PASSWORD}, ("InvalidAccountName.Malformed", 400)),
    ("CreateAccount", {"AccountName": "bad'name", "AccountPassword": PASSWORD}, ("InvalidAccountName.Malformed", 400)),
    ("CreateAccount", {"AccountName": "root", "AccountPassword": PASSWORD}, ("InvalidAccountName.Malformed", 400)),
    ("CreateAccount", {"AccountName": "a" * 33, "AccountPassword": PASSWORD}, ("InvalidAccountName.Malformed", 400)),
    ("CreateAccount", {"AccountName": "okname", "AccountPassword": "short1A"}, ("InvalidAccountPassword.Malformed", 400)),
    ("CreateAccount", {"AccountName": "okname", "AccountPassword": "alllowercase1"}, ("InvalidAccountPassword.Malformed", 400)),
    ("CreateAccount", {"AccountName": "okname", "AccountPassword": "Quote'Pass123"}, ("InvalidAccountPassword.Malformed", 400)),
    ("CreateAccount", {"AccountName": "okname", "AccountPassword": PASSWORD, "AccountType": "Root"},
     ("InvalidAccountType.Malformed", 400)),
    ("CreateAccount", {"AccountName": "okname"}, ("MissingAccountPassword", 400)),
    ("GrantAccountPrivilege", {"AccountName": "root", "DBName": "x", "AccountPrivilege": "ReadOnly"},
     ("InvalidAccountName.Malformed", 400)),
    ("GrantAccountPrivilege", {"AccountName": "okname", "DBName": "x", "AccountPrivilege": "All"},
     ("InvalidAccountPrivilege.Malformed", 400)),
])
def test_bad_requests_answer_rds_codes_and_change_nothing(rds, mariadb, action, params, expected):
    client = rds.acs_client()
    before = mariadb.execute("SELECT COUNT(*) FROM mysql.user")
    assert error_of(client, action, DBInstanceId=rds.instance_id, **params) == expected
    assert mariadb.execute("SELECT COUNT(*) FROM mysql.user") == before


def test_unknown_instance_and_database(rds, mariadb, names):
    client, name = rds.acs_client(), new_name(names)
    assert error_of(client, "CreateAccount", DBInstanceId="rm-nosuch", AccountName=name,
                    AccountPassword=PASSWORD) == ("InvalidDBInstanceId.NotFound", 404)
    assert error_of(client, "DescribeAccounts", DBInstanceId="rm-nosuch") == ("InvalidDBInstanceId.NotFound", 404)
    call(client, "CreateAccount", DBInstanceId=rds.instance_id, AccountName=name, AccountPassword=PASSWORD)
    assert error_of(client, "GrantAccountPrivilege", DBInstanceId=rds.instance_id, AccountName=name,
                    DBName="no_such_db", AccountPrivilege="ReadOnly") == ("InvalidDBName.NotFound", 404)
    assert error_of(client, "GrantAccountPrivilege", DBInstanceId=rds.instance_id, AccountName=name,
                    DBName="bad`db", AccountPrivilege="ReadOnly") == ("InvalidDBName.Malformed", 400)


def test_signatures_are_checked(rds, names):
    wrong = rds.acs_client(secret="not-the-secret")
    # The SDK renames SignatureDoesNotMatch when its string to sign equals ours (only the secret differs).
    assert error_of(wrong, "DescribeAccounts", DBInstanceId=rds.instance_id) == ("InvalidAccessKeySecret", 400)
    assert error_of(rds.acs_client(ak="LTAInobody"), "DescribeAccounts",
                    DBInstanceId=rds.instance_id) == ("InvalidAccessKeyId.NotFound", 404)
    rds.add_access_key("STS.role", "role-secret", security_token="tok")
    sts = rds.acs_client(ak="STS.role", secret="role-secret")  # no token sent
    assert error_of(sts, "DescribeAccounts", DBInstanceId=rds.instance_id) == ("InvalidSecurityToken.Malformed", 400)
    assert rds.calls["DescribeAccounts"] == 3


def _raw(rds: RdsEmulator, **overrides: str) -> tuple[int, dict]:
    params = {
        "Action": "DescribeDBInstances", "Version": "2014-08-15", "Format": "JSON", "RegionId": rds.region,
        "AccessKeyId": rds.access_key_id, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "SignatureNonce": "n-fixed", "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    params.update(overrides)
    params["Signature"] = sign("POST", params, rds.access_key_secret)
    return post_json(f"{rds.endpoint}/?{urlencode(params)}")


def test_raw_protocol_nonce_version_and_timestamp(rds):
    status, body = _raw(rds)
    assert status == 200 and body["Items"]["DBInstance"][0]["DBInstanceId"] == rds.instance_id
    status, body = _raw(rds)  # same SignatureNonce again
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    status, body = _raw(rds, SignatureNonce="n2", Version="2016-01-20")
    assert (status, body["Code"]) == (400, "InvalidVersion")
    status, body = _raw(rds, SignatureNonce="n3", Timestamp="2001-01-01T00:00:00Z")
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")
    status, body = _raw(rds, SignatureNonce="n4", Action="DeleteDBInstance")
    assert (status, body["Code"]) == (404, "InvalidAction.NotFound")
    assert "product=Rds" in body["Recommend"]


def test_faults_use_rds_codes(rds):
    client = rds.acs_client()
    with rds.faults.outage():
        assert error_of(client, "DescribeDBInstances") == ("ServiceUnavailable", 503)
    rds.faults.throttle(1)
    call(client, "DescribeDBInstances")
    assert error_of(client, "DescribeDBInstances") == ("Throttling", 400)
    rds.faults.clear()
    rds.faults.set_error_rate(1.0)
    assert error_of(client, "DescribeDBInstances") == ("InternalError", 500)


def test_https_and_stop(mariadb):
    with RdsEmulator(mariadb, https=True) as rds:
        assert rds.endpoint.startswith("https://")
        client = rds.acs_client()  # verifies against rds.ca_file
        assert call(client, "DescribeDBInstances")["TotalRecordCount"] == 1
        assert rds.answers_host("rds.aliyuncs.com") and rds.answers_host(f"rds-vpc.{rds.region}.aliyuncs.com")
        assert not rds.answers_host(f"kms-vpc.{rds.region}.aliyuncs.com")
        port = rds.port
    # Refused, not timed out: the listening socket is closed, not merely unanswered.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
