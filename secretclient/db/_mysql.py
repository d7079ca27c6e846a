"""The MySQL/MariaDB family on PyMySQL: the one login layer of ``secretclient.db`` and ``rotation``.

Everything about logging in to MySQL/MariaDB is decided here, once: the PyMySQL floor, login
arguments from a secret's credentials (UTF-8 password bytes, host/port/database from the
secret), TLS (a verifying ``SSLContext``, built once per set of options), the handshake timeout,
what a failure means (:func:`~secretclient.db.classify.classify`), and reading the session's TLS
cipher back from the server.

PyMySQL floor: 1.2. From 1.2 on, an ``SSLContext`` (or any TLS option) makes PyMySQL *require*
TLS: a server that does not offer it fails the login with 2026 before any credential is sent.
Older releases went on in plain text, silently. ``pyproject.toml`` states the same floor (a test
keeps the two equal).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import pymysql

from ..model import DbCredentials
from .classify import Classification, classify
from .errors import ClientMisconfigured
from .tags import with_tag

__all__ = ["MYSQL", "PYMYSQL_FLOOR", "MySqlFamily", "set_read_timeout"]

PYMYSQL_FLOOR = (1, 2)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


if _version(pymysql.VERSION_STRING) < PYMYSQL_FLOOR:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"secretclient.db needs PyMySQL >= {'.'.join(map(str, PYMYSQL_FLOOR))} (TLS that cannot fall back "
        f"to plain text); found {pymysql.VERSION_STRING}: pip install -U 'pymysql>=1.2'"
    )

_TLS_KWARGS = ("ssl_ca", "ssl_capath", "ssl_cert", "ssl_key", "ssl_key_password",
               "ssl_verify_cert", "ssl_verify_identity")
_ANY_TLS_KWARG = frozenset(("ssl", "ssl_disabled", *_TLS_KWARGS))
_SSL_DICT_KEYS = (("ca", "ssl_ca"), ("capath", "ssl_capath"), ("cert", "ssl_cert"), ("key", "ssl_key"),
                  ("password", "ssl_key_password"))


def set_read_timeout(conn: Any, seconds: float | None) -> None:
    """Change the read timeout of an open PyMySQL connection.

    PyMySQL 1.2 has no public way to: ``read_timeout`` is a constructor argument only, and the
    connection re-applies its private ``_read_timeout`` to the socket before reads (so
    ``socket.settimeout`` alone would be undone). We need it to bound the login handshake (a
    server that accepts TCP and never answers would hang it forever) without leaving a timeout
    on a session whose caller asked for none. Objects that are not PyMySQL connections (a
    custom ``login``) are left alone.
    """
    if hasattr(conn, "_read_timeout"):
        conn._read_timeout = seconds


@lru_cache(maxsize=32)
def _context(ca: Any, capath: Any, cert: Any, keyfile: Any, key_password: Any, verify_cert: bool,
             verify_identity: bool) -> ssl.SSLContext:
    # Building a context reads the CA bundle (tens of ms); a context is not changed once made.
    ctx = ssl.create_default_context(cafile=ca, capath=capath)
    if cert is not None:
        ctx.load_cert_chain(cert, keyfile=keyfile, password=key_password)
    ctx.check_hostname = verify_identity
    if not verify_cert:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class MySqlFamily:
    """MySQL and MariaDB through PyMySQL (aiomysql takes the same arguments, translated)."""

    name = "mysql"
    default_port = 3306

    @property
    def default_login(self) -> Any:
        return pymysql.connect

    def login_kwargs(self, creds: DbCredentials, kwargs: Mapping[str, Any], *, secret: str,
                     tag: bool = True) -> dict[str, Any]:
        """PyMySQL keyword arguments for ``creds`` on top of the caller's ``kwargs``; ``tag``:
        the session says which secret and version it logged in with (``program_name``, see
        :mod:`secretclient.db.tags`)."""
        kw = dict(kwargs)
        if tag:
            kw["program_name"] = with_tag(kw.get("program_name"), secret, creds.version_id)
        kw["user"] = creds.account_name
        # UTF-8 bytes: PyMySQL would encode a str as latin-1, which fails (and would show a
        # character of the password in the error) or sends other bytes than the server expects.
        kw["password"] = creds.account_password.encode("utf-8")
        if "host" not in kw and "unix_socket" not in kw and creds.endpoint:
            kw["host"] = creds.endpoint
        if "port" not in kw:
            kw["port"] = creds.port_or(self.default_port)
        if "database" not in kw and "db" not in kw and creds.db_name:
            kw["database"] = creds.db_name
        if creds.ssl:
            self.require_tls(kw, secret=secret)
        elif creds.ssl is False and _ANY_TLS_KWARG.isdisjoint(kw):
            # The secret says no TLS. (PyMySQL's default "preferred" mode would also build a new
            # SSLContext, loading every system CA, on each login: ~25 ms.)
            kw["ssl_disabled"] = True
        return kw

    def require_tls(self, kw: dict[str, Any], *, secret: str) -> None:
        """Turn the TLS options in PyMySQL keyword arguments ``kw`` into a verifying
        ``SSLContext`` in ``kw["ssl"]``: TLS or error 2026, never a plaintext fallback.

        Options: ``ssl_ca``, ``ssl_capath``, ``ssl_cert``, ``ssl_key``, ``ssl_key_password``,
        ``ssl_verify_cert``, ``ssl_verify_identity`` (both default to True), an ``ssl`` dict as
        PyMySQL takes it, or an ``ssl`` ``SSLContext`` of the caller's, used as it is.
        """
        if kw.get("ssl_disabled"):
            raise ClientMisconfigured(
                f"secret {secret!r} requires TLS (SSL: true) but ssl_disabled=True was passed",
                errno=2026, secret=secret,
            )
        given = kw.pop("ssl", None)
        tls = {k: kw.pop(k) for k in _TLS_KWARGS if k in kw}
        if isinstance(given, ssl.SSLContext):
            kw["ssl"] = given
            return
        if isinstance(given, Mapping):
            for src, dst in _SSL_DICT_KEYS:
                if given.get(src) is not None:
                    tls.setdefault(dst, given[src])
            if given.get("check_hostname") is not None:
                tls.setdefault("ssl_verify_identity", bool(given["check_hostname"]))
        verify_cert = tls.get("ssl_verify_cert") is not False
        verify_identity = verify_cert and tls.get("ssl_verify_identity") is not False
        ca, capath, cert = tls.get("ssl_ca"), tls.get("ssl_capath"), tls.get("ssl_cert")
        try:
            kw["ssl"] = _context(ca, capath, cert, tls.get("ssl_key"), tls.get("ssl_key_password"),
                                 verify_cert, verify_identity)
        except (OSError, ssl.SSLError) as exc:
            raise ClientMisconfigured(
                f"secret {secret!r}: cannot load the TLS CA or client certificate "
                f"(ssl_ca={ca!r}, ssl_capath={capath!r}, ssl_cert={cert!r}): {type(exc).__name__}",
                errno=2026, secret=secret,
            ) from None

    def login(self, kwargs: dict[str, Any], handshake: float | None) -> Any:
        """``pymysql.connect(**kwargs)``, each reply of the login bounded by ``handshake``."""
        return self.login_with(pymysql.connect, kwargs, handshake)

    @staticmethod
    def login_with(connect: Any, kwargs: dict[str, Any], handshake: float | None) -> Any:
        """Log in with ``connect`` (``pymysql.connect`` or a caller's), bounding the handshake
        with a read timeout that is taken off afterwards (the caller asked for none)."""
        if handshake is None:
            return connect(**kwargs)
        kwargs["read_timeout"] = handshake
        conn = connect(**kwargs)
        set_read_timeout(conn, None)
        return conn

    def classify(self, exc: BaseException) -> Classification:
        return classify(exc)

    def server(self, kwargs: Mapping[str, Any]) -> str | None:
        if kwargs.get("unix_socket"):
            return str(kwargs["unix_socket"])
        if kwargs.get("host"):
            return f"{kwargs['host']}:{kwargs.get('port', self.default_port)}"
        return None

    def session_cipher(self, conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = cur.fetchone()
        return str(row[1]) if row and row[1] else ""


#: The MySQL/MariaDB family.
MYSQL = MySqlFamily()
