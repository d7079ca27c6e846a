"""Rotation-aware SQLAlchemy engines (needs the ``sqlalchemy`` extra).

    engine = secretclient.db.sqlalchemy.create_engine(
        "mysql+pymysql:///", secret="prod/app-db", client=client, pool_pre_ping=True)

Integration is the documented ``do_connect`` event: the URL's query and ``connect_args`` (TLS
options included) reach PyMySQL unchanged, only user and password (and host, port, database
when the URL leaves them out) come from the secret. Each pooled connection carries the VersionId
it logged in with in ``connection_record.info[VERSION_KEY]``; after the secret's CURRENT stage
moves on, connections of the replaced version are closed lazily at their next checkout (a
``DisconnectionError`` in the ``checkout`` event, which makes the pool open a new one; one just
opened for that checkout serves it and is closed at checkin) unless
``rollover=False``: MySQL and MariaDB keep open sessions valid after a password change.
Connect errors are PyMySQL ``OperationalError`` subclasses, so SQLAlchemy wraps them in its own
``sqlalchemy.exc.OperationalError`` (``.orig`` is ours) like any driver error.
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import TYPE_CHECKING, Any

try:
    import sqlalchemy
    from sqlalchemy import event, exc
    from sqlalchemy.engine import URL, Engine, make_url
    from sqlalchemy.pool import NullPool
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secretclient.db.sqlalchemy needs SQLAlchemy: pip install 'secretclient-rotation[sqlalchemy]'"
    ) from _missing

from ..errors import InvalidParameter
from ._family import DbFamily
from ._mysql import MYSQL
from ._postgres import POSTGRES
from .connector import Connector
from .policy import RetryPolicy

if TYPE_CHECKING:
    from ..client import SecretClient

__all__ = ["VERSION_KEY", "attach", "create_engine"]

_BACKENDS = {"pymysql": "mysql", "aiomysql": "mysql", "psycopg": "postgresql"}
_FAMILIES: dict[str, DbFamily] = {"pymysql": MYSQL, "psycopg": POSTGRES}

#: Key of ``connection_record.info`` holding the credential VersionId of a pooled connection.
VERSION_KEY = "secretclient.version"
_SWEPT = "secretclient.swept"  # closed by the sweep while idle
_FRESH = "secretclient.fresh"  # a new connection, not yet checked out


def create_engine(
    url: str | sqlalchemy.engine.URL,
    *,
    secret: str | None = None,
    client: SecretClient | None = None,
    connector: Connector | None = None,
    policy: RetryPolicy | None = None,
    rollover: bool = True,
    **kwargs: Any,
) -> Engine:
    """``sqlalchemy.create_engine(url, **kwargs)`` logging in with the credentials of ``secret``.

    ``url`` must not contain a password (``mysql+pymysql:///`` takes everything from the secret;
    a user name in it is ignored, since alternating-users rotation changes it). Give ``secret``
    and ``client``, or a shared ``connector`` (whose :meth:`~Connector.stats` you can read).
    """
    parsed = _check_arguments(url, kwargs, ("pymysql", "psycopg"), "secretclient.db.sqlalchemy")
    engine = sqlalchemy.create_engine(parsed, **kwargs)
    attach(engine, secret, client, connector=connector, policy=policy, rollover=rollover)
    return engine


def attach(
    engine: Engine,
    secret: str | None = None,
    client: SecretClient | None = None,
    *,
    connector: Connector | None = None,
    policy: RetryPolicy | None = None,
    rollover: bool = True,
) -> Connector:
    """Make an existing PyMySQL engine log in with the credentials of ``secret``.

    Returns the :class:`Connector` (shared by every connection of the engine). Connections
    already in the pool are tagged with no version and are left alone.
    """
    if not isinstance(engine, Engine):
        raise InvalidParameter("attach() takes a sqlalchemy.engine.Engine")
    family = _FAMILIES.get(engine.dialect.driver)
    if family is None:
        raise InvalidParameter(f"attach() supports the pymysql and psycopg drivers, not {engine.dialect.driver!r}")
    connector = _resolve_connector("attach()", secret, client, connector, policy, family)
    connector.watch()

    dbapi_connect = engine.dialect.loaded_dbapi.connect

    @event.listens_for(engine, "do_connect")
    def _do_connect(dialect: Any, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        cparams.pop("user", None)  # SQLAlchemy hands us a fresh copy per connect
        conn, creds = connector.connect(cparams, functools.partial(dbapi_connect, *cargs) if cargs else dbapi_connect)
        if conn_rec is not None:
            conn_rec.info[VERSION_KEY] = creds.version_id
        return conn

    if rollover:
        _roll_over(engine, connector)
    return connector


# Shared with secretclient.db.asyncio, whose engines behave the same way.


def _check_arguments(url: str | sqlalchemy.engine.URL, kwargs: dict[str, Any], drivers: tuple[str, ...],
                     module: str) -> URL:
    """The parsed ``url`` of a ``mysql+<driver>://`` (or ``postgresql+psycopg://``) engine;
    refuses a password in the URL or in ``connect_args`` (it comes from the secret) and a
    creator of the caller's (it would bypass the secret)."""
    parsed = make_url(url)
    if parsed.password is not None:
        raise InvalidParameter("the URL must not contain a password: it comes from the secret")
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if driver not in drivers or _BACKENDS.get(driver) != (backend if backend != "mariadb" else "mysql"):
        accepted = ", ".join(f"{_BACKENDS[d]}+{d}://" for d in drivers)
        raise InvalidParameter(f"{module} supports {accepted} URLs (mariadb+ too), not {parsed.drivername}://")
    if "creator" in kwargs or "async_creator" in kwargs:
        raise InvalidParameter("the engine logs in through the secret; do not pass creator= or async_creator=")
    connect_args = kwargs.get("connect_args") or {}
    if "password" in connect_args or "passwd" in connect_args:
        raise InvalidParameter("connect_args must not contain a password: it comes from the secret")
    return parsed


def _resolve_connector(
    caller: str, secret: str | None, client: SecretClient | None, connector: Connector | None,
    policy: RetryPolicy | None, family: DbFamily = MYSQL,
) -> Connector:
    """The given ``connector``, or a new one for ``secret`` and ``client``."""
    if connector is None:
        if secret is None or client is None:
            raise InvalidParameter(f"{caller} needs secret= and client=, or connector=")
        return Connector(secret, client, policy=policy, family=family)
    if connector.family.name != family.name:
        raise InvalidParameter(f"connector logs in to {connector.family.name}, not {family.name}")
    if (secret is not None and secret != connector.secret) or policy is not None:
        raise InvalidParameter("with connector=, leave secret= (or give the same) and policy= out")
    return connector


def _roll_over(engine: Engine, connector: Connector, *, sweep: bool = True) -> None:
    """Close pooled connections of a replaced credential version: idle ones as soon as the
    connector learns of the new version (``sweep``), the ones in use when they are checked in,
    and any left at their next checkout."""
    if isinstance(engine.pool, NullPool):
        return  # it never hands out a connection twice: nothing to roll over, no listener to pay for
    lock = threading.RLock()  # re-entered: invalidating a record fires our "close" listener
    idle: dict[int, Any] = {}  # id(connection record) -> record, for records in the pool

    @event.listens_for(engine, "connect")
    def _connected(dbapi_conn: Any, conn_rec: Any) -> None:
        conn_rec.info[_FRESH] = True

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, conn_rec: Any, conn_proxy: Any) -> None:
        # The hot path of every checkout: no store call, a short lock.
        info = conn_rec.info
        with lock:
            idle.pop(id(conn_rec), None)
            swept = info.pop(_SWEPT, False)
        if info.pop(_FRESH, False):
            # Logged in for this very checkout: it serves it even if its version was replaced
            # while it logged in (two rotations in quick succession), and is closed at checkin.
            # Dropping it would make the pool log in again, and after two drops give up.
            return
        version = info.get(VERSION_KEY)
        if swept or connector.is_retired(version):
            if not swept:
                connector.note_rollover()
            # The pool closes this connection and checks out a new one (up to 3 times).
            raise exc.DisconnectionError(
                f"secret {connector.secret!r}: credential version {version!r} was replaced"
            )

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn: Any, conn_rec: Any) -> None:
        if dbapi_conn is None:
            return  # already invalidated
        if connector.is_retired(conn_rec.info.get(VERSION_KEY)):
            connector.note_rollover()
            conn_rec.invalidate()  # closed now; the pool opens a new one when it needs it
            return
        with lock:
            idle[id(conn_rec)] = conn_rec

    @event.listens_for(engine, "close")
    def _closed(dbapi_conn: Any, conn_rec: Any) -> None:
        with lock:
            idle.pop(id(conn_rec), None)

    if not sweep:
        return

    def _sweep() -> None:
        # Under the lock: a checkout that took a record from the pool but has not reached its
        # checkout event yet finds the mark and lets the pool open a new connection.
        with lock:
            for key, rec in list(idle.items()):
                if connector.is_retired(rec.info.get(VERSION_KEY)):
                    del idle[key]
                    rec.info[_SWEPT] = True
                    connector.note_rollover()
                    rec.invalidate()

    remove = connector.on_retire(_sweep)
    weakref.finalize(engine, remove)
