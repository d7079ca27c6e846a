"""What the throwaway MariaDB and PostgreSQL do alike: fresh database names, refused prefixes,
no password in the repr, failed logins counted per user. Family-specific behaviour is tested in
test_mariadb_fixture.py and test_postgresql_fixture.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from secretclient.errors import InvalidParameter


def _mariadb_wrong_password(connect: Callable[[], Any]) -> None:
    import pymysql

    with pytest.raises(pymysql.err.OperationalError) as err:
        connect()
    assert err.value.args[0] == 1045


def _postgresql_wrong_password(connect: Callable[[], Any]) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect()


def _login_error(module: str) -> type[Exception]:
    if module == "pymysql":
        import pymysql

        return pymysql.err.OperationalError
    import psycopg

    return psycopg.OperationalError  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Family:
    fixture: str
    databases: str  # a query listing the databases
    counted_user: str  # a user name the server's log does not escape
    wrong_password: Callable[[Callable[[], Any]], None]
    driver: str


FAMILIES = [
    Family("mariadb", "SHOW DATABASES", "fixture_counted, o'x", _mariadb_wrong_password, "pymysql"),
    Family("postgresql", "SELECT datname FROM pg_database ORDER BY 1", 'fixture_counted, o"x',
           _postgresql_wrong_password, "psycopg"),
]


@pytest.fixture(params=FAMILIES, ids=lambda f: f.fixture)
def family(request: pytest.FixtureRequest) -> Family:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server(family: Family, request: pytest.FixtureRequest) -> Any:
    """The session's throwaway server of ``family`` (skipped when it is not installed)."""
    return request.getfixturevalue(family.fixture)


def test_databases_get_fresh_names(server: Any, family: Family) -> None:
    a, b = server.create_database("fresh"), server.create_database("fresh")
    assert a != b and a.startswith("fresh_")
    names = {row[0] for row in server.execute(family.databases)}
    assert {a, b} <= names


@pytest.mark.parametrize("prefix", ["", "a-b", "x; DROP", "p" * 41])
def test_bad_database_prefix_is_refused(server: Any, family: Family, prefix: str) -> None:
    before = server.execute(family.databases)
    with pytest.raises(InvalidParameter, match="prefix"):
        server.create_database(prefix)
    assert server.execute(family.databases) == before


def test_repr_does_not_show_the_admin_password(server: Any) -> None:
    assert server.admin_password not in repr(server)
    assert str(server.port) in repr(server)


def test_failed_logins_are_counted_per_user(server: Any, family: Family) -> None:
    user = family.counted_user
    server.create_user(user, "right")
    for attempt in range(3):
        family.wrong_password(lambda: server.connect(user, f"wrong-{attempt}"))  # noqa: B023 - called at once
    with pytest.raises(_login_error(family.driver)):
        server.connect("fixture_nobody", "x")
    server.connect(user, "right").close()
    assert server.failed_logins(user) == 3
    assert server.failed_logins(user, host="127.0.0.1") == 3
    assert server.failed_logins(user, host="10.0.0.1") == 0
    assert server.failed_logins("fixture_counted") == 0
    assert server.failed_logins("fixture_nobody") == 1
    assert server.failed_logins("fixture_never_seen") == 0
