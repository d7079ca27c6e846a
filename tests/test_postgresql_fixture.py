"""The throwaway PostgreSQL: real SQL, roles, scram over TCP, TLS, failed-login counting, start-up
errors, cleanup (also after SIGKILL) and the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from server_support import alive, port_refuses

psycopg = pytest.importorskip("psycopg")

from secretclient.errors import InvalidParameter  # noqa: E402
from secretclient.testing import (  # noqa: E402
    PostgreSQL,
    PostgreSQLError,
    PostgreSQLNotInstalled,
    make_certificates,
)
from secretclient.testing.postgresql import find_postgres  # noqa: E402

needs_postgres = pytest.mark.skipif(find_postgres() is None, reason="PostgreSQL is not installed")


def test_real_sql_through_an_app_role(postgresql: PostgreSQL) -> None:
    db = postgresql.create_database("app", owner=None)
    postgresql.create_user("fixture_app", "app-pw", grants=(f"ALL ON DATABASE {postgresql.quote_ident(db)}",))
    postgresql.execute("GRANT CREATE ON SCHEMA public TO fixture_app", dbname=db)
    with postgresql.connect("fixture_app", "app-pw", db) as conn:
        conn.execute("CREATE TABLE kv (k text PRIMARY KEY, v int)")
        conn.cursor().executemany("INSERT INTO kv VALUES (%s, %s)", [("a", 1), ("b", 2), ("c", 39)])
        conn.commit()
        total, user = conn.execute("SELECT SUM(v), current_user FROM kv").fetchone()
    assert (int(total), user) == (42, "fixture_app")
    # The app role cannot read what it was not granted.
    with postgresql.connect("fixture_app", "app-pw", db) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT rolpassword FROM pg_authid")


def test_admin_over_the_socket_and_over_tcp_with_its_password(postgresql: PostgreSQL) -> None:
    assert postgresql.host == "127.0.0.1" and postgresql.port > 0
    assert postgresql.version.startswith(("15", "16", "17", "14"))
    with postgresql.admin() as conn:
        user, addr = conn.execute("SELECT current_user, inet_client_addr()").fetchone()
        assert conn.autocommit
    assert (user, addr) == ("postgres", None)  # a socket has no client address
    with postgresql.connect() as conn:
        row = conn.execute("SELECT current_user, host(inet_client_addr()), current_setting('port')").fetchone()
    assert row == ("postgres", "127.0.0.1", str(postgresql.port))
    assert postgresql.datadir.is_dir()
    assert postgresql.execute("SHOW fsync") == [("off",)]
    assert postgresql.execute("SHOW log_connections") == [("on",)]


def test_tcp_logins_use_scram(postgresql: PostgreSQL) -> None:
    postgresql.create_user("fixture_scram", "scram-pw")
    verifier = postgresql.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'fixture_scram'")[0][0]
    assert verifier.startswith("SCRAM-SHA-256$")
    rules = postgresql.execute("SELECT type, auth_method FROM pg_hba_file_rules WHERE type = 'host'")
    assert rules == [("host", "scram-sha-256")]


def test_hostile_role_names_and_passwords_are_sent_safely(postgresql: PostgreSQL) -> None:
    name = "o'neil \"x\" %_ y"
    password = "p'a\"s`s%w\\o;rd -- x $$"
    postgresql.create_user(name, password)
    with postgresql.connect(name, password) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == name
    postgresql.create_user(name, "replaced")  # create_user replaces an existing role
    with pytest.raises(psycopg.OperationalError):
        postgresql.connect(name, password)
    postgresql.drop_user(name)
    assert postgresql.execute("SELECT COUNT(*) FROM pg_roles WHERE rolname = %s", (name,)) == [(0,)]


def test_attributes_and_role_memberships(postgresql: PostgreSQL) -> None:
    postgresql.create_user("fixture_attr", "pw", grants=("pg_read_all_data",), attributes="CONNECTION LIMIT 3")
    rows = postgresql.execute(
        "SELECT r.rolconnlimit, pg_has_role('fixture_attr', 'pg_read_all_data', 'MEMBER') "
        "FROM pg_roles r WHERE r.rolname = 'fixture_attr'"
    )
    assert rows == [(3, True)]
    postgresql.drop_user("fixture_attr")


@pytest.mark.parametrize("name", ["", "u" * 64, "nul\x00"])
def test_bad_role_names_are_refused(postgresql: PostgreSQL, name: str) -> None:
    before = postgresql.execute("SELECT rolname FROM pg_roles ORDER BY 1")
    with pytest.raises(InvalidParameter, match="role name"):
        postgresql.create_user(name, "pw")
    assert postgresql.execute("SELECT rolname FROM pg_roles ORDER BY 1") == before


def test_tls_required_role_is_refused_without_tls_and_accepted_with_verified_tls(
    postgresql_tls: PostgreSQL, tmp_path: Path
) -> None:
    pg = postgresql_tls
    assert pg.ca_file is not None and pg.ca_file.exists()
    pg.create_user("fixture_tls", "tls-pw", require_ssl=True)
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects"):
        pg.connect("fixture_tls", "tls-pw", sslmode="disable")
    assert pg.failed_logins("fixture_tls") == 1
    with pg.connect("fixture_tls", "tls-pw", sslmode="verify-full", sslrootcert=str(pg.ca_file)) as conn:
        ssl, version = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert ssl and version.startswith("TLSv1.")
    # A CA that did not sign the server's certificate is rejected by the client.
    other = make_certificates(tmp_path / "other")
    with pytest.raises(psycopg.OperationalError, match="certificate"):
        pg.connect("fixture_tls", "tls-pw", sslmode="verify-full", sslrootcert=str(other.ca_file))


def test_plain_server_offers_no_tls(postgresql: PostgreSQL) -> None:
    assert postgresql.ca_file is None
    assert postgresql.execute("SHOW ssl") == [("off",)]
    with pytest.raises(psycopg.OperationalError, match="SSL"):
        postgresql.connect(sslmode="require")


def _backend_pids(pg: PostgreSQL) -> list[int]:
    return [row[0] for row in pg.execute("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'")]


@needs_postgres
def test_own_instance_with_options_is_cleaned_up_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError, match="test failed"):
        with PostgreSQL(options={"max_connections": 7}) as pg:
            assert pg.execute("SHOW max_connections") == [("7",)]
            directory, port = pg.directory, pg.port
            assert directory is not None
            pid = int((pg.datadir / "postmaster.pid").read_text().split()[0])
            helpers = _backend_pids(pg)
            assert helpers  # checkpointer, walwriter…: they must go too
            raise RuntimeError("test failed")
    assert not directory.exists()
    assert port_refuses(port)
    assert not alive(pid) and not any(alive(p) for p in helpers) and not pg.running
    pg.stop()  # idempotent


ORPHAN = """
import sys, time
from secretclient.testing import PostgreSQL
pg = PostgreSQL().start()
pids = [r[0] for r in pg.execute("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'")]
print(pg.directory, (pg.datadir / "postmaster.pid").read_text().split()[0], *pids, flush=True)
time.sleep(120)
"""


@needs_postgres
def test_server_and_directory_go_when_the_test_process_is_killed() -> None:
    # SIGKILL skips atexit and every finally: only the watchdog beside the server can clean up.
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    try:
        directory, *pid_texts = proc.stdout.readline().split()
        pids = [int(p) for p in pid_texts]
        assert Path(directory).is_dir() and all(alive(p) for p in pids)
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 10
    while (any(alive(p) for p in pids) or Path(directory).exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    assert not Path(directory).exists()


@needs_postgres
def test_start_failure_reports_the_server_log_and_cleans_up() -> None:
    # The postgres OS user must reach its directory: pytest's tmp_path is private to root.
    with tempfile.TemporaryDirectory() as base:
        Path(base).chmod(0o711)
        pg = PostgreSQL(options={"no_such_setting": 1}, base_dir=base)
        with pytest.raises(PostgreSQLError, match="no_such_setting") as err:
            pg.start()
        assert "server log" in str(err.value)
        assert list(Path(base).iterdir()) == []
        assert not pg.running


@needs_postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another OS user")
def test_a_base_dir_the_server_user_cannot_enter_is_a_clear_error(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    pg = PostgreSQL(base_dir=private)
    with pytest.raises(PostgreSQLError, match="cannot enter .*chmod o\\+x"):
        pg.start()
    assert list(private.iterdir()) == []


def test_missing_binaries_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECRETCLIENT_POSTGRES_BIN", str(tmp_path / "no-bin"))
    pg = PostgreSQL(base_dir=tmp_path)
    with pytest.raises(PostgreSQLNotInstalled, match="postgresql"):
        pg.start()
    assert list(tmp_path.iterdir()) == []


def test_connect_before_start_is_a_clear_error() -> None:
    with pytest.raises(PostgreSQLError, match="start"):
        PostgreSQL().connect()
    with pytest.raises(PostgreSQLError, match="start"):
        PostgreSQL().admin()


@needs_postgres
def test_command_line_prints_how_to_connect_and_cleans_up_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretclient.testing.postgresql", "--database", "demo"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("Ctrl-C"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line.strip())
        url = next(line.split(": ", 1)[1] for line in lines if line.startswith("administrator over TCP"))
        directory = next(line for line in lines if "data in" in line).rsplit("data in ", 1)[1].rstrip(")")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0].startswith("demo_")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert "PostgreSQL stopped" in out
    assert not Path(directory).exists()
    assert "RuntimeWarning" not in err
