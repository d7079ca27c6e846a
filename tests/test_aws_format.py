"""The AWS database secret format: read as DbCredentials, written back in the same format."""

import json

from secretclient.model import DbCredentials

AWS_SECRET = {
    "engine": "mysql",
    "host": "db.example.internal",
    "port": 3306,
    "username": "app",
    "password": "Old-Pass-123",
    "dbname": "shop",
    "masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/master-AbCdEf",
    "dbClusterIdentifier": "kept-as-is",
}


def test_aws_secret_is_read_field_by_field():
    creds = DbCredentials.from_mapping(AWS_SECRET)
    assert (creds.account_name, creds.account_password, creds.endpoint, creds.port, creds.db_name) == (
        "app", "Old-Pass-123", "db.example.internal", 3306, "shop")
    assert creds.master_secret == AWS_SECRET["masterarn"]
    assert dict(creds.extra) == {"engine": "mysql", "dbClusterIdentifier": "kept-as-is"}
    assert "Old-Pass-123" not in repr(creds)


def test_a_new_version_keeps_the_aws_keys_and_extra_keys():
    creds = DbCredentials.from_mapping(AWS_SECRET)
    rotated = creds.with_changes(account_name="app_clone", account_password="New-Pass-456")
    out = json.loads(rotated.to_json())
    assert out == {**AWS_SECRET, "username": "app_clone", "password": "New-Pass-456"}


def test_missing_fields_are_written_in_the_format_read():
    creds = DbCredentials.from_mapping({"username": "app", "password": "x", "engine": "mariadb"})
    out = creds.with_changes(endpoint="h", db_name="d", master_secret="m").to_json_dict()
    # No port is invented: the database family decides it (3306 here, 5432 for PostgreSQL).
    assert out == {"engine": "mariadb", "username": "app", "password": "x", "host": "h",
                   "dbname": "d", "masterarn": "m"}


def test_alibaba_format_is_unchanged():
    ali = {"AccountName": "app", "AccountPassword": "x", "Endpoint": "h", "Port": 3306, "DBName": "d",
           "MasterSecret": "m", "Custom": 1}
    assert DbCredentials.from_mapping(ali).to_json_dict() == ali
    built = DbCredentials(account_name="a", account_password="p")
    assert built.to_json_dict() == {"AccountName": "a", "AccountPassword": "p"}
