"""The one MySQL login layer shared by secretclient.db and rotation (secretclient.db._mysql)."""

from __future__ import annotations

import json
import re
import secrets
import tomllib
from pathlib import Path

import pymysql
import pytest

from rotation.dbconn import ConnectOptions, try_login
from rotation.dbconn import connect as rotation_connect
from rotation.errors import DatabaseError, LoginFailed
from secretclient.client import SecretClient
from secretclient.db import MYSQL, connect
from secretclient.db._mysql import PYMYSQL_FLOOR
from secretclient.model import DbCredentials
from secretclient.stores.embedded import EmbeddedStore

# One password per script: Latin-1 range, outside Latin-1, Cyrillic, CJK, 4-byte UTF-8, mixed.
PASSWORDS = {
    "latin1": "Grüße-ü-ß",
    "euro": "pw€-€uro",
    "cyrillic": "пароль-Ёж",
    "cjk": "密码パスワード비밀",
    "emoji": "🔑🐍-secret",
    "mixed": "a€ü我🔒é\u00a0z",
}


def _creds(mariadb, user: str, password: str, **extra) -> DbCredentials:
    return DbCredentials.from_mapping({"AccountName": user, "AccountPassword": password,
                                       "Endpoint": mariadb.host, "Port": mariadb.port, **extra})


@pytest.mark.parametrize("script", sorted(PASSWORDS))
def test_non_ascii_passwords_log_in_through_both_packages(mariadb, script):
    password = PASSWORDS[script]
    user = f"u8_{secrets.token_hex(3)}"
    database = mariadb.create_database("u8")
    mariadb.create_user(user, password, grants=(f"ALL ON {database}.*",))
    try:
        store = EmbeddedStore()
        doc = {"AccountName": user, "AccountPassword": password, "Endpoint": mariadb.host,
               "Port": mariadb.port, "DBName": database, "SSL": False}
        store.create_secret("db/u8", json.dumps(doc, ensure_ascii=False), version_id="v1")
        with SecretClient(store) as client, connect("db/u8", client=client) as conn, conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0] == f"{user}@%"
        creds = _creds(mariadb, user, password, SSL=False)
        with rotation_connect(creds, ConnectOptions(), database=database) as conn, conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone()[0] == database
        assert try_login(creds, ConnectOptions())
        # A near miss is a refused login (LoginFailed), not an encoding error.
        assert not try_login(_creds(mariadb, user, password[:-1] + "?"), ConnectOptions())
        assert mariadb.failed_logins(user) == 1
    finally:
        mariadb.drop_user(user)


def test_rotation_tells_refused_credentials_from_a_refused_database(mariadb):
    user, password = f"acc_{secrets.token_hex(3)}", "pw-" + secrets.token_hex(8)
    mariadb.create_user(user, password)
    other = mariadb.create_database("acc")
    try:
        creds = _creds(mariadb, user, password)
        with pytest.raises(DatabaseError) as info:  # 1044: logged in, the database is not ours
            rotation_connect(creds, ConnectOptions(), database=other)
        assert not isinstance(info.value, LoginFailed) and info.value.code == "1044"
        mariadb.execute("ALTER USER %s@'%%' ACCOUNT LOCK", (user,))
        with pytest.raises(LoginFailed) as locked:  # 4151: these credentials do not log in
            rotation_connect(creds, ConnectOptions())
        assert locked.value.code == "4151" and password not in str(locked.value)
    finally:
        mariadb.drop_user(user)


def test_rotation_tls_is_required_not_preferred(mariadb):
    # The server has no TLS: SSL true must fail before any credential is sent (PyMySQL >= 1.2).
    user, password = f"tls_{secrets.token_hex(3)}", "pw-" + secrets.token_hex(8)
    mariadb.create_user(user, password)
    try:
        with pytest.raises(DatabaseError) as info:
            rotation_connect(_creds(mariadb, user, password, SSL=True), ConnectOptions())
        assert info.value.code == "2026"
        assert mariadb.failed_logins(user) == 0
    finally:
        mariadb.drop_user(user)


def test_the_login_arguments_are_built_in_one_place(mariadb_tls):
    creds = _creds(mariadb_tls, "app", "pässword", SSL=True, DBName="d")
    kw = MYSQL.login_kwargs(creds, {"ssl_ca": str(mariadb_tls.ca_file)}, secret="s")
    assert kw["password"] == "pässword".encode()
    assert kw["database"] == "d" and kw["host"] == mariadb_tls.host
    again = MYSQL.login_kwargs(creds, {"ssl_ca": str(mariadb_tls.ca_file)}, secret="s")
    assert kw["ssl"] is again["ssl"]  # one SSLContext per set of TLS options
    assert kw["ssl"].check_hostname and "ssl_ca" not in kw
    plain = MYSQL.login_kwargs(_creds(mariadb_tls, "app", "x", SSL=False), {}, secret="s")
    assert plain["ssl_disabled"] is True


def test_the_pymysql_floor_is_decided_once():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    (spec,) = [d for d in pyproject["project"]["dependencies"] if d.lower().startswith("pymysql")]
    floor = tuple(int(x) for x in re.search(r">=\s*([\d.]+)", spec).group(1).split("."))
    assert floor[:2] == PYMYSQL_FLOOR
    assert tuple(int(x) for x in pymysql.VERSION_STRING.split(".")[:2]) >= PYMYSQL_FLOOR
