"""NCP's secret format (the seed's keys) parses as DbCredentials and is written back unchanged
but for the values a rotation replaces."""

from __future__ import annotations

import json

from secretclient.model import DbCredentials

SEED_SECRET = {"cdbHost": "db.example", "cdbPort": "3306", "cdbUser": "app", "cdbDatabase": "shop",
               "cdbPassword": "old-password", "note": "kept"}


def test_seed_keys_parse():
    creds = DbCredentials.from_mapping(SEED_SECRET)
    assert (creds.account_name, creds.account_password, creds.endpoint, creds.port, creds.db_name) == (
        "app", "old-password", "db.example", 3306, "shop")
    assert dict(creds.extra) == {"note": "kept"}
    assert "old-password" not in repr(creds)


def test_round_trip_keeps_every_key_but_the_changed_ones():
    creds = DbCredentials.from_mapping(SEED_SECRET)
    assert creds.to_json_dict() == SEED_SECRET  # same keys, port still text
    rotated = json.loads(creds.with_changes(account_password="new-password").to_json())
    changed = {k for k in SEED_SECRET if rotated[k] != SEED_SECRET[k]}
    assert changed == {"cdbPassword"} and set(rotated) == set(SEED_SECRET)
    numeric = DbCredentials.from_mapping({**SEED_SECRET, "cdbPort": 3307}).to_json_dict()
    assert numeric["cdbPort"] == 3307


def test_other_formats_are_written_as_they_came():
    aws = {"username": "u", "password": "p", "host": "h", "port": 5432, "dbname": "d"}
    assert DbCredentials.from_mapping(aws).to_json_dict() == aws
    alibaba = {"AccountName": "u", "AccountPassword": "p", "Endpoint": "h", "Port": 3306}
    assert DbCredentials.from_mapping(alibaba).to_json_dict() == alibaba
