"""Rotation-proof MySQL/MariaDB connections: PyMySQL and SQLAlchemy (``[sqlalchemy]`` extra).

- :func:`connect` — a PyMySQL connection from a secret (:class:`RotatingConnection`);
- :func:`create_engine` / :func:`attach` — SQLAlchemy engines (imported on first use);
- :func:`create_async_engine` — a SQLAlchemy asyncio engine on aiomysql (``[async]`` extra,
  imported on first use);
- :class:`Connector` — the credential search, shared per secret; :class:`RetryPolicy` — its limits;
- :func:`classify` / :class:`ErrorKind` — what a connection error means;
- :data:`MYSQL` — the MySQL/MariaDB login layer (a :class:`DbFamily`), shared with ``rotation``;
  :data:`POSTGRES` — PostgreSQL's (psycopg 3, ``postgres`` extra; :mod:`secretclient.db.psycopg`);
- :mod:`secretclient.db.errors` — what a failed connect raises (PyMySQL ``OperationalError`` s).
"""

from __future__ import annotations

from typing import Any

from ._family import DbFamily
from ._mysql import MYSQL
from ._postgres import POSTGRES
from .classify import Classification, ErrorKind, classify
from .connector import Connector, ConnectorStats
from .errors import (
    AccountUnavailable,
    Attempt,
    ClientMisconfigured,
    CredentialsRejected,
    DatabaseAccessDenied,
    DatabaseUnreachable,
    DbConnectError,
    SecretUnavailable,
    ServerBusy,
)
from .policy import RetryPolicy
from .pymysql import RotatingConnection, connect

__all__ = [
    "MYSQL",
    "POSTGRES",
    "AccountUnavailable",
    "Attempt",
    "Classification",
    "ClientMisconfigured",
    "Connector",
    "ConnectorStats",
    "CredentialsRejected",
    "DatabaseAccessDenied",
    "DatabaseUnreachable",
    "DbConnectError",
    "DbFamily",
    "ErrorKind",
    "RetryPolicy",
    "RotatingConnection",
    "SecretUnavailable",
    "ServerBusy",
    "attach",
    "classify",
    "connect",
    "create_async_engine",
    "create_engine",
]


def __getattr__(name: str) -> Any:  # SQLAlchemy and aiomysql are optional: import them on first use
    if name in ("create_engine", "attach"):
        from . import sqlalchemy as _sqlalchemy

        return getattr(_sqlalchemy, name)
    if name == "create_async_engine":
        from . import asyncio as _asyncio

        return _asyncio.create_async_engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
