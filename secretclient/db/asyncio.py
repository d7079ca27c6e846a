"""Rotation-aware asyncio engines: SQLAlchemy's ``create_async_engine`` with aiomysql (needs the
``async`` extra).

    engine = secretclient.db.asyncio.create_async_engine(
        "mysql+aiomysql:///", secret="prod/app-db", client=client, pool_pre_ping=True)

It behaves as :func:`secretclient.db.sqlalchemy.create_engine` does, through SQLAlchemy's
documented ``async_creator``. The credential search is the connector's own
(:meth:`~secretclient.db.Connector.search`); only the login differs: an awaited aiomysql
connection. The cached CURRENT version is read in the event loop (a dictionary lookup); the
store reads of the search after a rejection (and the first read of a cold cache) run in a
worker thread (:func:`asyncio.to_thread`), so they never block the loop.

aiomysql is built on PyMySQL and raises PyMySQL's errors: the classifier and the errors of
:mod:`secretclient.db.errors` are the same. Differences from the PyMySQL engine:

- ``async_creator`` bypasses the URL and ``connect_args``; they are turned into aiomysql
  arguments here the way the dialect would (``?charset=``, ``?ssl_ca=``... keep working).
- aiomysql has no read timeout: the login is bounded with :func:`asyncio.timeout` (the policy's
  ``handshake_timeout``, at most what is left of ``total``).
- aiomysql alone would log in without TLS, silently, when the server does not offer it; here a
  TLS context means TLS or error 2026 (:class:`~secretclient.db.errors.ClientMisconfigured`).
- Its connections never reconnect by themselves (``ping(reconnect=True)`` would resend the
  password captured at connect): the pool replaces dead ones, logging in with fresh credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

try:
    import aiomysql
    import sqlalchemy
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.ext.asyncio import create_async_engine as _sqlalchemy_create_async_engine
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secretclient.db.asyncio needs aiomysql and SQLAlchemy's asyncio support: "
        "pip install 'secretclient-rotation[async]'"
    ) from _missing

import pymysql
from pymysql.constants import CLIENT

from ..model import DbCredentials
from ._mysql import MYSQL
from ._postgres import POSTGRES
from ._search import CredentialSearch, LoginRequest, SleepRequest, Steps, WaitRequest
from .connector import Connector
from .policy import RetryPolicy
from .sqlalchemy import VERSION_KEY, _check_arguments, _resolve_connector, _roll_over

if TYPE_CHECKING:
    from ..client import SecretClient

__all__ = ["create_async_engine"]


def create_async_engine(
    url: str | sqlalchemy.engine.URL,
    *,
    secret: str | None = None,
    client: SecretClient | None = None,
    connector: Connector | None = None,
    policy: RetryPolicy | None = None,
    rollover: bool = True,
    **kwargs: Any,
) -> AsyncEngine:
    """``sqlalchemy.ext.asyncio.create_async_engine(url, **kwargs)`` logging in with the
    credentials of ``secret``.

    ``url`` is ``mysql+aiomysql://`` (or ``mariadb+aiomysql://``), or ``postgresql+psycopg://``
    (psycopg 3's asyncio connections), without a password; user,
    password, and host, port and database unless the URL names them, come from the secret.
    Give ``secret`` and ``client``, or a shared ``connector`` (whose
    :meth:`~secretclient.db.Connector.stats` you can read). Pooled connections of a replaced
    credential version are closed at their next checkout unless ``rollover=False``.
    """
    parsed = _check_arguments(url, kwargs, ("aiomysql", "psycopg"), "secretclient.db.asyncio")
    mysql = parsed.get_driver_name() == "aiomysql"
    connect_args = kwargs.pop("connect_args", None) or {}
    shared = _resolve_connector("create_async_engine()", secret, client, connector, policy,
                                MYSQL if mysql else POSTGRES)
    params: dict[str, Any] = {}  # filled below, once the dialect exists; read at each login
    translate, login = (_aiomysql_kwargs, _login) if mysql else (None, _psycopg_login)

    async def creator() -> Any:
        conn, creds = await _connect(shared.search(params, translate), login)
        conn.credential_version = creds.version_id
        return conn

    engine = _sqlalchemy_create_async_engine(parsed, async_creator=creator, **kwargs)
    sync_engine = engine.sync_engine
    # What SQLAlchemy would have passed to aiomysql.connect (FOUND_ROWS included), had the
    # creator not replaced it.
    _, cparams = sync_engine.dialect.create_connect_args(sync_engine.url)
    cparams.update(connect_args)
    cparams.pop("user", None)  # alternating-users rotation changes it
    if mysql and "connect_timeout" not in cparams and shared.policy.handshake_timeout is not None:
        # The login's own timeout (the policy's handshake_timeout, at most the budget left)
        # bounds the TCP connect too: one timer instead of aiomysql's extra wait_for task.
        cparams["connect_timeout"] = None
    params.update(cparams)
    shared.watch()

    @event.listens_for(sync_engine, "connect")
    def _tag(dbapi_conn: Any, conn_rec: Any) -> None:
        conn_rec.info[VERSION_KEY] = getattr(dbapi_conn.driver_connection, "credential_version", None)

    if rollover:
        # No sweep of idle connections from other threads: an aiomysql connection belongs to
        # its event loop. Replaced versions close at checkin and checkout instead.
        _roll_over(sync_engine, shared, sweep=False)
    return engine


class _Connection(aiomysql.Connection):  # type: ignore[misc]
    """An aiomysql connection that requires TLS when given a TLS context, remembers its
    credential version, and never reconnects with the password captured at connect."""

    credential_version: str | None = None

    async def _request_authentication(self) -> None:
        # aiomysql goes on in plaintext when the server does not offer TLS (and would send a
        # clear-text password in the clear). This is the last step before any credential is
        # sent; aiomysql has no public hook there.
        if self._ssl_context is not None and not self.server_capabilities & CLIENT.SSL:
            raise pymysql.err.OperationalError(
                2026, "SSL connection error: TLS is required but the server does not offer it"
            )
        await super()._request_authentication()

    async def ping(self, reconnect: bool = False) -> None:
        """Check the server. ``reconnect`` is ignored: a dead connection stays dead (the pool
        opens a new one with the secret's current credentials)."""
        await super().ping(reconnect=False)


def _aiomysql_kwargs(secret: str, kw: dict[str, Any]) -> dict[str, Any]:
    """The connector's PyMySQL login arguments, as aiomysql takes them."""
    kw = dict(kw)
    if "database" in kw:
        kw["db"] = kw.pop("database")
    # aiomysql encodes a str password as latin-1; this str encodes back to the UTF-8 bytes.
    kw["password"] = kw["password"].decode("latin-1")
    tls = [k for k in kw if k == "ssl" or k.startswith("ssl_")]
    if kw.pop("ssl_disabled", False):
        # Plaintext as asked (or as the secret's SSL: false says); SSL: true with
        # ssl_disabled=True was refused when the arguments were built.
        for k in tls:
            kw.pop(k, None)
    elif tls and not isinstance(kw.get("ssl"), ssl.SSLContext):
        # aiomysql takes TLS only as an SSLContext: the caller's options (an ``ssl`` dict from
        # the URL, ssl_ca=, ...) become a verifying one, as PyMySQL would use them.
        MYSQL.require_tls(kw, secret=secret)
    return kw


async def _connect(search: CredentialSearch, login: Callable[[LoginRequest], Awaitable[Any]]
                   ) -> tuple[Any, DbCredentials]:
    """One connect: the usual first login alone, the whole search when it cannot go at once or fails."""
    request = search.first()
    if request is None:
        return await _drive(search.steps(), login)
    try:
        conn = await login(request)
    except Exception as exc:
        return await _drive(search.steps(exc), login)
    except BaseException:
        search.abandoned()
        raise
    return search.landed(conn)


async def _drive(steps: Steps, login: Callable[[LoginRequest], Awaitable[Any]]) -> tuple[Any, DbCredentials]:
    """Perform the requests of the connector's search with awaits (``login`` awaits a login)."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        value = error = None
        try:
            if isinstance(request, LoginRequest):
                value = await login(request)
            elif isinstance(request, SleepRequest):
                await asyncio.sleep(request.seconds)
            elif isinstance(request, WaitRequest):
                value = await _wait(request)
            else:
                value = await asyncio.to_thread(request.fn, *request.args)
        except BaseException as exc:
            error = exc


async def _wait(request: WaitRequest) -> bool:
    """Wait for another login with the same credential (from any thread or loop) to end,
    without a thread of our own: the login's end wakes this loop."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, done)

    if not request.flight.add_done_callback(wake):
        return True
    try:
        async with asyncio.timeout(request.seconds):
            await done
    except TimeoutError:
        return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _psycopg_login(request: LoginRequest) -> Any:
    kw = request.kwargs
    bounds = [t for t in (kw.get("connect_timeout"), request.handshake) if t is not None]
    if bounds:  # libpq's connect_timeout: whole seconds, at least 2
        kw["connect_timeout"] = max(2, math.ceil(min(float(t) for t in bounds)))
    return await _pg_connection_class().connect(**kw)


@functools.cache
def _pg_connection_class() -> Any:
    """psycopg's AsyncConnection remembering its credential version (psycopg is imported on
    first use: an aiomysql-only install has no psycopg)."""
    import psycopg

    class _PgConnection(psycopg.AsyncConnection):
        credential_version: str | None = None

    return _PgConnection


async def _login(request: LoginRequest) -> _Connection:
    conn = _Connection(**request.kwargs)
    try:
        async with asyncio.timeout(request.handshake):
            await conn._connect()  # what aiomysql.connect() does, with our class
    except TimeoutError:
        conn.close()
        if request.handshake is None:
            raise
        # Our timeout (aiomysql turns its own connect timeout into error 2003).
        raise pymysql.err.OperationalError(
            2013, f"Lost connection to MySQL server during login (no reply within {request.handshake:.3g} s)"
        ) from None
    except BaseException:
        conn.close()
        raise
    return conn
