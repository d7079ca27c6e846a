"""A parser for ``SHOW GRANTS`` output and grant copying by difference.

Lines are tokenized (backtick identifiers, quoted strings, words, punctuation), not split on
``' TO '``, so these survive: ``WITH GRANT OPTION``, hosts other than ``%`` (``10.0.%``),
column lists, routine grants (``ON PROCEDURE``), role grants (``WITH ADMIN OPTION``), MariaDB's
``SET DEFAULT ROLE`` line, and names containing ``%``, spaces or backticks. The account
options inside grant lines (``IDENTIFIED BY PASSWORD '*hash'``, ``IDENTIFIED VIA … USING``,
``REQUIRE``, ``WITH MAX_…``) are skipped: those are copied from ``mysql.user`` instead, and the
password hash is never kept. Anything not understood raises :class:`UnsupportedGrant`, before
anything is changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import UnsupportedGrant
from .sql import Dialect, Statement, ident

__all__ = ["Grants", "Level", "Privilege", "RoleGrant", "grant_statements", "parse_grants"]

_TOKEN_RE = re.compile(
    r"\s+|`(?P<ident>(?:[^`]|``)*)`|'(?P<squote>(?:[^'\\]|\\.|'')*)'|\"(?P<dquote>(?:[^\"\\]|\\.|\"\")*)\""
    r"|(?P<word>[A-Za-z0-9_$]+)|(?P<punct>[,().@*])",
    re.DOTALL,
)
_PRIV_WORD_RE = re.compile(r"[A-Z_]+")
_OBJECT_TYPES = ("TABLE", "PROCEDURE", "FUNCTION", "PACKAGE BODY", "PACKAGE")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ident | string | word | punct
    text: str


def _unescape(text: str, quote: str) -> str:
    text = text.replace(quote * 2, quote)
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m.group(1), m.group(1)), text)


def _tokenize(line: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(line):
        m = _TOKEN_RE.match(line, pos)
        if not m:
            # Quote the line only before an IDENTIFIED clause: what follows may be a password hash.
            shown = line[pos:pos + 20] if not re.search(r"\bIDENTIFIED\b", line[:pos + 20], re.IGNORECASE) else "…"
            raise UnsupportedGrant(f"cannot parse grant line near character {pos}: {shown!r}")
        pos = m.end()
        if m.group("ident") is not None:
            out.append(_Tok("ident", m.group("ident").replace("``", "`")))
        elif m.group("squote") is not None:
            out.append(_Tok("string", _unescape(m.group("squote"), "'")))
        elif m.group("dquote") is not None:
            out.append(_Tok("string", _unescape(m.group("dquote"), '"')))
        elif m.group("word") is not None:
            out.append(_Tok("word", m.group("word")))
        elif m.group("punct") is not None:
            out.append(_Tok("punct", m.group("punct")))
    return out


@dataclass(frozen=True, slots=True)
class Level:
    """What a privilege applies to: ``*.*``, ``db.*``, ``db.table`` or a routine."""

    object_type: str = ""  # "", "TABLE", "PROCEDURE", "FUNCTION", "PACKAGE", "PACKAGE BODY"
    db: str | None = None  # None means *
    table: str | None = None  # None means *

    def sql(self) -> str:
        """For a :class:`Statement`'s SQL text (identifiers quoted, ``%`` doubled)."""
        prefix = f"{self.object_type} " if self.object_type else ""
        db = ident(self.db) if self.db is not None else "*"
        table = ident(self.table) if self.table is not None else "*"
        return f"{prefix}{db}.{table}"

    def __str__(self) -> str:
        return self.sql().replace("%%", "%")


@dataclass(frozen=True, slots=True)
class Privilege:
    """One privilege at one level (and column). The grant option is the privilege ``GRANT OPTION``."""

    level: Level
    name: str
    column: str | None = None

    def __str__(self) -> str:
        col = f" ({ident(self.column).replace('%%', '%')})" if self.column else ""
        return f"{self.name}{col} ON {self.level}"


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """A role granted to the account (``host`` is None for MariaDB roles)."""

    role: str
    host: str | None = None
    admin: bool = False

    def sql(self) -> str:
        return ident(self.role) + (f"@{ident(self.host)}" if self.host is not None else "")

    def __str__(self) -> str:
        return self.sql().replace("%%", "%") + (" WITH ADMIN OPTION" if self.admin else "")


@dataclass(frozen=True, slots=True)
class Grants:
    """An account's grants, as sets that compare equal when the access is the same."""

    privileges: frozenset[Privilege] = frozenset()
    roles: frozenset[RoleGrant] = frozenset()
    default_role: str | None = None

    def describe(self) -> list[str]:
        lines = [str(p) for p in sorted(self.privileges, key=_key)]
        lines += [f"role {r}" for r in sorted(self.roles, key=_key)]
        if self.default_role:
            lines.append(f"default role {self.default_role}")
        return lines


def _key(item: Privilege | RoleGrant) -> tuple[str, ...]:
    # None (a * level, a host-less role) sorts first; plain sorting cannot compare None with str.
    if isinstance(item, RoleGrant):
        return (item.role, item.host or "", str(item.admin))
    lv = item.level
    return (lv.object_type, "" if lv.db is None else "~" + lv.db, "" if lv.table is None else "~" + lv.table,
            item.name, item.column or "")


class _Parser:
    def __init__(self, line: str, user: str, host: str) -> None:
        self.line = line
        self.toks = _tokenize(line)
        self.i = 0
        self.user, self.host = user, host

    def fail(self, why: str) -> UnsupportedGrant:
        return UnsupportedGrant(f"unsupported grant line ({why}): {self._safe_line()!r}")

    def _safe_line(self) -> str:
        # The line may carry a password hash: cut the IDENTIFIED clause before showing it.
        return re.split(r"\bIDENTIFIED\b", self.line, maxsplit=1, flags=re.IGNORECASE)[0][:200]

    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise self.fail("unexpected end")
        self.i += 1
        return tok

    def is_word(self, *words: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok.kind == "word" and tok.text.upper() in words

    def expect_word(self, word: str) -> None:
        if not self.is_word(word):
            raise self.fail(f"expected {word}")
        self.i += 1

    def is_punct(self, p: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "punct" and tok.text == p

    def name(self) -> str:
        tok = self.take()
        if tok.kind not in ("ident", "string", "word"):
            raise self.fail("expected a name")
        return tok.text

    def account(self) -> tuple[str, str | None]:
        user = self.name()
        if self.is_punct("@"):
            self.i += 1
            return user, self.name()
        return user, None

    def grantee(self) -> None:
        user, host = self.account()
        if (user, host) != (self.user, self.host):
            raise self.fail("grantee is not the account asked for")

    def level(self) -> Level:
        object_type = ""
        for ot in _OBJECT_TYPES:
            words = ot.split()
            if all(self.is_word(w, k=n) for n, w in enumerate(words)):
                object_type, self.i = ot, self.i + len(words)
                break
        parts: list[str | None] = []
        while True:
            if self.is_punct("*"):
                self.i += 1
                parts.append(None)
            else:
                parts.append(self.name())
            if not self.is_punct("."):
                break
            self.i += 1
        if len(parts) != 2 or (parts[0] is None and parts[1] is not None):
            raise self.fail("privilege level must be *.*, db.* or db.table")
        return Level(object_type if object_type != "TABLE" else "", parts[0], parts[1])

    def privilege_list(self) -> list[tuple[str, list[str]]]:
        items: list[tuple[str, list[str]]] = []
        while True:
            words = []
            while self.peek() is not None and self.peek().kind == "word" and not self.is_word("ON"):  # type: ignore[union-attr]
                words.append(self.take().text.upper())
            if not words:
                raise self.fail("expected a privilege")
            name = " ".join(words)
            if name == "ALL":
                name = "ALL PRIVILEGES"
            columns: list[str] = []
            if self.is_punct("("):
                self.i += 1
                while True:
                    columns.append(self.name())
                    if self.is_punct(","):
                        self.i += 1
                        continue
                    if not self.is_punct(")"):
                        raise self.fail("expected ) after a column list")
                    self.i += 1
                    break
            items.append((name, columns))
            if not self.is_punct(","):
                return items
            self.i += 1

    def with_option(self, option: str) -> bool:
        """Whether the rest of the line has ``WITH … <option> OPTION`` (other clauses skipped)."""
        rest = self.toks[self.i:]
        after_with = False
        for n, tok in enumerate(rest):
            if tok.kind == "word" and tok.text.upper() == "WITH":
                after_with = True
            if (
                after_with and tok.kind == "word" and tok.text.upper() == option
                and n + 1 < len(rest) and rest[n + 1].kind == "word" and rest[n + 1].text.upper() == "OPTION"
            ):
                return True
        return False

    def parse(self, into: _Builder) -> None:
        if self.is_word("SET"):
            self.i += 1
            self.expect_word("DEFAULT")
            self.expect_word("ROLE")
            role = None if self.is_word("NONE") else self.name()
            if role is None:
                self.i += 1
            self.expect_word("FOR")
            self.grantee()
            into.default_role = role
            return
        if not self.is_word("GRANT"):
            raise self.fail("not a GRANT line (partial revokes are not supported)")
        self.i += 1
        if self.is_word("PROXY"):
            raise self.fail("PROXY grants are not copied")
        has_on = any(t.kind == "word" and t.text.upper() == "ON" for t in self.toks[self.i:self._to_index()])
        if not has_on:  # a role grant: GRANT `r1`, `r2` TO u [WITH ADMIN OPTION]
            roles = [self.account()]
            while self.is_punct(","):
                self.i += 1
                roles.append(self.account())
            self.expect_word("TO")
            self.grantee()
            admin = self.with_option("ADMIN")
            into.roles.update(RoleGrant(r, h, admin) for r, h in roles)
            return
        items = self.privilege_list()
        self.expect_word("ON")
        level = self.level()
        self.expect_word("TO")
        self.grantee()
        for name, columns in items:
            if not _PRIV_WORD_RE.fullmatch(name.replace(" ", "_")):
                raise self.fail("odd privilege name")
            if name == "USAGE":
                continue  # "no privileges": only carries the grant option / account clauses
            for column in columns or [None]:  # type: ignore[list-item]
                into.privileges.add(Privilege(level, name, column))
        if self.with_option("GRANT"):
            into.privileges.add(Privilege(level, "GRANT OPTION"))

    def _to_index(self) -> int:
        for n in range(self.i, len(self.toks)):
            t = self.toks[n]
            if t.kind == "word" and t.text.upper() == "TO":
                return n
        raise self.fail("no TO")


class _Builder:
    def __init__(self) -> None:
        self.privileges: set[Privilege] = set()
        self.roles: set[RoleGrant] = set()
        self.default_role: str | None = None


def parse_grants(lines: Iterable[str], user: str, host: str) -> Grants:
    """Parse the lines of ``SHOW GRANTS FOR user@host``."""
    b = _Builder()
    for line in lines:
        _Parser(line, user, host).parse(b)
    return Grants(frozenset(b.privileges), frozenset(b.roles), b.default_role)


def _by_level(privs: Iterable[Privilege]) -> dict[Level, list[Privilege]]:
    out: dict[Level, list[Privilege]] = {}
    for p in sorted(privs, key=_key):
        out.setdefault(p.level, []).append(p)
    return out


def _priv_list(privs: Sequence[Privilege]) -> str:
    cols: dict[str, list[str]] = {}
    for p in privs:
        cols.setdefault(p.name, [])
        if p.column is not None:
            cols[p.name].append(p.column)
    return ", ".join(
        name + (" (" + ", ".join(ident(c) for c in cs) + ")" if cs else "") for name, cs in cols.items()
    )


def grant_statements(have: Grants, want: Grants, user: str, host: str, dialect: Dialect) -> list[Statement]:
    """Statements turning ``user@host``'s grants from ``have`` into ``want``.

    Revokes come first (so a later ``GRANT ALL`` is not undone by revoking a single
    privilege), then grants, then roles, then the default role. Empty when equal.
    """
    acct = (user, host)
    out: list[Statement] = []
    for r in sorted(have.roles - want.roles, key=_key):
        out.append(Statement(f"REVOKE {r.sql()} FROM %s@%s", acct))
    for level, privs in _by_level(have.privileges - want.privileges).items():
        plain = [p for p in privs if p.name != "GRANT OPTION"]
        if plain:
            out.append(Statement(f"REVOKE {_priv_list(plain)} ON {level.sql()} FROM %s@%s", acct))
        if len(plain) != len(privs):
            out.append(Statement(f"REVOKE GRANT OPTION ON {level.sql()} FROM %s@%s", acct))
    for level, privs in _by_level(want.privileges - have.privileges).items():
        plain = [p for p in privs if p.name != "GRANT OPTION"]
        option = " WITH GRANT OPTION" if len(plain) != len(privs) else ""
        out.append(Statement(f"GRANT {_priv_list(plain) or 'USAGE'} ON {level.sql()} TO %s@%s{option}", acct))
    for r in sorted(want.roles - have.roles, key=_key):
        admin = " WITH ADMIN OPTION" if r.admin else ""
        out.append(Statement(f"GRANT {r.sql()} TO %s@%s{admin}", acct))
    if have.default_role != want.default_role:
        out.append(dialect.default_role(user, host, want.default_role))
    return out
