"""pytest fixtures for secretclient, loaded automatically once the package is installed.

* ``mariadb`` - a session-wide throwaway :class:`~secretclient.testing.MariaDB`;
* ``mariadb_tls`` - the same with TLS on (``.ca_file`` for clients to verify it);
* ``postgresql`` - a session-wide throwaway :class:`~secretclient.testing.PostgreSQL`;
* ``postgresql_tls`` - the same with TLS on (``.ca_file`` for clients to verify it);
* ``mariadb_proxy`` - a fresh :class:`~secretclient.testing.FaultProxy` in front of ``mariadb``;
* ``kms_emulator`` - a fresh :class:`~secretclient.testing.KmsEmulator` over HTTP per test;
* ``ncp_emulator`` - a fresh :class:`~secretclient.testing.NcpEmulator` over HTTP per test;
* ``rds_emulator`` - a fresh :class:`~secretclient.testing.RdsEmulator` on ``mariadb`` per test;
* ``embedded_store`` - a fresh in-memory :class:`~secretclient.stores.embedded.EmbeddedStore`;
* ``moto_server`` - moto's Secrets Manager server on 127.0.0.1, emptied for each test
  (:class:`~secretclient.testing.aws.MotoServer`; needs ``moto[server]``).

Without ``mariadbd`` the MariaDB fixtures skip the test, saying why; set
``SECRETCLIENT_REQUIRE_MARIADB=1`` (as our CI does) to make that an error instead; likewise
without PostgreSQL's ``postgres`` and ``SECRETCLIENT_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing.kms_emulator import KmsEmulator
from secretclient.testing.mariadb import MariaDB, find_mariadbd
from secretclient.testing.ncp_emulator import NcpEmulator
from secretclient.testing.postgresql import PostgreSQL, find_postgres
from secretclient.testing.proxy import FaultProxy
from secretclient.testing.rds_emulator import RdsEmulator

_NO_MARIADB = "mariadbd is not installed (apt-get install mariadb-server)"
_NO_POSTGRES = "PostgreSQL (postgres, initdb) or psycopg is not installed (apt-get install postgresql)"


def _installed_or_skip(installed: bool, missing: str, require_env: str) -> None:
    """Skip the test when a server is not installed, or fail it when ``require_env`` is set."""
    if not installed:
        if os.environ.get(require_env):
            pytest.fail(f"{missing} and {require_env} is set", pytrace=False)
        pytest.skip(missing)


def _started_mariadb(tls: bool) -> Iterator[MariaDB]:
    _installed_or_skip(find_mariadbd() is not None, _NO_MARIADB, "SECRETCLIENT_REQUIRE_MARIADB")
    with MariaDB(tls=tls) as db:
        yield db


def _started_postgresql(tls: bool) -> Iterator[PostgreSQL]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        installed = False
    else:
        installed = find_postgres() is not None
    _installed_or_skip(installed, _NO_POSTGRES, "SECRETCLIENT_REQUIRE_POSTGRES")
    with PostgreSQL(tls=tls) as pg:
        yield pg


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """A throwaway MariaDB shared by the whole test session (create your own databases and users)."""
    yield from _started_mariadb(tls=False)


@pytest.fixture(scope="session")
def mariadb_tls() -> Iterator[MariaDB]:
    """A throwaway MariaDB with TLS; verify it with ``ssl_ca=mariadb_tls.ca_file``."""
    yield from _started_mariadb(tls=True)


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQL]:
    """A throwaway PostgreSQL shared by the whole test session (create your own databases and roles)."""
    yield from _started_postgresql(tls=False)


@pytest.fixture(scope="session")
def postgresql_tls() -> Iterator[PostgreSQL]:
    """A throwaway PostgreSQL with TLS; verify it with
    ``sslmode="verify-full", sslrootcert=str(postgresql_tls.ca_file)``."""
    yield from _started_postgresql(tls=True)


@pytest.fixture
def mariadb_proxy(mariadb: MariaDB) -> Iterator[FaultProxy]:
    """A FaultProxy to the session's MariaDB, passing traffic until the test says otherwise."""
    with FaultProxy(mariadb.host, mariadb.port) as proxy:
        yield proxy


@pytest.fixture
def kms_emulator() -> Iterator[KmsEmulator]:
    """A KMS emulator over HTTP on 127.0.0.1, empty, new for each test."""
    with KmsEmulator() as emulator:
        yield emulator


@pytest.fixture
def ncp_emulator() -> Iterator[NcpEmulator]:
    """An NCP Secret Manager emulator over HTTP on 127.0.0.1, empty, new for each test."""
    with NcpEmulator() as emulator:
        yield emulator


@pytest.fixture
def rds_emulator(mariadb: MariaDB) -> Iterator[RdsEmulator]:
    """An RDS account-API emulator over HTTP on 127.0.0.1, acting on the session's MariaDB
    (accounts made through it stay on that server: drop them or use unique names)."""
    with RdsEmulator(mariadb) as emulator:
        yield emulator


@pytest.fixture
def embedded_store() -> Iterator[EmbeddedStore]:
    """An empty in-memory EmbeddedStore, closed after the test."""
    store = EmbeddedStore(":memory:")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="session")
def _moto_server_session() -> Iterator[object]:
    pytest.importorskip("moto.server", reason="moto's server is not installed (pip install 'moto[server]')")
    from secretclient.testing.aws import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture
def moto_server(_moto_server_session: object) -> object:
    """moto's Secrets Manager server on 127.0.0.1 (one per session), with no secrets:
    ``moto_server.store()``, ``.client()``, ``.endpoint_url``, ``.env``."""
    _moto_server_session.reset()  # type: ignore[attr-defined]
    return _moto_server_session
