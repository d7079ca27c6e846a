"""The throwaway MariaDB: real SQL, users, TLS, failed-login counting, start-up errors, cleanup."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pymysql
import pytest
from server_support import alive, port_refuses

from secretclient.errors import InvalidParameter
from secretclient.testing import (
    MariaDB,
    MariaDBError,
    MariaDBNotInstalled,
    make_certificates,
)
from secretclient.testing.mariadb import find_mariadbd

needs_mariadbd = pytest.mark.skipif(find_mariadbd() is None, reason="mariadbd is not installed")


def test_real_sql_through_an_app_user(mariadb: MariaDB) -> None:
    db = mariadb.create_database("app")
    mariadb.create_user("fixture_app", "app-pw", grants=(f"ALL ON {mariadb.quote_ident(db)}.*",))
    with mariadb.connect("fixture_app", "app-pw", db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kv (k VARCHAR(20) PRIMARY KEY, v INT)")
        cur.executemany("INSERT INTO kv VALUES (%s, %s)", [("a", 1), ("b", 2), ("c", 39)])
        conn.commit()
        cur.execute("SELECT SUM(v), CURRENT_USER() FROM kv")
        total, user = cur.fetchone()
    assert int(total) == 42
    assert user == "fixture_app@%"
    # The app user sees its database only.
    with mariadb.connect("fixture_app", "app-pw") as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as err:
            cur.execute("SELECT COUNT(*) FROM mysql.user")
    assert err.value.args[0] == 1142


def test_admin_is_root_over_tcp_with_autocommit(mariadb: MariaDB) -> None:
    assert mariadb.host == "127.0.0.1" and mariadb.port > 0
    assert "MariaDB" in mariadb.version
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), @@autocommit, @@port, VERSION()")
        user, autocommit, port, version = cur.fetchone()
    assert (user, autocommit, port, version) == ("root@127.0.0.1", 1, mariadb.port, mariadb.version)
    assert mariadb.datadir.is_dir() and mariadb.socket.exists()


def test_hostile_user_names_and_passwords_are_sent_safely(mariadb: MariaDB) -> None:
    name = "o'neil `x` %_ y"
    password = "p'a\"s`s%w\\o;rd -- x"
    mariadb.create_user(name, password, host="127.0.0.1")
    with mariadb.connect(name, password) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone()[0] == f"{name}@127.0.0.1"
    mariadb.drop_user(name, host="127.0.0.1")
    assert mariadb.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (name,)) == [(0,)]


@pytest.mark.parametrize(("name", "host"), [("", "%"), ("u" * 81, "%"), ("ok", ""), ("nul\x00", "%")])
def test_bad_accounts_are_refused(mariadb: MariaDB, name: str, host: str) -> None:
    with pytest.raises(InvalidParameter):
        mariadb.create_user(name, "pw", host=host)


def test_tls_required_user_is_refused_without_tls_and_accepted_with_verified_tls(
    mariadb_tls: MariaDB, tmp_path
) -> None:
    assert mariadb_tls.ca_file is not None and mariadb_tls.ca_file.exists()
    mariadb_tls.create_user("fixture_tls", "tls-pw", require_ssl=True)
    with pytest.raises(pymysql.err.OperationalError) as err:
        mariadb_tls.connect("fixture_tls", "tls-pw", ssl_disabled=True)
    assert err.value.args[0] == 1045
    with mariadb_tls.connect(
        "fixture_tls", "tls-pw", ssl_ca=str(mariadb_tls.ca_file), ssl_verify_identity=True
    ) as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert cur.fetchone()[1].startswith("TLSv1.")
    # A CA that did not sign the server's certificate is rejected by the client.
    other = make_certificates(tmp_path / "other")
    with pytest.raises(pymysql.err.OperationalError):
        mariadb_tls.connect("fixture_tls", "tls-pw", ssl_ca=str(other.ca_file), ssl_verify_identity=True)


def test_plain_server_offers_no_tls(mariadb: MariaDB) -> None:
    assert mariadb.ca_file is None
    assert mariadb.execute("SELECT @@have_ssl")[0][0] == "DISABLED"


@needs_mariadbd
def test_own_instance_with_options_is_cleaned_up_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError, match="test failed"):
        with MariaDB(options={"max_password_errors": 2, "skip_ssl": None}, audit=False) as db:
            assert db.execute("SELECT @@max_password_errors") == [(2,)]
            db.create_user("fixture_blocked", "right")
            for _ in range(2):
                with pytest.raises(pymysql.err.OperationalError):
                    db.connect("fixture_blocked", "wrong")
            with pytest.raises(pymysql.err.OperationalError) as err:
                db.connect("fixture_blocked", "right")
            assert err.value.args[0] == 4150  # ER_USER_IS_BLOCKED: too many password errors
            with pytest.raises(MariaDBError, match="audit"):
                db.failed_logins("fixture_blocked")
            directory, port = db.directory, db.port
            assert directory is not None
            pid = int((directory / "mariadbd.pid").read_text())
            raise RuntimeError("test failed")
    assert not directory.exists()
    assert port_refuses(port)
    assert not alive(pid) and not db.running
    db.stop()  # idempotent


ORPHAN = """
import sys, time
from secretclient.testing import MariaDB
db = MariaDB(audit=False).start()
print(db.directory, (db.directory / "mariadbd.pid").read_text().strip(), flush=True)
time.sleep(120)
"""


@needs_mariadbd
def test_server_and_directory_go_when_the_test_process_is_killed(tmp_path) -> None:
    # SIGKILL skips atexit and every finally: only the watchdog beside the server can clean up.
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    try:
        directory, pid = proc.stdout.readline().split()
        assert Path(directory).is_dir() and alive(int(pid))
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 10
    while (alive(int(pid)) or Path(directory).exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(int(pid))
    assert not Path(directory).exists()


@needs_mariadbd
def test_start_failure_reports_the_error_log_and_cleans_up(tmp_path) -> None:
    db = MariaDB(options={"no_such_server_option": 1}, base_dir=tmp_path)
    with pytest.raises(MariaDBError, match="no-such-server-option|no_such_server_option") as err:
        db.start()
    assert "error log" in str(err.value)
    assert list(tmp_path.iterdir()) == []
    assert not db.running


def test_missing_binary_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SECRETCLIENT_MARIADBD", str(tmp_path / "no-mariadbd"))
    db = MariaDB(base_dir=tmp_path)
    with pytest.raises(MariaDBNotInstalled, match="mariadb-server"):
        db.start()
    assert list(tmp_path.iterdir()) == []


def test_connect_before_start_is_a_clear_error() -> None:
    with pytest.raises(MariaDBError, match="start"):
        MariaDB().connect()


def test_create_user_with_grant_option(mariadb):
    db = mariadb.create_database()
    mariadb.create_user("fixture_granter", "g-pw", grants=(f"SELECT ON {mariadb.quote_ident(db)}.* WITH GRANT OPTION",))
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR %s@%s", ("fixture_granter", "%"))
        grants = [row[0] for row in cur.fetchall()]
    assert any("WITH GRANT OPTION" in g and f"`{db}`" in g for g in grants)
    mariadb.drop_user("fixture_granter")
