"""Rotation on a real PostgreSQL: SCRAM verifiers, single user (self and master), alternating
users acting as one owner role, the advisory lock, plans, the choice by the secret's engine."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from postgresql_rotation_support import PgApp, drop_app, make_app, make_strategy  # noqa: E402

from rotation import InvalidRotationSetup, LockLost, LoginFailed, RotationInProgress, Rotator  # noqa: E402
from rotation._pg_sql import scram_sha256_verifier  # noqa: E402
from rotation._factories import make_strategy as configured_strategy  # noqa: E402
from rotation.strategies import AlternatingUsersStrategy  # noqa: E402
from rotation.strategies.by_engine import ByEngineStrategy, engine_of  # noqa: E402
from rotation.strategies.postgres import PostgresAlternatingUsersStrategy, PostgresSingleUserStrategy  # noqa: E402
from secretclient.model import DbCredentials  # noqa: E402
from secretclient.stores.embedded import EmbeddedStore  # noqa: E402
from secretclient.testing import PostgreSQL  # noqa: E402


@pytest.fixture
def store() -> Iterator[EmbeddedStore]:
    s = EmbeddedStore(":memory:")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def apps(postgresql: PostgreSQL) -> Iterator[list[PgApp]]:
    made: list[PgApp] = []
    yield made
    for app in made:
        drop_app(postgresql, app)


def _new_app(pg: PostgreSQL, store: Any, kind: str, apps: list[PgApp], **kw: Any) -> PgApp:
    app = make_app(pg, store, kind, **kw)
    apps.append(app)
    return app


def _verifier(pg: PostgreSQL, role: str) -> str | None:
    rows = pg.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
    return rows[0][0] if rows else None


# -- SCRAM verifiers ------------------------------------------------------------------------


def test_scram_verifier_format_follows_rfc_5802() -> None:
    salt = b"0123456789abcdef"
    v = scram_sha256_verifier("pencil", salt=salt, iterations=4096)
    head, keys = v.rsplit("$", 1)
    assert head == "SCRAM-SHA-256$4096:" + base64.b64encode(salt).decode()
    stored, server = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    assert stored == hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    assert server == hmac.new(salted, b"Server Key", "sha256").digest()
    assert scram_sha256_verifier("pencil") != scram_sha256_verifier("pencil")  # a fresh salt each time


@pytest.mark.parametrize("password", ["", "pässword", "tab\there"])
def test_scram_verifier_refuses_passwords_it_cannot_prepare(password: str) -> None:
    with pytest.raises(InvalidRotationSetup, match="printable ASCII") as err:
        scram_sha256_verifier(password)
    assert password not in str(err.value) or not password


def test_server_stores_our_verifier_as_is_and_accepts_the_password(postgresql: PostgreSQL) -> None:
    postgresql.create_user("pgrot_scram", "initial")
    password = "p'a\"s%s w\\o;rd-- $$"
    verifier = scram_sha256_verifier(password)
    postgresql.execute(psycopg.sql.SQL("ALTER ROLE pgrot_scram PASSWORD {}").format(psycopg.sql.Literal(verifier)))
    assert _verifier(postgresql, "pgrot_scram") == verifier  # not hashed again: the server got no plaintext
    with postgresql.connect("pgrot_scram", password) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "pgrot_scram"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        postgresql.connect("pgrot_scram", "initial")
    postgresql.drop_user("pgrot_scram")


def test_the_plaintext_never_reaches_the_server_log(store: EmbeddedStore) -> None:
    # A server of its own that logs every statement: the rotation's passwords must not be there.
    with PostgreSQL(options={"log_statement": "all"}) as pg:
        app = make_app(pg, store, "alternating")
        rotator = Rotator(store, strategy=make_strategy("alternating"))
        passwords = []
        for _ in range(2):
            rotator.rotate(app.name)
            passwords.append(app.current().account_password)
        Rotator(store, strategy=make_strategy("single-master")).rotate(app.name)
        passwords.append(app.current().account_password)
        log = pg.server_log.read_text()
    assert 'ALTER ROLE "' in log and "SCRAM-SHA-256$4096:" in log
    assert all(pw not in log for pw in passwords)


# -- single user ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["self", "single-master"])
def test_single_user_rotation_changes_the_password_in_place(postgresql, store, apps, kind) -> None:
    app = _new_app(postgresql, store, kind, apps)
    before = app.current()
    result = Rotator(store, strategy=make_strategy(kind)).rotate(app.name)
    after = app.current()
    assert result.rotated and after.version_id == result.version_id
    assert after.account_name == before.account_name == app.account
    assert after.account_password != before.account_password
    assert app.can_login(after) and not app.can_login(before)
    assert _verifier(postgresql, app.account).startswith("SCRAM-SHA-256$4096:")


def test_self_rotation_of_a_login_that_acts_as_another_role(postgresql, store, apps) -> None:
    # Its sessions start as the owner role, yet it changes its own password.
    app = _new_app(postgresql, store, "self", apps)
    owner = app.account + "_own"
    postgresql.execute(f"CREATE ROLE {owner} NOLOGIN")
    postgresql.execute(f"GRANT {owner} TO {app.account}")
    postgresql.execute(f"ALTER ROLE {app.account} SET role = '{owner}'")
    try:
        Rotator(store, strategy=make_strategy("self")).rotate(app.name)
        with app.login(app.current()) as conn:
            assert conn.execute("SELECT current_user, session_user").fetchone() == (owner, app.account)
    finally:
        postgresql.execute(f"ALTER ROLE {app.account} RESET role")
        postgresql.execute(f"DROP ROLE {owner}")


def test_single_user_with_a_missing_role_is_a_clear_error(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "single-master", apps)
    postgresql.drop_user(app.account, dbname=app.database)
    with pytest.raises(InvalidRotationSetup, match="does not exist"):
        Rotator(store, strategy=make_strategy("single-master")).rotate(app.name)


# -- alternating users ------------------------------------------------------------------------


def _role(pg: PostgreSQL, name: str) -> tuple[Any, ...]:
    return pg.execute(
        "SELECT rolcanlogin, rolinherit, rolcreatedb, rolconnlimit, rolvaliduntil FROM pg_roles WHERE rolname = %s",
        (name,),
    )[0]


def _memberships(pg: PostgreSQL, name: str) -> set[str]:
    rows = pg.execute(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s", (name,))
    return {r[0] for r in rows}


def test_alternating_rotation_makes_a_twin_that_acts_as_the_base_role(postgresql, store, apps) -> None:
    valid = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    app = _new_app(postgresql, store, "alternating", apps,
                   attributes=f"CREATEDB CONNECTION LIMIT 17 VALID UNTIL '{valid.isoformat()}'")
    twin = app.account + "_rt"
    postgresql.execute("GRANT pg_read_all_settings TO " + app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    base_verifier = _verifier(postgresql, app.account)

    rotator.rotate(app.name)
    current = app.current()
    assert current.account_name == twin
    assert _verifier(postgresql, app.account) == base_verifier  # ACSCurrent's role was not touched
    assert _role(postgresql, twin) == _role(postgresql, app.account) == (True, True, True, 17, valid)
    assert _memberships(postgresql, twin) == {app.account}
    with app.login(current) as conn:
        assert conn.execute("SELECT current_user, session_user").fetchone() == (app.account, twin)
        # Memberships of the base role reach the twin through it.
        assert conn.execute("SELECT pg_has_role('pg_read_all_settings', 'USAGE')").fetchone() == (True,)

    rotator.rotate(app.name)
    assert app.current().account_name == app.account
    assert app.can_login(app.current())
    # Drift on the idle twin is undone by difference on its next turn.
    postgresql.execute(f"ALTER ROLE {twin} CONNECTION LIMIT 3 NOCREATEDB")
    postgresql.execute(f"GRANT pg_monitor TO {twin}")
    rotator.rotate(app.name)
    assert app.current().account_name == twin
    assert _role(postgresql, twin) == (True, True, True, 17, valid)
    assert _memberships(postgresql, twin) == {app.account}


def test_an_expiry_on_the_idle_twin_is_removed_again(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "alternating", apps, attributes="VALID UNTIL 'infinity'")
    twin = app.account + "_rt"
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    rotator.rotate(app.name)
    rotator.rotate(app.name)
    postgresql.execute(f"ALTER ROLE {twin} VALID UNTIL '2030-01-01 00:00:00+00'")
    rotator.rotate(app.name)
    assert app.current().account_name == twin
    assert postgresql.execute(f"SELECT rolvaliduntil::text FROM pg_roles WHERE rolname = '{twin}'") == [("infinity",)]


def test_tables_created_by_either_login_stay_usable_by_the_other(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "alternating", apps)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    tables: list[str] = []
    for i in range(4):
        before = app.current()
        with app.login(before) as conn:
            conn.execute(f"CREATE TABLE made_{i} (v int)")
            conn.execute(f"INSERT INTO made_{i} VALUES ({i})")
            conn.execute(f"CREATE SEQUENCE seq_{i}")
            conn.commit()
        tables.append(f"made_{i}")
        rotator.rotate(app.name)
        after = app.current()
        assert after.account_name != before.account_name
        with app.login(after) as conn:
            for t in tables:
                conn.execute(f"INSERT INTO {t} VALUES (100)")
                assert conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] >= 2
            conn.execute(f"SELECT nextval('seq_{i}')")
            conn.execute(f"ALTER TABLE made_{i} ADD COLUMN w{i} int")  # an owner's right
            conn.commit()
    owners = postgresql.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE tablename LIKE 'made_%'",
                                dbname=app.database)
    assert owners == [(app.account,)]


def test_a_twin_that_does_not_act_as_the_base_role_is_refused_when_current(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "alternating", apps)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    rotator.rotate(app.name)  # the twin is ACSCurrent now
    twin = app.account + "_rt"
    postgresql.execute(f"ALTER ROLE {twin} RESET role")
    before = _verifier(postgresql, app.account)
    with pytest.raises(InvalidRotationSetup, match=f"ALTER ROLE {twin} SET role"):
        rotator.rotate(app.name)
    assert _verifier(postgresql, app.account) == before
    plan = rotator.plan(app.name)
    assert not plan.ok and any("does not act as" in c.detail for c in plan.checks)


def test_a_missing_base_role_is_not_created(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "alternating", apps)
    data = json.loads(store.get_secret(app.name).text)
    twin = app.account + "_rt"
    postgresql.create_user(twin, "twin-pw")
    store.put_secret(app.name, "v1", json.dumps({**data, "AccountName": twin, "AccountPassword": "twin-pw"}),
                     stages=["ACSCurrent"])
    postgresql.drop_user(app.account, dbname=app.database)
    postgresql.execute(f"GRANT ALL ON DATABASE {app.database} TO {twin}")
    with pytest.raises(InvalidRotationSetup):
        Rotator(store, strategy=make_strategy("alternating")).rotate(app.name)
    assert postgresql.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (app.account,)) == [(0,)]


def test_plan_shows_redacted_statements_and_changes_nothing(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "alternating", apps)
    plan = Rotator(store, strategy=make_strategy("alternating")).plan(app.name)
    text = "\n".join(plan.lines())
    assert plan.ok, text
    twin = app.account + "_rt"
    assert f'CREATE ROLE "{twin}" WITH LOGIN PASSWORD \'<redacted>\'' in plan.statements
    assert f'GRANT "{app.account}" TO "{twin}"' in plan.statements
    assert f"{twin}: +member of {app.account}" in plan.grant_changes
    assert postgresql.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (twin,)) == [(0,)]
    assert app.current().account_password not in text
    assert [v.version_id for v in store.list_versions(app.name)] == ["v0"]


# -- the lock -----------------------------------------------------------------------------------


def test_one_rotator_at_a_time_and_a_lost_lock_stops_the_step(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "alternating", apps)
    held, release = threading.Event(), threading.Event()

    def pause(point: str) -> None:
        if point == "set:start":
            held.set()
            release.wait(30)

    first = Rotator(store, strategy=make_strategy("alternating"), checkpoint=pause)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(first.rotate(app.name)))
    thread.start()
    try:
        assert held.wait(30)
        with pytest.raises(RotationInProgress):
            Rotator(store, strategy=make_strategy("alternating")).rotate(app.name)
        holders = postgresql.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        assert holders[0][0] >= 1
    finally:
        release.set()
        thread.join(30)
    assert outcome and outcome[0].rotated

    # The server frees the lock with its connection; the rotator notices at its next checkpoint.
    def kill_lock_connection(point: str) -> None:
        if point == "set:start":
            postgresql.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            )

    loser = Rotator(store, strategy=make_strategy("alternating"), checkpoint=kill_lock_connection)
    with pytest.raises(LockLost):
        loser.rotate(app.name)
    winner = Rotator(store, strategy=make_strategy("alternating"))
    assert winner.rotate(app.name).resumed
    assert app.can_login(app.current())


def test_lock_timeout_waits_for_the_holder(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "alternating", apps)
    lock = make_strategy("alternating").lock(store)
    handle = lock.acquire(app.name)
    assert handle is not None
    assert lock.acquire(app.name, timeout=0.2) is None
    timer = threading.Timer(0.3, handle.release)
    timer.start()
    second = lock.acquire(app.name, timeout=10)
    timer.join()
    assert second is not None
    second.check()
    second.release()
    with pytest.raises(LockLost):
        second.check()


# -- errors, secrets, choice by engine ---------------------------------------------------------


def test_wrong_master_password_is_login_failed_without_secrets(postgresql, store, apps) -> None:
    app = _new_app(postgresql, store, "alternating", apps)
    master = json.loads(store.get_secret(app.master_name).text)
    store.put_secret(app.master_name, "m2", json.dumps({**master, "AccountPassword": "wrong-master-pw"}),
                     stages=["ACSCurrent"])
    with pytest.raises(LoginFailed) as err:
        Rotator(store, strategy=make_strategy("alternating"), lock=make_strategy("self").lock(store)).rotate(app.name)
    text = str(err.value)
    assert "password authentication failed" in text and "MasterSecret account" in text
    assert "wrong-master-pw" not in text and app.current().account_password not in text


def test_engine_field_chooses_the_strategy(postgresql, store, apps) -> None:
    def creds(engine: Any) -> DbCredentials:
        extra = {} if engine is None else {"engine": engine}
        return DbCredentials.from_mapping({"AccountName": "u", "AccountPassword": "p", **extra})

    assert [engine_of(creds(e)) for e in (None, "mysql", "MariaDB", "postgres", "postgresql", "aurora-postgresql")] == \
        ["mysql", "mysql", "mysql", "postgres", "postgres", "postgres"]
    for bad in ("oracle", 5):
        with pytest.raises(InvalidRotationSetup, match="engine"):
            engine_of(creds(bad))
    chosen = configured_strategy("alternating", name_limit=80)
    assert isinstance(chosen, ByEngineStrategy)
    assert isinstance(chosen.for_credentials(creds(None)), AlternatingUsersStrategy)
    assert isinstance(chosen.for_credentials(creds("postgres")), PostgresAlternatingUsersStrategy)
    assert isinstance(configured_strategy("single", engine="postgres"), PostgresSingleUserStrategy)
    with pytest.raises(InvalidRotationSetup, match="engine must be"):
        configured_strategy("single", engine="oracle")
    # The configured strategy rotates a PostgreSQL secret end to end, with the advisory lock.
    app = _new_app(postgresql, store, "alternating", apps)
    result = Rotator(store, strategy=chosen).rotate(app.name)
    assert result.rotated and app.current().account_name == app.account + "_rt"
    assert app.can_login(app.current())


def test_grace_keeps_the_previous_login(postgresql, apps) -> None:
    from rotation import RotationTooSoon
    from rotation_support import ShiftedClock

    clock = ShiftedClock()
    with EmbeddedStore(":memory:", clock=clock) as store:
        app = _new_app(postgresql, store, "alternating", apps)
        strategy = PostgresAlternatingUsersStrategy(grace=timedelta(hours=1))
        Rotator(store, strategy=strategy, clock=clock).rotate(app.name)
        with pytest.raises(RotationTooSoon):
            Rotator(store, strategy=strategy, clock=clock).rotate(app.name)
        clock.offset = timedelta(hours=2)  # two hours pass, for the store and the rotator
        assert Rotator(store, strategy=strategy, clock=clock).rotate(app.name).rotated
        assert app.current().account_name == app.account


# -- the CLI and the Function Compute handler pick PostgreSQL from the secret ------------------


def test_cli_plan_rotate_status_on_a_postgresql_secret(postgresql, tmp_path, apps) -> None:
    from click.testing import CliRunner

    from rotation.cli import main as cli

    path = tmp_path / "secrets.db"
    with EmbeddedStore(path) as file_store:
        app = _new_app(postgresql, file_store, "alternating", apps)
    base = ["--store", f"embedded:{path}"]
    runner = CliRunner()
    res = runner.invoke(cli, [*base, "plan", app.name])
    assert res.exit_code == 0, res.output
    assert f'account: {app.account}_rt' in res.output and "PASSWORD '<redacted>'" in res.output
    res = runner.invoke(cli, [*base, "--json", "rotate", app.name])
    assert res.exit_code == 0, res.output
    rotated = json.loads(res.output)
    res = runner.invoke(cli, [*base, "status", app.name])
    assert res.exit_code == 0 and "ACSCurrent" in res.output
    with EmbeddedStore(path) as file_store:
        current = file_store.get_secret(app.name)
        assert current.version_id == rotated["version_id"]
        app.store = file_store
        assert app.can_login(current.db_credentials())
        assert current.db_credentials().account_password not in res.output


def test_fc_handler_runs_the_seed_steps_on_a_postgresql_secret(postgresql, tmp_path, apps, monkeypatch) -> None:
    from types import SimpleNamespace

    import rotation.fc

    path = tmp_path / "secrets.db"
    file_store = EmbeddedStore(path)
    try:
        app = _new_app(postgresql, file_store, "alternating", apps)
        monkeypatch.setenv("ROTATION_STORE", f"embedded:{path}")
        context = SimpleNamespace(requestId="req-1", credentials=None)
        payload = {"SecretName": app.name, "RegionId": "cn-hangzhou"}
        local = rotation.fc.handler({**payload, "Step": "new"}, context)
        for step in ("set", "test", "end"):
            assert rotation.fc.handler({**payload, "Step": step, **local}, context) == local
        current = file_store.get_secret(app.name)
        assert current.version_id == "req-1" and current.db_credentials().account_name == app.account + "_rt"
        assert app.can_login(current.db_credentials())
    finally:
        file_store.close()


def test_tls_secret_rotates_over_verified_tls_and_the_twin_stays_tls_only(postgresql_tls, store) -> None:
    from rotation.dbconn import ConnectOptions

    pg = postgresql_tls
    app = make_app(pg, store, "alternating")
    try:
        pg.execute(f"GRANT secretclient_require_ssl TO {app.account}")  # pg_hba.conf: this group TLS only
        for name in (app.name, app.master_name):
            data = json.loads(store.get_secret(name).text)
            store.put_secret(name, "tls", json.dumps({**data, "SSL": True}), stages=["ACSCurrent"])
        options = ConnectOptions(ca_file=str(pg.ca_file))
        rotator = Rotator(store, strategy=PostgresAlternatingUsersStrategy(connect_options=options, grace=timedelta(0)))
        rotator.rotate(app.name)
        twin = app.current()
        assert twin.account_name == app.account + "_rt"
        with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects"):
            app.login(twin)  # sslmode=disable: the twin inherits the TLS-only group through app
        with app.login(twin, sslmode="verify-full", sslrootcert=str(pg.ca_file)) as conn:
            assert conn.pgconn.ssl_in_use  # (pg_stat_ssl hides its row from a session acting as app)
        # Without the CA the strategy refuses to log in rather than fall back to plain text.
        blind = Rotator(store, strategy=PostgresAlternatingUsersStrategy(
            connect_options=ConnectOptions(ca_file=str(pg.directory / "tls" / "server.pem")), grace=timedelta(0)))
        with pytest.raises(Exception, match="certificate|SSL") as err:
            blind.rotate(app.name)
        assert twin.account_password not in str(err.value)
    finally:
        drop_app(pg, app)


def test_statements_never_show_the_password_or_its_verifier(postgresql) -> None:
    from rotation import DatabaseError
    from rotation._pg_conn import pg_query
    from rotation._pg_sql import set_password

    stmt = set_password("pgrot_nobody", "s3cret-Pw")
    verifier = stmt.args[1].value
    for shown in (repr(stmt), stmt.redacted(), repr(stmt.args)):
        assert "s3cret-Pw" not in shown and verifier not in shown and "<redacted>" in shown
    with postgresql.admin() as conn, pytest.raises(DatabaseError) as err:
        pg_query(conn, stmt)  # the role does not exist
    assert "withheld" in str(err.value) and verifier not in str(err.value) and err.value.code == "42704"


@pytest.mark.parametrize("kind", ["single-master", "alternating"])
def test_refuses_to_rotate_protected_roles_through_the_master(postgresql, store, apps, kind) -> None:
    from rotation import ProtectedAccount

    app = _new_app(postgresql, store, kind, apps)
    data = json.loads(store.get_secret(app.name).text)
    master = json.loads(store.get_secret(app.master_name).text)["AccountName"]
    before = postgresql.execute("SELECT rolname, rolpassword FROM pg_authid ORDER BY 1")
    for target in ("postgres", master):  # the server's administrator; the MasterSecret's own role
        store.put_secret(app.name, f"to-{target}", json.dumps({**data, "AccountName": target}), stages=["ACSCurrent"])
        with pytest.raises(ProtectedAccount):
            Rotator(store, strategy=make_strategy(kind)).rotate(app.name)
    # A role with administrative attributes is refused unless allowed explicitly.
    store.put_secret(app.name, "back", json.dumps(data), stages=["ACSCurrent"])
    postgresql.execute(f"ALTER ROLE {app.account} CREATEROLE")
    with pytest.raises(ProtectedAccount, match="CREATEROLE"):
        Rotator(store, strategy=make_strategy(kind)).rotate(app.name)
    assert postgresql.execute("SELECT rolname, rolpassword FROM pg_authid ORDER BY 1") == before
    allowed = make_strategy(kind, allow_accounts=[app.account, app.account + "_rt"])
    assert Rotator(store, strategy=allowed).rotate(app.name).rotated
    assert app.can_login(app.current())


@pytest.mark.parametrize("multi_user", [False, True])
def test_aws_lambda_handler_rotates_a_postgresql_secret(postgresql, moto_server, monkeypatch, multi_user) -> None:
    import uuid

    from botocore.exceptions import ClientError

    from rotation.aws_lambda import lambda_handler
    from secretclient.testing.aws import enable_rotation

    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ROTATION_STRATEGY", raising=False)
    monkeypatch.setenv("ROTATION_GRACE_SECONDS", "0")  # two rotations back to back: explicit, not the 1 h default
    user, password = f"awspg{uuid.uuid4().hex[:6]}", "initial-Pw-123456"
    db = postgresql.create_database("awspg")
    postgresql.create_user(user, password, grants=(f"ALL ON DATABASE {db}",))
    secret = {"engine": "postgres", "host": postgresql.host, "port": postgresql.port, "username": user,
              "password": password, "dbname": db}
    with moto_server.store() as aws:
        if multi_user:
            master = f"awsadm{uuid.uuid4().hex[:6]}"
            postgresql.create_user(master, "master-Pw-123456", attributes="CREATEROLE")
            info = aws.create_secret(f"db/{master}", json.dumps({**secret, "username": master,
                                                                  "password": "master-Pw-123456"}),
                                     version_id=str(uuid.uuid4()))
            secret["masterarn"] = info.arn
        name = f"db/{user}"
        aws.create_secret(name, json.dumps(secret), version_id=str(uuid.uuid4()))
        enable_rotation(moto_server.client(), name)
        for _ in range(2):
            token = str(uuid.uuid4())
            with pytest.raises(ClientError):  # moto cannot invoke the function: we play Secrets Manager
                moto_server.client().rotate_secret(SecretId=name, ClientRequestToken=token,
                                                   RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:r")
            for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
                lambda_handler({"SecretId": name, "ClientRequestToken": token, "Step": step}, None)
            current = aws.get_secret(name)
            assert current.version_id == token
            creds = current.db_credentials()
            with postgresql.connect(creds.account_name, creds.account_password, db) as conn:
                assert conn.execute("SELECT current_user").fetchone()[0] == user  # the clone acts as the user
        accounts = {aws.get_secret(name, version_id=v.version_id).db_credentials().account_name
                    for v in aws.list_versions(name, include_deprecated=True)}
    assert accounts == ({user, user + "_clone"} if multi_user else {user})
    postgresql.execute(f"DROP DATABASE {db} WITH (FORCE)")
    for role in (user + "_clone", user):
        postgresql.drop_user(role)
