"""PostgreSQL statements for rotation: SCRAM-SHA-256 verifiers, role attributes and memberships
read from the catalogs, and statements that carry their redacted text.

Passwords never reach the server in clear: ``ALTER ROLE … PASSWORD`` is sent a SCRAM-SHA-256
verifier (RFC 5802 / RFC 7677, PostgreSQL's ``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>``
format), which the server stores as given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRotationSetup

__all__ = [
    "MEMBERSHIPS_QUERY",
    "NAME_LIMIT_POSTGRES",
    "SETTINGS_QUERY",
    "Hidden",
    "Ident",
    "PgStatement",
    "RoleAttributes",
    "alter_attributes",
    "check_role_name",
    "quote_ident",
    "scram_sha256_verifier",
    "set_password",
]

#: PostgreSQL truncates identifiers longer than 63 bytes (NAMEDATALEN - 1).
NAME_LIMIT_POSTGRES = 63
_SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations
_SALT_BYTES = 16


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = _SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password``.

    Only printable ASCII passwords are accepted: for them SASLprep (which the server applies
    before hashing) changes nothing, so the verifier matches what a client will prove.
    """
    if not password or not all(" " <= c <= "~" for c in password):
        raise InvalidRotationSetup(
            "PostgreSQL rotation needs a non-empty password of printable ASCII characters "
            "(the SCRAM verifier is computed client-side)"
        )
    if iterations < 1:
        raise InvalidRotationSetup("SCRAM iterations must be positive")
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def check_role_name(name: Any, *, what: str = "role name") -> str:
    """``name`` if it is a usable role name (1-63 bytes, no NUL), else :class:`InvalidRotationSetup`."""
    if not isinstance(name, str) or not name or "\x00" in name or len(name.encode()) > NAME_LIMIT_POSTGRES:
        raise InvalidRotationSetup(f"{what} must be 1-{NAME_LIMIT_POSTGRES} bytes without NUL")
    return name


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    # standard_conforming_strings is on (the default since 9.1): only quotes need doubling.
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Hidden:
    """A literal that must never be shown (a password verifier)."""

    value: str = ""

    def __repr__(self) -> str:
        return "Hidden(<redacted>)"


@dataclass(frozen=True, slots=True)
class Ident:
    """An identifier (a role name) to quote."""

    name: str


@dataclass(frozen=True, slots=True)
class PgStatement:
    """A statement: ``template`` with ``{}`` for each argument — an :class:`Ident`, a
    a :class:`Hidden` or a plain value (a literal). :meth:`redacted` shows secrets as ``'<redacted>'``."""

    template: str
    args: tuple[Any, ...] = ()

    @property
    def secret(self) -> bool:
        return any(isinstance(a, Hidden) for a in self.args)

    def composed(self) -> Any:
        """The psycopg ``sql.Composed`` to execute (arguments quoted client-side: utility
        statements such as ``ALTER ROLE`` take no bind parameters)."""
        from psycopg import sql

        parts = [
            sql.Identifier(a.name) if isinstance(a, Ident) else sql.Literal(a.value if isinstance(a, Hidden) else a)
            for a in self.args
        ]
        return sql.SQL(self.template).format(*parts)

    def redacted(self) -> str:
        shown = []
        for a in self.args:
            if isinstance(a, Ident):
                shown.append(quote_ident(a.name))
            elif isinstance(a, Hidden):
                shown.append("'<redacted>'")
            elif isinstance(a, int):
                shown.append(str(a))
            else:
                shown.append(_quote_literal(str(a)))
        return self.template.format(*shown)

    def __repr__(self) -> str:
        return f"PgStatement({self.redacted()!r})"


def set_password(role: str, password: str) -> PgStatement:
    """``ALTER ROLE role PASSWORD '<SCRAM verifier>'``."""
    return PgStatement("ALTER ROLE {} PASSWORD {}", (Ident(role), Hidden(scram_sha256_verifier(password))))


# -- role attributes -------------------------------------------------------------------------

#: pg_roles columns and the keywords that set them (True / False).
_FLAGS = (
    ("superuser", "rolsuper", "SUPERUSER", "NOSUPERUSER"),
    ("inherit", "rolinherit", "INHERIT", "NOINHERIT"),
    ("createrole", "rolcreaterole", "CREATEROLE", "NOCREATEROLE"),
    ("createdb", "rolcreatedb", "CREATEDB", "NOCREATEDB"),
    ("login", "rolcanlogin", "LOGIN", "NOLOGIN"),
    ("replication", "rolreplication", "REPLICATION", "NOREPLICATION"),
    ("bypassrls", "rolbypassrls", "BYPASSRLS", "NOBYPASSRLS"),
)


@dataclass(frozen=True, slots=True)
class RoleAttributes:
    """What ``CREATE ROLE`` / ``ALTER ROLE`` set besides the password and ``SET`` configuration."""

    superuser: bool = False
    inherit: bool = True
    createrole: bool = False
    createdb: bool = False
    login: bool = True
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    #: As the server prints it (``'infinity'`` has no Python datetime); None: no expiry.
    valid_until: str | None = None

    QUERY = (
        "SELECT " + ", ".join(col for _, col, _, _ in _FLAGS) + ", rolconnlimit, rolvaliduntil::text "
        "FROM pg_catalog.pg_roles WHERE rolname = %s"
    )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> RoleAttributes:
        flags = {attr: bool(value) for (attr, _, _, _), value in zip(_FLAGS, row, strict=False)}
        valid = row[len(_FLAGS) + 1]
        # 'infinity' is how an expiry is removed (NULL cannot be set again): the same as none.
        return cls(**flags, connection_limit=int(row[len(_FLAGS)]), valid_until=None if valid == "infinity" else valid)

    def clauses(self, other: RoleAttributes | None = None) -> list[str]:
        """Keywords making a role have these attributes (only those differing from ``other``)."""
        out = []
        for attr, _, yes, no in _FLAGS:
            if other is None or getattr(other, attr) != getattr(self, attr):
                out.append(yes if getattr(self, attr) else no)
        if other is None or other.connection_limit != self.connection_limit:
            out.append(f"CONNECTION LIMIT {int(self.connection_limit)}")
        return out

    def valid_until_literal(self) -> str:
        return "infinity" if self.valid_until is None else self.valid_until

    def describe(self, other: RoleAttributes | None = None) -> list[str]:
        """Human-readable differences from ``other`` (for plans and errors)."""
        out = self.clauses(other)
        if other is None or other.valid_until != self.valid_until:
            out.append(f"VALID UNTIL {self.valid_until_literal()}")
        return out


def alter_attributes(role: str, want: RoleAttributes, have: RoleAttributes | None) -> list[PgStatement]:
    """Statements giving ``role`` the attributes ``want`` (by difference from ``have``)."""
    out = []
    clauses = want.clauses(have)
    if clauses:
        out.append(PgStatement("ALTER ROLE {} WITH " + " ".join(clauses), (Ident(role),)))
    if have is None or have.valid_until != want.valid_until:
        out.append(PgStatement("ALTER ROLE {} VALID UNTIL {}", (Ident(role), want.valid_until_literal())))
    return out


#: Direct memberships of a role: (granted role, admin option).
MEMBERSHIPS_QUERY = (
    "SELECT g.rolname, m.admin_option FROM pg_catalog.pg_auth_members m "
    "JOIN pg_catalog.pg_roles g ON g.oid = m.roleid "
    "JOIN pg_catalog.pg_roles r ON r.oid = m.member WHERE r.rolname = %s ORDER BY 1"
)

#: The role's own cluster-wide settings (``ALTER ROLE … SET``), as ``name=value`` strings.
SETTINGS_QUERY = (
    "SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s "
    "JOIN pg_catalog.pg_roles r ON r.oid = s.setrole WHERE r.rolname = %s AND s.setdatabase = 0"
)
