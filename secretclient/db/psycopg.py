"""Rotation-aware PostgreSQL connections on psycopg 3 (needs the ``postgres`` extra).

    conn = secretclient.db.psycopg.connect("prod/app-pg", client=client, autocommit=True)

The same credential search as the MySQL connections (refresh, then CURRENT, PENDING,
PREVIOUS; never resending a rejected password; the per-process failed-login limit), through the
PostgreSQL family (:data:`secretclient.db.POSTGRES`). The result is a plain ``psycopg.Connection``:
psycopg never reconnects by itself, so there is no captured password to resend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameter
from ._postgres import POSTGRES
from .connector import Connector
from .policy import RetryPolicy

if TYPE_CHECKING:
    from ..client import SecretClient

__all__ = ["connect"]


def connect(
    secret_name: str,
    *,
    client: SecretClient | None = None,
    connector: Connector | None = None,
    policy: RetryPolicy | None = None,
    **psycopg_kwargs: Any,
) -> Any:
    """A psycopg connection logged in with the credentials of ``secret_name``.

    The secret's host, port, database and ``SSL`` are used unless ``psycopg_kwargs`` names
    ``host``, ``port``, ``dbname`` or ``sslmode``; every other keyword argument goes to
    ``psycopg.connect`` as is. ``SSL: true`` means ``sslmode=verify-full`` (``sslrootcert=`` for a
    private CA; the system CAs otherwise). Raises a
    :class:`~secretclient.db.errors.DbConnectError` subclass when no login succeeds.
    """
    if connector is None:
        if client is None:
            raise InvalidParameter("connect() needs client= (a SecretClient) or connector=")
        connector = Connector(secret_name, client, policy=policy, family=POSTGRES)
    elif connector.secret != secret_name or connector.family is not POSTGRES:
        raise InvalidParameter(f"connector is not a PostgreSQL connector for secret {secret_name!r}")
    elif policy is not None:
        raise InvalidParameter("give policy= to the Connector, not with connector=")
    conn, _ = connector.connect(psycopg_kwargs)
    return conn
