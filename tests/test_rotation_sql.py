"""Pure logic: server versions, dialect SQL for MySQL 5.7/8/9 and MariaDB, the SHOW GRANTS parser,
grant differences, identifier checks, password policies, lock names and rotation windows."""

from __future__ import annotations

import string
from datetime import UTC, datetime, time

import pytest

from rotation.errors import UnsafeAccountName, UnsupportedGrant, UnsupportedServer
from rotation.grants import Grants, grant_statements, parse_grants
from rotation.lock import lock_name
from rotation.passwords import RDS_PASSWORD_POLICY, new_password, rds_accepts
from rotation.scheduler import RotationWindow
from rotation.sql import (
    AccountOptions,
    Dialect,
    ServerVersion,
    Statement,
    check_account_name,
    ident,
)


@pytest.mark.parametrize("text,comment,expected", [
    ("10.11.19-MariaDB-0+deb12u1", "", ("mariadb", 10, 11, 19)),
    ("5.5.5-10.6.4-MariaDB-log", "", ("mariadb", 10, 6, 4)),
    ("11.4.2-MariaDB", "", ("mariadb", 11, 4, 2)),
    ("8.0.36-0ubuntu0.22.04.1", "(Ubuntu)", ("mysql", 8, 0, 36)),
    ("5.7.44-log", "MySQL Community Server (GPL)", ("mysql", 5, 7, 44)),
    ("9.1.0", "", ("mysql", 9, 1, 0)),
    ("10.4.0", "mariadb.org binary distribution", ("mariadb", 10, 4, 0)),
])
def test_server_version_parsing(text, comment, expected):
    v = ServerVersion.parse(text, comment)
    assert (v.flavor, v.major, v.minor, v.patch) == expected


def test_versions_compare_numerically_not_by_prefix():
    # The seed's startswith("8") would call 80.1 "MySQL 8" and 10.x "not 8"; we compare numbers.
    assert ServerVersion.parse("8.0.14").at_least(8, 0, 14)
    assert not ServerVersion.parse("8.0.9").at_least(8, 0, 14)
    assert ServerVersion.parse("9.0.1").at_least(8, 0, 14)
    with pytest.raises(UnsupportedServer):
        ServerVersion.parse("garbage")
    with pytest.raises(UnsupportedServer):
        Dialect(ServerVersion.parse("5.6.51"))
    with pytest.raises(UnsupportedServer):
        Dialect(ServerVersion.parse("10.1.48-MariaDB"))


def d(text):
    return Dialect(ServerVersion.parse(text))


def test_own_password_per_server():
    assert d("10.11.19-MariaDB").set_own_password("n", "o").sql == "SET PASSWORD = PASSWORD(%s)"
    assert d("5.7.44").set_own_password("n", "o").sql == "SET PASSWORD = PASSWORD(%s)"
    s = d("8.0.36").set_own_password("n", "o", retain=True)
    assert s.sql == "ALTER USER USER() IDENTIFIED BY %s REPLACE %s RETAIN CURRENT PASSWORD"
    assert s.params == ("n", "o") and s.secret == {0, 1}
    assert d("8.0.12").set_own_password("n", "o", retain=True).sql == "ALTER USER USER() IDENTIFIED BY %s"
    assert "PASSWORD(" not in d("9.1.0").set_own_password("n", "o").sql


def test_set_password_per_server():
    assert d("10.11.1-MariaDB").set_password("u", "%", "p", plugin="ed25519").sql == (
        "ALTER USER %s@%s IDENTIFIED VIA ed25519 USING PASSWORD(%s)")
    assert d("8.0.36").set_password("u", "%", "p", plugin="caching_sha2_password").sql == (
        "ALTER USER %s@%s IDENTIFIED WITH caching_sha2_password BY %s")
    assert d("8.0.36").set_password("u", "%", "p", retain=True).sql.endswith("RETAIN CURRENT PASSWORD")
    assert "RETAIN" not in d("10.11.1-MariaDB").set_password("u", "%", "p", retain=True).sql
    assert "RETAIN" not in d("5.7.44").set_password("u", "%", "p", retain=True).sql
    with pytest.raises(UnsafeAccountName):
        d("8.0.36").set_password("u", "%", "p", plugin="unix_socket")
    assert d("8.0.36").create_user("u", "10.0.%", "p").redacted() == (
        "CREATE USER 'u'@'10.0.%' IDENTIFIED BY '<redacted>'")
    assert d("8.0.36").default_role("u", "%", "r").sql == "SET DEFAULT ROLE `r` TO %s@%s"
    assert d("10.6.1-MariaDB").default_role("u", "%", None).sql == "SET DEFAULT ROLE NONE FOR %s@%s"


def test_tls_requirements():
    dia = d("8.0.36")
    assert dia.require("u", "%", AccountOptions()).sql == "ALTER USER %s@%s REQUIRE NONE"
    assert dia.require("u", "%", AccountOptions(ssl_type="ANY")).sql == "ALTER USER %s@%s REQUIRE SSL"
    s = dia.require("u", "%", AccountOptions(ssl_type="SPECIFIED", x509_issuer="/CN=ca", ssl_cipher="AES"))
    assert s.sql == "ALTER USER %s@%s REQUIRE ISSUER %s AND CIPHER %s" and s.params == ("u", "%", "/CN=ca", "AES")


def test_statement_redaction_and_percent():
    s = Statement(f"GRANT SELECT ON {ident('x%y')}.* TO %s@%s IDENTIFIED BY %s", ("u", "%", "pa'ss"), frozenset({2}))
    assert s.sql.count("%%") == 1
    assert s.redacted() == "GRANT SELECT ON `x%y`.* TO 'u'@'%' IDENTIFIED BY '<redacted>'"
    assert "pa'ss" not in repr(s)
    assert ident("a`b") == "`a``b`"


@pytest.mark.parametrize("name", ["app'user", "app`user", "app%", "app user", "app\x00", "-app", "", "a" * 17, "äpp"])
def test_hostile_names(name):
    with pytest.raises(UnsafeAccountName):
        check_account_name(name, 16)


def test_good_names():
    assert check_account_name("app_user-1.x", 16) == "app_user-1.x"


MARIADB_LINES = [
    "GRANT `r1` TO `appuser`@`10.0.%` WITH ADMIN OPTION",
    ("GRANT USAGE ON *.* TO `appuser`@`10.0.%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'"
     " REQUIRE SSL WITH MAX_USER_CONNECTIONS 5"),
    "GRANT ALL PRIVILEGES ON `x%y`.* TO `appuser`@`10.0.%`",
    "GRANT SELECT, INSERT, UPDATE (`a`, `b c`) ON `app_db`.`t` TO `appuser`@`10.0.%` WITH GRANT OPTION",
    "GRANT EXECUTE ON PROCEDURE `app_db`.`p` TO `appuser`@`10.0.%`",
    "GRANT USAGE ON `app\\_db`.* TO `appuser`@`10.0.%` WITH GRANT OPTION",
    "SET DEFAULT ROLE `r1` FOR `appuser`@`10.0.%`",
]


def test_parse_mariadb_grants():
    g = parse_grants(MARIADB_LINES, "appuser", "10.0.%")
    text = g.describe()
    assert "SELECT ON `app_db`.`t`" in text and "UPDATE (`b c`) ON `app_db`.`t`" in text
    assert "GRANT OPTION ON `app_db`.`t`" in text and "GRANT OPTION ON `app\\_db`.*" in text
    assert "ALL PRIVILEGES ON `x%y`.*" in text and "EXECUTE ON PROCEDURE `app_db`.`p`" in text
    assert g.default_role == "r1" and {(r.role, r.admin) for r in g.roles} == {("r1", True)}
    assert not any("D821809F" in t or "USAGE" in t for t in text)


def test_parse_mysql8_grants():
    lines = [
        "GRANT SELECT, RELOAD ON *.* TO `u`@`%`",
        "GRANT BACKUP_ADMIN,XA_RECOVER_ADMIN ON *.* TO `u`@`%` WITH GRANT OPTION",
        "GRANT `r1`@`%`,`r2`@`%` TO `u`@`%`",
        "GRANT SELECT ON `d`.* TO `u`@`%`",
    ]
    g = parse_grants(lines, "u", "%")
    assert {p.name for p in g.privileges} == {"SELECT", "RELOAD", "BACKUP_ADMIN", "XA_RECOVER_ADMIN", "GRANT OPTION"}
    assert {(r.role, r.host) for r in g.roles} == {("r1", "%"), ("r2", "%")}


@pytest.mark.parametrize("line", [
    "REVOKE INSERT ON `mysql`.* FROM `u`@`%`",
    "GRANT PROXY ON ''@'%' TO 'u'@'%' WITH GRANT OPTION",
    "GRANT SELECT ON `d`.* TO `someone_else`@`%`",
    "GRANT SELECT ON t TO `u`@`%`",
    "GRANT SELECT ON `d`.* TO `u`@`%` ; DROP",
])
def test_unparseable_lines_raise(line):
    with pytest.raises(UnsupportedGrant):
        parse_grants([line], "u", "%")


def test_parse_errors_never_quote_a_password_hash():
    line = "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122"
    with pytest.raises(UnsupportedGrant) as info:  # the unterminated quote stops the tokenizer at the hash
        parse_grants([line], "u", "%")
    assert "D821809F" not in str(info.value)
    with pytest.raises(UnsupportedGrant) as info:
        parse_grants([line + "' ; x"], "u", "%")
    assert "D821809F" not in str(info.value)


def test_grant_difference_revokes_then_grants():
    want = parse_grants([
        "GRANT SELECT, INSERT ON `d`.* TO `u`@`h`",
        "GRANT UPDATE (`c`) ON `d`.`t` TO `u`@`h` WITH GRANT OPTION",
        "GRANT `r` TO `u`@`h`",
        "SET DEFAULT ROLE `r` FOR `u`@`h`",
    ], "u", "h")
    have = parse_grants([
        "GRANT SELECT, DELETE ON `d`.* TO `u_rt`@`h` WITH GRANT OPTION",
        "GRANT `old` TO `u_rt`@`h`",
    ], "u_rt", "h")
    sql = [s.redacted() for s in grant_statements(have, want, "u_rt", "h", d("10.11.1-MariaDB"))]
    assert sql == [
        "REVOKE `old` FROM 'u_rt'@'h'",
        "REVOKE DELETE ON `d`.* FROM 'u_rt'@'h'",
        "REVOKE GRANT OPTION ON `d`.* FROM 'u_rt'@'h'",
        "GRANT INSERT ON `d`.* TO 'u_rt'@'h'",
        "GRANT UPDATE (`c`) ON `d`.`t` TO 'u_rt'@'h' WITH GRANT OPTION",
        "GRANT `r` TO 'u_rt'@'h'",
        "SET DEFAULT ROLE `r` FOR 'u_rt'@'h'",
    ]
    assert grant_statements(want, want, "u", "h", d("8.0.36")) == []
    assert grant_statements(Grants(), Grants(), "u", "h", d("8.0.36")) == []


def test_rds_policy_and_password_sources():
    class NoStore:
        pass

    for _ in range(50):
        pw = new_password(NoStore(), RDS_PASSWORD_POLICY)
        assert rds_accepts(pw) and RDS_PASSWORD_POLICY.accepts(pw)
    assert rds_accepts("short1A!")
    assert not rds_accepts("abcdefgh")  # one class only
    assert not rds_accepts("Abcdefg1~")  # '~' is not an RDS special

    class BadStore:
        def random_password(self, policy):
            return "x" * policy.length  # ignores the policy: must not be used

    pw = new_password(BadStore(), RDS_PASSWORD_POLICY)
    assert pw != "x" * 32 and RDS_PASSWORD_POLICY.accepts(pw)
    assert set(string.punctuation) - set(RDS_PASSWORD_POLICY.alphabet()) == set(string.punctuation) - set("!@#$%^&*()_+-=")


def test_lock_names_are_short_and_distinct():
    assert lock_name("app/db") == "rotation:app/db"
    long_a, long_b = "x" * 150 + "a", "x" * 150 + "b"
    assert len(lock_name(long_a)) <= 64 and lock_name(long_a) != lock_name(long_b)
    assert len(lock_name("ünïcode name with spaces")) <= 64


def test_rotation_window():
    w = RotationWindow(time(2), time(4))
    at = datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
    assert not w.contains(at) and w.next_open(at) == datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
    assert w.contains(datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    night = RotationWindow(time(23), time(1))
    assert night.contains(datetime(2026, 1, 1, 0, 30, tzinfo=UTC))
    assert night.next_open(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)).hour == 23


def test_scheduler_due_time_comes_from_the_store():
    from datetime import timedelta

    from rotation import AlternatingUsersStrategy, LocalLock, Rotator, Scheduler
    from secretclient.stores.embedded import EmbeddedStore

    created = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    now = [created]  # the store's clock: due times are compared with the store's time
    store = EmbeddedStore(clock=lambda: now[0])
    store.create_secret("s", '{"AccountName": "a", "AccountPassword": "p"}', version_id="v1")
    now[0] = created + timedelta(hours=1)
    # the rotator's own clock is two days ahead: it must not matter
    rotator = Rotator(store, strategy=AlternatingUsersStrategy(), lock=LocalLock(),
                      clock=lambda: now[0] + timedelta(days=2))
    sched = Scheduler(rotator, "s", interval=timedelta(days=1), jitter=timedelta(hours=2))
    due = sched.due_at("s")
    assert created + timedelta(days=1) <= due <= created + timedelta(days=1, hours=2)
    # A restarted process (a new Scheduler) computes the same due time: nothing is kept in memory.
    assert Scheduler(rotator, "s", interval=timedelta(days=1), jitter=timedelta(hours=2)).due_at("s") == due
    assert sched.run_pending() == []  # not due: nothing happens, no database is touched
    # Due, but another instance holds the lock: check again after poll, not in a tight loop.
    now[0] = due
    held = rotator.lock.acquire("s")
    busy = Scheduler(rotator, "s", interval=timedelta(days=1), jitter=timedelta(hours=2), poll=30)
    assert busy.run_pending() == []
    assert busy.due_at("s") == due + timedelta(seconds=30)
    held.release()
    windowed = Scheduler(rotator, "s", interval=timedelta(days=1), window=RotationWindow(time(2), time(3)))
    assert windowed.due_at("s") == datetime(2026, 1, 3, 2, 0, tzinfo=UTC)


def test_native_password_accounts_are_sent_hashes():
    from rotation.sql import native_hash

    assert native_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"  # MySQL's documented example
    h = native_hash("n")
    s = d("10.11.1-MariaDB").set_password("u", "%", "n")
    assert (s.sql, s.params, s.secret) == ("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", ("u", "%", h), {2})
    assert d("10.11.1-MariaDB").create_user("u", "%", "n", "mysql_native_password").sql == (
        "CREATE USER %s@%s IDENTIFIED VIA mysql_native_password USING %s")
    assert d("5.7.44").set_password("u", "%", "n").sql == "ALTER USER %s@%s IDENTIFIED WITH mysql_native_password AS %s"
    assert d("8.0.36").set_password("u", "%", "n", plugin="mysql_native_password").params[2] == h
    # The server's default plugin on MySQL 8 salts its hashes; RETAIN needs the password itself.
    assert d("8.0.36").set_password("u", "%", "n").params[2] == "n"
    assert d("8.0.36").set_password("u", "%", "n", plugin="", retain=True).params[2] == "n"
    assert d("10.11.1-MariaDB").set_own_password("n", "o", native=True).params == (h,)
    assert d("10.11.1-MariaDB").set_own_password("n", "o").sql == "SET PASSWORD = PASSWORD(%s)"
    assert "'<redacted>'" in s.redacted() and h not in s.redacted()
