"""Rotation-aware PyMySQL connections.

    conn = secretclient.db.connect("prod/app-db", client=client, autocommit=True)

The connection is a :class:`RotatingConnection`: a transparent proxy around
``pymysql.connections.Connection`` whose reconnects (``ping(reconnect=True)``, ``connect()``)
close the session and log in again with the secret's credentials as they are then, not the ones
captured at first connect. They never use PyMySQL's own ``ping(reconnect=True)`` (deprecated
in PyMySQL 1.2, and it would resend the captured password).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pymysql
import wrapt

from ..errors import InvalidParameter
from ._mysql import set_read_timeout
from .connector import Connector
from .policy import RetryPolicy

if TYPE_CHECKING:
    from ..client import SecretClient

__all__ = ["RotatingConnection", "connect"]


def connect(
    secret_name: str,
    *,
    client: SecretClient | None = None,
    connector: Connector | None = None,
    policy: RetryPolicy | None = None,
    **pymysql_kwargs: Any,
) -> RotatingConnection:
    """A PyMySQL connection logged in with the credentials of ``secret_name``.

    The secret's ``Endpoint``, ``Port``, ``DBName`` and ``SSL`` are used unless ``pymysql_kwargs``
    names ``host``/``unix_socket``, ``port`` or ``database``; every other keyword argument is
    passed to ``pymysql.connect`` as is. ``SSL: true`` means verified TLS (``ssl_ca=`` for a
    private CA; system CAs otherwise). Pass a shared ``connector`` (one per secret) to keep what
    it learned between calls and read its :meth:`~Connector.stats`; otherwise give ``client``.

    Raises a :class:`~secretclient.db.errors.DbConnectError` subclass (a PyMySQL
    ``OperationalError``) when no login succeeds within ``policy``.
    """
    if connector is None:
        if client is None:
            raise InvalidParameter("connect() needs client= (a SecretClient) or connector=")
        connector = Connector(secret_name, client, policy=policy)
    elif connector.secret != secret_name:
        raise InvalidParameter(
            f"connector is for secret {connector.secret!r}, not {secret_name!r}"
        )
    elif policy is not None:
        raise InvalidParameter("give policy= to the Connector, not with connector=")
    conn, creds = connector.connect(pymysql_kwargs)
    return RotatingConnection(conn, connector, pymysql_kwargs, creds.version_id)


class RotatingConnection(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A PyMySQL connection whose reconnects use the secret's current credentials.

    Everything else is the wrapped connection's own behaviour. ``credential_version`` is the
    VersionId of the credentials of the current session. The TLS settings stay those of the
    first connect.
    """

    def __init__(self, conn: Any, connector: Connector, kwargs: dict[str, Any], version_id: str | None) -> None:
        super().__init__(conn)
        self._self_connector = connector
        self._self_kwargs = dict(kwargs)
        self._self_version = version_id

    @property
    def credential_version(self) -> str | None:
        """VersionId of the credentials this session logged in with."""
        return self._self_version

    @property
    def connector(self) -> Connector:
        return self._self_connector

    def connect(self, sock: Any = None) -> None:
        """Reconnect in place: close the session if it is open, then log in with the secret's
        current credentials (cursors made before keep working)."""
        if sock is not None:
            raise InvalidParameter("RotatingConnection.connect() opens its own socket; sock is not supported")
        conn = self.__wrapped__
        if conn.open:
            conn.close()

        def login(**kw: Any) -> Any:  # reuses this connection object: no new one
            conn.user = kw["user"]
            conn.password = kw["password"]
            conn.host = kw.get("host", conn.host)
            conn.port = kw.get("port", conn.port)
            if conn.db is not None and "database" in kw:
                conn.db = kw["database"]
            conn.connect_timeout = kw.get("connect_timeout", conn.connect_timeout)
            set_read_timeout(conn, kw.get("read_timeout"))
            conn.connect()
            return conn

        _, creds = self._self_connector.connect(self._self_kwargs, login)
        self._self_version = creds.version_id

    def ping(self, reconnect: bool = False) -> None:
        """Check the server; with ``reconnect=True`` a dead connection logs in again with the
        secret's current credentials."""
        conn = self.__wrapped__
        if not reconnect:
            conn.ping(False)
            return
        if conn.open:
            try:
                conn.ping(False)
                return
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
                pass  # the session is dead: log in again below
        self.connect()
