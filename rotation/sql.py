"""SQL for MySQL and MariaDB: server versions, dialects, identifier checks and statements.

Every statement is a :class:`Statement`: SQL text with ``%s`` placeholders plus parameters,
run through PyMySQL's parameter escaping. Account names, hosts and passwords are always
parameters; database, table, column and role names from the server's own ``SHOW GRANTS``
output are quoted with backticks (backticks doubled). Because PyMySQL interpolates with
``%``, a literal ``%`` in the SQL text is written ``%%`` — :func:`ident` does that.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from .errors import UnsafeAccountName, UnsupportedServer

__all__ = [
    "NAME_LIMIT_MARIADB",
    "NAME_LIMIT_MYSQL",
    "NAME_LIMIT_RDS",
    "AccountOptions",
    "Dialect",
    "ServerVersion",
    "Statement",
    "check_account_name",
    "check_host",
    "ident",
    "native_hash",
]

#: Longest account name ApsaraDB RDS accepts (the seed's limit).
NAME_LIMIT_RDS = 16
#: MySQL 5.7 and later.
NAME_LIMIT_MYSQL = 32
#: MariaDB 10.x / 11.x.
NAME_LIMIT_MARIADB = 80

_ACCOUNT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_HOST_RE = re.compile(r"[A-Za-z0-9_.%:/-]{1,255}")
_PLUGIN_RE = re.compile(r"[a-z0-9_]{1,64}")
# Auth plugins whose secret is a password we can set; others (unix_socket, gssapi, …) are refused.
_PASSWORD_PLUGINS = frozenset(
    {"mysql_native_password", "caching_sha2_password", "sha256_password", "ed25519", "parsec"}
)


def check_account_name(name: Any, limit: int, *, what: str = "account name") -> str:
    """``name`` if it is a safe account name of at most ``limit`` characters, else :class:`UnsafeAccountName`.

    Allowed: letters, digits, ``_``, ``.`` and ``-`` (not first). Quotes, backticks, ``%``,
    spaces and control characters are refused even though parameters would carry them
    safely: such names are almost always a mistake or an attack, and other tools quote worse.
    """
    if not isinstance(name, str) or not name:
        raise UnsafeAccountName(f"{what} must be a non-empty string")
    if not _ACCOUNT_RE.fullmatch(name):
        raise UnsafeAccountName(
            f"{what} {name!r} has characters other than letters, digits, '_', '.' and '-'"
            if name.isprintable() and len(name) <= 200
            else f"{what} has characters other than letters, digits, '_', '.' and '-'"
        )
    if len(name) > limit:
        raise UnsafeAccountName(f"{what} {name!r} is {len(name)} characters; the limit is {limit}")
    return name


def check_host(host: Any) -> str:
    """A host part of an account as the server lists it (``%``, ``10.0.%``, ``db.example``)."""
    if not isinstance(host, str) or not _HOST_RE.fullmatch(host):
        raise UnsafeAccountName(
            "account host must be 1-255 characters of letters, digits and _ . % : / -"
        )
    return host


def native_hash(password: str) -> str:
    """The form ``mysql_native_password`` stores: ``*`` and the upper-case hex SHA1(SHA1(password)).

    Sending it instead of the password keeps the password out of the server's general and slow
    logs (the hash is still a secret: it is redacted like a password)."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode("utf-8")).digest()).hexdigest().upper()


def ident(name: str) -> str:
    """``name`` as a backtick-quoted identifier for a :class:`Statement`'s SQL text (``%`` doubled)."""
    if not isinstance(name, str) or not name or "\x00" in name or len(name) > 128:
        raise UnsafeAccountName("an identifier must be 1-128 characters without NUL")
    return ("`" + name.replace("`", "``") + "`").replace("%", "%%")


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement with its parameters; ``secret`` lists the indexes of secret parameters."""

    sql: str
    params: tuple[Any, ...] = ()
    secret: frozenset[int] = frozenset()

    def run(self, cursor: Any) -> None:
        # Always pass a tuple: PyMySQL only un-doubles %% when it interpolates.
        cursor.execute(self.sql, self.params)

    def redacted(self) -> str:
        """The statement as text, secret parameters shown as ``'<redacted>'``."""
        values = iter(enumerate(self.params))

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "%%":
                return "%"
            i, value = next(values)
            if i in self.secret:
                return "'<redacted>'"
            if isinstance(value, (int, float)):
                return str(value)
            return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

        return re.sub(r"%%|%s", sub, self.sql)

    def __repr__(self) -> str:
        return f"Statement({self.redacted()!r})"


@dataclass(frozen=True, slots=True, order=True)
class ServerVersion:
    """A parsed server version: ``flavor`` plus numeric parts, compared as tuples."""

    flavor: Literal["mysql", "mariadb"]
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str, comment: str = "") -> ServerVersion:
        """From ``SELECT VERSION()`` (and optionally ``@@version_comment``).

        Handles ``10.11.19-MariaDB-0+deb12u1``, the replication prefix ``5.5.5-10.6.4-MariaDB``,
        ``8.0.36-0ubuntu…``, ``5.7.44-log`` and ``9.1.0``.
        """
        raw = (text or "").strip()
        mariadb = "mariadb" in raw.lower() or "mariadb" in (comment or "").lower()
        if raw.startswith("5.5.5-") and mariadb:
            raw = raw[len("5.5.5-"):]
        m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", raw)
        if not m:
            raise UnsupportedServer(f"cannot parse server version {text[:60]!r}")
        return cls("mariadb" if mariadb else "mysql", int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def __str__(self) -> str:
        return f"{'MariaDB' if self.flavor == 'mariadb' else 'MySQL'} {self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True, slots=True)
class AccountOptions:
    """What an account has besides grants and password: auth plugin, TLS requirement, limits.

    ``ssl_type`` is ``""`` (none), ``"ANY"`` (REQUIRE SSL), ``"X509"`` or ``"SPECIFIED"``
    (issuer/subject/cipher), exactly as ``mysql.user`` stores it.
    """

    plugin: str = ""
    ssl_type: str = ""
    ssl_cipher: str = ""
    x509_issuer: str = ""
    x509_subject: str = ""
    limits: tuple[int, int, int, int] = (0, 0, 0, 0)

    QUERY = (
        "SELECT plugin, ssl_type, ssl_cipher, x509_issuer, x509_subject, max_questions, max_updates,"
        " max_connections, max_user_connections FROM mysql.user WHERE User = %s AND Host = %s"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> AccountOptions:
        def text(v: Any) -> str:
            return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v or "")

        return cls(
            plugin=text(row[0]),
            ssl_type=text(row[1]).upper(),
            ssl_cipher=text(row[2]),
            x509_issuer=text(row[3]),
            x509_subject=text(row[4]),
            limits=tuple(int(v or 0) for v in row[5:9]),  # type: ignore[arg-type]
        )

    @property
    def requires_tls(self) -> bool:
        return self.ssl_type not in ("", "NONE")

    def tls_equal(self, other: AccountOptions) -> bool:
        return (self.ssl_type, self.ssl_cipher, self.x509_issuer, self.x509_subject) == (
            other.ssl_type, other.ssl_cipher, other.x509_issuer, other.x509_subject
        )


@dataclass(frozen=True)
class Dialect:
    """The statements rotation needs, written for one server version.

    Differences handled: ``ALTER USER … IDENTIFIED`` (MySQL ≥ 5.7.6, MariaDB ≥ 10.2);
    ``PASSWORD()`` is gone from MySQL 8, so a user changing its own password uses
    ``ALTER USER USER() … REPLACE`` there (≥ 8.0.13); ``RETAIN CURRENT PASSWORD`` (MySQL
    ≥ 8.0.14) keeps the old password valid until the next change; plugins are named with
    ``IDENTIFIED VIA … USING PASSWORD()`` on MariaDB and ``IDENTIFIED WITH … BY`` on MySQL;
    default roles are ``SET DEFAULT ROLE r FOR u`` on MariaDB and ``… TO u`` on MySQL.
    """

    version: ServerVersion

    def __post_init__(self) -> None:
        v = self.version
        ok = v.at_least(10, 2) if v.flavor == "mariadb" else v.at_least(5, 7, 6)
        if not ok:
            raise UnsupportedServer(
                f"{v} is not supported: rotation needs MariaDB 10.2+ or MySQL 5.7.6+ (ALTER USER)"
            )

    @property
    def mariadb(self) -> bool:
        return self.version.flavor == "mariadb"

    @property
    def has_password_function(self) -> bool:
        return self.mariadb or not self.version.at_least(8)

    @property
    def has_retain_current_password(self) -> bool:
        return not self.mariadb and self.version.at_least(8, 0, 14)

    @staticmethod
    def check_plugin(plugin: str) -> str:
        if plugin and (not _PLUGIN_RE.fullmatch(plugin) or plugin not in _PASSWORD_PLUGINS):
            raise UnsafeAccountName(
                f"auth plugin {plugin[:64]!r} is not a password plugin rotation can set "
                f"({', '.join(sorted(_PASSWORD_PLUGINS))})"
            )
        return plugin

    def native(self, plugin: str) -> bool:
        """Whether an account with ``plugin`` (``""``: the server's default) stores a
        ``mysql_native_password`` hash, which can be sent instead of the password."""
        if plugin:
            return plugin == "mysql_native_password"
        return self.mariadb or not self.version.at_least(8)

    def _identified(self, plugin: str, password: str, *, hashed: bool) -> tuple[str, str]:
        """The ``IDENTIFIED …`` clause and its secret parameter (the hash when ``hashed``)."""
        plugin = self.check_plugin(plugin)
        if hashed:
            if not self.mariadb:
                return "IDENTIFIED WITH mysql_native_password AS %s", native_hash(password)
            if plugin:
                return "IDENTIFIED VIA mysql_native_password USING %s", native_hash(password)
            return "IDENTIFIED BY PASSWORD %s", native_hash(password)
        if not plugin:
            return "IDENTIFIED BY %s", password
        if self.mariadb:
            return f"IDENTIFIED VIA {plugin} USING PASSWORD(%s)", password
        return f"IDENTIFIED WITH {plugin} BY %s", password

    def create_user(self, user: str, host: str, password: str, plugin: str = "") -> Statement:
        clause, secret = self._identified(plugin, password, hashed=self.native(plugin))
        return Statement(f"CREATE USER %s@%s {clause}", (user, host, secret), frozenset({2}))

    def set_password(
        self, user: str, host: str, password: str, *, plugin: str = "", retain: bool = False
    ) -> Statement:
        """Another account's password (run by a privileged account): its hash where the plugin
        stores ``mysql_native_password`` hashes, else the password (RETAIN needs the password)."""
        # MySQL refuses RETAIN together with a plugin change, so only the plain form retains.
        retain = retain and not plugin and self.has_retain_current_password
        clause, secret = self._identified(plugin, password, hashed=self.native(plugin) and not retain)
        sql = f"ALTER USER %s@%s {clause}"
        if retain:
            sql += " RETAIN CURRENT PASSWORD"
        return Statement(sql, (user, host, secret), frozenset({2}))

    def set_own_password(self, password: str, current: str, *, retain: bool = False, native: bool = False) -> Statement:
        """The logged-in account's own password (needs no privileges). ``native``: the account
        stores a ``mysql_native_password`` hash, so MariaDB is sent the hash, not the password."""
        if self.mariadb and native:
            return Statement("SET PASSWORD = %s", (native_hash(password),), frozenset({0}))
        if self.has_password_function:
            return Statement("SET PASSWORD = PASSWORD(%s)", (password,), frozenset({0}))
        sql, params = "ALTER USER USER() IDENTIFIED BY %s", [password]
        if self.version.at_least(8, 0, 13):  # password_require_current may be on: prove the old one
            sql += " REPLACE %s"
            params.append(current)
        if retain and self.has_retain_current_password:
            sql += " RETAIN CURRENT PASSWORD"
        return Statement(sql, tuple(params), frozenset(range(len(params))))

    def require(self, user: str, host: str, opts: AccountOptions) -> Statement:
        """``ALTER USER … REQUIRE …`` giving the account ``opts``' TLS requirement."""
        t = opts.ssl_type
        if t in ("", "NONE"):
            return Statement("ALTER USER %s@%s REQUIRE NONE", (user, host))
        if t == "ANY":
            return Statement("ALTER USER %s@%s REQUIRE SSL", (user, host))
        if t == "X509":
            return Statement("ALTER USER %s@%s REQUIRE X509", (user, host))
        if t != "SPECIFIED":
            raise UnsupportedServer(f"unknown ssl_type {t[:20]!r} in mysql.user")
        parts, params = [], [user, host]
        for word, value in (("ISSUER", opts.x509_issuer), ("SUBJECT", opts.x509_subject), ("CIPHER", opts.ssl_cipher)):
            if value:
                parts.append(f"{word} %s")
                params.append(value)
        if not parts:
            return Statement("ALTER USER %s@%s REQUIRE X509", (user, host))
        return Statement("ALTER USER %s@%s REQUIRE " + " AND ".join(parts), tuple(params))

    def limits(self, user: str, host: str, limits: tuple[int, int, int, int]) -> Statement:
        return Statement(
            "ALTER USER %s@%s WITH MAX_QUERIES_PER_HOUR %s MAX_UPDATES_PER_HOUR %s"
            " MAX_CONNECTIONS_PER_HOUR %s MAX_USER_CONNECTIONS %s",
            (user, host, *(int(v) for v in limits)),
        )

    def default_role(self, user: str, host: str, role: str | None) -> Statement:
        target = ident(role) if role else "NONE"
        word = "FOR" if self.mariadb else "TO"
        return Statement(f"SET DEFAULT ROLE {target} {word} %s@%s", (user, host))
