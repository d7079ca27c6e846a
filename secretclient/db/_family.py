"""What a database family (MySQL/MariaDB today, PostgreSQL next) gives the login layer.

The credential search (:mod:`secretclient.db._search`), the :class:`~secretclient.db.Connector`
and the rotation engine know nothing of a driver: they ask a :class:`DbFamily` to build login
arguments from a secret's credentials, to log in, and what a failure means. A new family is one
module beside :mod:`secretclient.db._mysql` implementing this protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..model import DbCredentials
from .classify import Classification

__all__ = ["DbFamily"]


class DbFamily(Protocol):
    """A database family: its driver's login arguments, its login, its error classifier."""

    #: Short name, e.g. ``"mysql"``.
    name: str

    def login_kwargs(self, creds: DbCredentials, kwargs: Mapping[str, Any], *, secret: str,
                     tag: bool = True) -> dict[str, Any]:
        """The driver's keyword arguments for logging in with ``creds`` on top of the caller's
        ``kwargs`` (host, port and database from the secret unless ``kwargs`` names them; the
        secret's ``SSL: true`` as verified TLS, never a silent plaintext fallback).
        ``secret`` names the secret in error messages and, with ``tag``, in the session's tag
        (which secret and VersionId it logged in with, where the server shows it)."""
        ...

    @property
    def default_login(self) -> Any:
        """The driver's connect function (``pymysql.connect``, ``psycopg.connect``)."""
        ...

    def login_with(self, connect: Any, kwargs: dict[str, Any], handshake: float | None) -> Any:
        """Log in with ``connect(**kwargs)`` (the driver's function, or a caller's), each
        server reply of the login bounded by ``handshake`` (None: unbounded)."""
        ...

    def login(self, kwargs: dict[str, Any], handshake: float | None) -> Any:
        """Log in with ``kwargs`` (the family's own arguments); ``handshake`` bounds each server
        reply during the login only (None: unbounded)."""
        ...

    def classify(self, exc: BaseException) -> Classification:
        """What a failed login (or connection) means."""
        ...

    def server(self, kwargs: Mapping[str, Any]) -> str | None:
        """Where a login with ``kwargs`` goes (``host:port`` or a socket path), for messages and
        for the per-process memory of rejected passwords."""
        ...

    def session_cipher(self, conn: Any) -> str:
        """The TLS cipher of an open session as the server sees it, ``""`` for plain text."""
        ...
