"""Values: Secret never shows its data, DbCredentials parse and validate without leaking."""

import json
from datetime import UTC, datetime

import pytest

from secretclient import (
    DbCredentials,
    InvalidParameter,
    InvalidSecretContent,
    PasswordPolicy,
    Secret,
)

PASSWORD = "s3cr3t-Value!"


def make_secret(data):
    return Secret("db", "v1", frozenset({"ACSCurrent"}), data, datetime.now(UTC))


def test_secret_repr_and_str_hide_data():
    s = make_secret(json.dumps({"AccountName": "app", "AccountPassword": PASSWORD}))
    for text in (repr(s), str(s), f"{s}", repr([s])):
        assert PASSWORD not in text
        assert "v1" in text


def test_secret_is_frozen():
    s = make_secret("x")
    with pytest.raises(AttributeError):
        s.data = "y"  # type: ignore[misc]


def test_secret_text_json_and_binary():
    assert make_secret('{"a": 1}').json() == {"a": 1}
    b = make_secret(b"\xff\xfe")
    assert b.data_type == "binary"
    with pytest.raises(InvalidSecretContent):
        b.text
    with pytest.raises(InvalidSecretContent) as e:
        make_secret("not json " + PASSWORD).json()
    assert PASSWORD not in str(e.value) and e.value.__cause__ is None


def test_db_credentials_alibaba_keys():
    c = make_secret(json.dumps({
        "AccountName": "app", "AccountPassword": PASSWORD, "Endpoint": "db.local", "Port": "3307",
        "DBName": "shop", "SSL": "true", "MasterSecret": "admin", "Other": 1,
    })).db_credentials()
    assert (c.account_name, c.endpoint, c.port, c.db_name, c.ssl, c.master_secret) == (
        "app", "db.local", 3307, "shop", True, "admin")
    assert c.version_id == "v1" and "ACSCurrent" in c.stages
    assert c.extra == {"Other": 1}
    assert PASSWORD not in repr(c) and PASSWORD not in str(c)
    assert json.loads(c.to_json())["AccountPassword"] == PASSWORD
    assert json.loads(c.to_json())["Other"] == 1


def test_db_credentials_aws_keys():
    c = DbCredentials.from_mapping({"username": "u", "password": PASSWORD, "host": "h", "port": 3306,
                                    "dbname": "d", "engine": "mysql", "masterarn": "arn"})
    assert (c.account_name, c.endpoint, c.db_name, c.master_secret, c.ssl) == ("u", "h", "d", "arn", None)


@pytest.mark.parametrize("data, field", [
    ({"AccountPassword": PASSWORD}, "AccountName"),
    ({"AccountName": "u"}, "AccountPassword"),
    ({"AccountName": "", "AccountPassword": PASSWORD}, "AccountName"),
    ({"AccountName": "u", "AccountPassword": 5}, "AccountPassword"),
    ({"AccountName": "u", "AccountPassword": PASSWORD, "Port": "x" + PASSWORD}, "Port"),
    ({"AccountName": "u", "AccountPassword": PASSWORD, "Port": 70000}, "Port"),
    ({"AccountName": "u", "AccountPassword": PASSWORD, "SSL": "maybe"}, "SSL"),
    ({"AccountName": "u", "AccountPassword": PASSWORD, "Endpoint": ""}, "Endpoint"),
])
def test_db_credentials_validation_names_field_not_value(data, field):
    with pytest.raises(InvalidSecretContent) as e:
        DbCredentials.from_mapping(data)
    assert repr(field) in str(e.value)
    assert PASSWORD not in str(e.value)


def test_db_credentials_not_an_object():
    with pytest.raises(InvalidSecretContent):
        make_secret('["a"]').db_credentials()


def test_password_policy_generate_and_accepts():
    p = PasswordPolicy(length=20, exclude_characters="\"'\\/@", require_each_included_type=True)
    for _ in range(200):
        pw = p.generate()
        assert p.accepts(pw)
        assert not set(pw) & set("\"'\\/@")
        assert any(c.isdigit() for c in pw) and any(c.islower() for c in pw) and any(c.isupper() for c in pw)
    assert not p.accepts("short")


def test_password_policy_rejects_bad_input():
    with pytest.raises(InvalidParameter):
        PasswordPolicy(length=4)
    with pytest.raises(InvalidParameter):
        PasswordPolicy(exclude_lowercase=True, exclude_uppercase=True, exclude_numbers=True,
                       exclude_punctuation=True)
