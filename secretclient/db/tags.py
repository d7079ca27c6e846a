"""Sessions tagged with the secret version they logged in with.

Every MySQL/MariaDB connection this library opens sends, in its connection attributes, a
``program_name`` saying which secret and VersionId it logged in with::

    secretclient secret=prod%2Fapp-db version=v7

(values percent-encoded; a ``program_name`` of the caller's comes first, separated by a space).
The server shows it in ``performance_schema.session_connect_attrs`` when the performance schema
is on (MariaDB: ``performance_schema=ON``, off by default; MySQL 8: on by default), so an
operator — or ``rotation status`` — can tell which sessions still run on an old version, for
single-user secrets too. :func:`parse_session_tag` reads the value back;
:func:`tagged_sessions` lists the tagged sessions of a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from .errors import SessionAttributesUnavailable

__all__ = ["SessionTag", "TaggedSession", "parse_session_tag", "session_tag", "tagged_sessions", "with_tag"]

_PREFIX = "secretclient"
_TAG = re.compile(r"(?:^|\s)secretclient secret=(\S+) version=(\S+)$")
# aiomysql writes an attribute's length in one byte, and servers keep a few hundred bytes of
# attributes per session: a longer tag is left out rather than sent cut.
_MAX_BYTES = 255


@dataclass(frozen=True, slots=True)
class SessionTag:
    """Which secret and VersionId a session logged in with."""

    secret: str
    version_id: str | None


@dataclass(frozen=True, slots=True)
class TaggedSession:
    """A session the server lists, with the tag it was opened with (None: untagged)."""

    session_id: int
    user: str
    host: str
    tag: SessionTag | None


def session_tag(secret: str, version_id: str | None) -> str:
    """The ``program_name`` value that tags a session with ``secret`` and ``version_id``."""
    return f"{_PREFIX} secret={quote(secret, safe='')} version={quote(version_id or '-', safe='')}"


def with_tag(program_name: str | None, secret: str, version_id: str | None,
             max_bytes: int = _MAX_BYTES) -> str | None:
    """``program_name`` (the caller's, or None) with the tag appended; the caller's value alone
    when the whole would not fit in ``max_bytes`` (255 for MySQL's ``program_name``, 63 for
    PostgreSQL's ``application_name``)."""
    tag = session_tag(secret, version_id)
    value = tag if not program_name else f"{program_name} {tag}"
    if len(value.encode("utf-8")) <= max_bytes:
        return value
    return program_name


def parse_session_tag(program_name: str | None) -> SessionTag | None:
    """The tag in a session's ``program_name`` attribute, or None when it has none."""
    if not program_name:
        return None
    match = _TAG.search(program_name)
    if match is None:
        return None
    version = unquote(match.group(2))
    return SessionTag(unquote(match.group(1)), None if version == "-" else version)


def tagged_sessions(conn: Any) -> list[TaggedSession]:
    """The sessions of the server ``conn`` (a DB-API connection, e.g. PyMySQL) is logged in to,
    with their tags, read from ``performance_schema.session_connect_attrs`` and the process
    list (the account sees the sessions its privileges show: its own, or all with PROCESS).

    Raises :class:`~secretclient.db.errors.SessionAttributesUnavailable` when the server's
    performance schema is off (it then records no connection attributes).
    """
    with conn.cursor() as cur:
        cur.execute("SELECT @@performance_schema")
        row = cur.fetchone()
        if not row or not int(row[0]):
            raise SessionAttributesUnavailable(
                "the server's performance schema is off, so it keeps no connection attributes: "
                "start it with performance_schema=ON (MariaDB) to see which version each session uses"
            )
        cur.execute(
            "SELECT p.ID, p.USER, p.HOST, a.ATTR_VALUE FROM information_schema.PROCESSLIST p "
            "LEFT JOIN performance_schema.session_connect_attrs a "
            "ON a.PROCESSLIST_ID = p.ID AND a.ATTR_NAME = 'program_name' ORDER BY p.ID"
        )
        rows = cur.fetchall()
    return [TaggedSession(int(sid), str(user or ""), str(host or ""), parse_session_tag(value))
            for sid, user, host, value in rows]
