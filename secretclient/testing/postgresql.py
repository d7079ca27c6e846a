"""A throwaway PostgreSQL server for tests: its own temp dir, a free loopback port, gone on stop.

    with PostgreSQL() as pg:
        db = pg.create_database("app")
        pg.create_user("app", "s3cret", grants=(f"ALL ON DATABASE {pg.quote_ident(db)}",))
        with pg.connect("app", "s3cret", db) as conn: ...

Debian's server binaries (``/usr/lib/postgresql/<major>/bin``) run with ``initdb`` defaults but
``fsync=off``; the administrator ``postgres`` logs in over the Unix socket without a password,
every TCP login uses scram-sha-256, as in production. The server refuses to run as root, so a
root process runs it as the ``postgres`` OS user (``setpriv``) in a directory that user owns.
Connections are logged (``log_connections``) so tests can count failed logins.

``python -m secretclient.testing.postgresql`` starts one for a person and prints how to connect.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from secretclient.errors import InvalidParameter, SecretClientError
from secretclient.testing._throwaway import ThrowawayServer

__all__ = [
    "REQUIRE_SSL_ROLE",
    "PostgreSQL",
    "PostgreSQLError",
    "PostgreSQLNotInstalled",
    "find_postgres",
]

_OS_USER = "postgres"

#: Members of this NOLOGIN role may log in over TLS only (a ``hostnossl … reject`` line of
#: pg_hba.conf names it); ``create_user(..., require_ssl=True)`` grants it.
REQUIRE_SSL_ROLE = "secretclient_require_ssl"

_HBA = f"""# written by secretclient.testing.postgresql
local all all trust
hostnossl all +{REQUIRE_SSL_ROLE} 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
"""

# log_line_prefix "%m [%p] %h: " then the message; the user name in the message is not escaped.
_FAILED_LOGIN = re.compile(
    r"^\S+ \S+ \S+ \[\d+\] (?P<host>\S*): FATAL:  (?:"
    r'password authentication failed for user "(?P<u1>.*)"'
    r'|pg_hba\.conf rejects connection for host "[^"]*", user "(?P<u2>.*)", database "'
    r'|no pg_hba\.conf entry for host "[^"]*", user "(?P<u3>.*)", database "'
    r")"
)


class PostgreSQLError(SecretClientError):
    """The throwaway server could not be set up, started or queried."""


class PostgreSQLNotInstalled(PostgreSQLError):
    """``postgres`` or ``initdb`` is not on this machine (apt install postgresql)."""


def find_postgres() -> Path | None:
    """The directory holding ``postgres`` and ``initdb``, or None when they are missing.

    ``SECRETCLIENT_POSTGRES_BIN`` overrides it; else the newest ``/usr/lib/postgresql/*/bin``
    (Debian), else the directory of ``postgres`` on PATH.
    """
    override = os.environ.get("SECRETCLIENT_POSTGRES_BIN")
    candidates: list[Path] = []
    if override:
        candidates = [Path(override)]
    else:
        debian = glob.glob("/usr/lib/postgresql/*/bin")
        candidates = sorted((Path(d) for d in debian), key=lambda p: _major(p.parent.name), reverse=True)
        on_path = shutil.which("postgres")
        if on_path:
            candidates.append(Path(on_path).parent)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("postgres", "initdb")):
            return directory
    return None


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid …": comm may hold spaces, so split after its closing parenthesis.
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(text.split(" ", 1)[0]))
    return found


def _role(name: str) -> None:
    # PostgreSQL truncates identifiers to 63 bytes: refuse rather than act on another name.
    if not name or "\x00" in name or len(name.encode()) > 63:
        raise InvalidParameter("a role name must be 1-63 bytes without NUL")


def _quote_ident(name: str) -> str:
    _role(name)
    return '"' + name.replace('"', '""') + '"'


def _check_reachable(directory: Path, run_as: pwd.struct_passwd) -> None:
    """Raise unless ``run_as`` may enter ``directory`` and each of its parents."""
    for path in (directory, *directory.parents):
        st = path.stat()
        if st.st_uid == run_as.pw_uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid in os.getgrouplist(run_as.pw_name, run_as.pw_gid):
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            raise PostgreSQLError(
                f"the OS user {run_as.pw_name!r} that runs the server cannot enter {str(path)!r}: "
                "choose another base_dir or chmod o+x it"
            )


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise PostgreSQLError(
            "the throwaway PostgreSQL needs psycopg 3: pip install 'secretclient-rotation[postgres]'"
        ) from None
    return psycopg


class PostgreSQL(ThrowawayServer):
    """A ``postgres`` on a free 127.0.0.1 port with its data in a temp dir.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``stop`` kills the
    server's process group and deletes the directory; it also runs at interpreter exit, and a
    small watchdog process does the same if the test process is killed (even by SIGKILL).

    ``tls=True`` makes a throwaway CA and server certificate (see :attr:`ca_file`) and turns
    ``ssl`` on; members of :data:`REQUIRE_SSL_ROLE` may then log in over TLS only.
    ``options`` adds server settings: ``{"max_connections": 20}`` becomes ``-c max_connections=20``.
    ``base_dir`` must be traversable by the ``postgres`` OS user when running as root.
    """

    admin_user = "postgres"
    _error = PostgreSQLError
    _family = "postgresql"
    _server_name = "postgres"
    _log_label = "server log"
    _port_in_use = ("could not bind", "Address already in use")
    _output_to_log = True

    _bindir = Path()
    _run_as_user: pwd.struct_passwd | None = None

    # -- paths ----------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        """The directory of the server's Unix socket (libpq's ``host=`` for a socket login)."""
        return self._dir()

    @property
    def server_log(self) -> Path:
        """The server's log (its stderr): start-up errors and connection events."""
        return self._dir() / "server.log"

    @property
    def _log_file(self) -> Path:
        return self.server_log

    # -- lifecycle ------------------------------------------------------------------------

    def _find_binaries(self) -> None:
        bindir = find_postgres()
        if bindir is None:
            raise PostgreSQLNotInstalled(
                "postgres or initdb not found; install the Debian package postgresql "
                "(or set SECRETCLIENT_POSTGRES_BIN to the directory holding them)"
            )
        _import_psycopg()
        self._bindir = bindir
        self._run_as_user = self._run_as()

    def _create(self) -> None:
        run_as = self._run_as_user
        if run_as is not None:
            _check_reachable(self._dir().parent, run_as)
            os.chown(self._dir(), run_as.pw_uid, run_as.pw_gid)
        self._initdb()
        if self.tls:
            certs = self._make_certificates()
            if run_as is not None:  # the server refuses a key it does not own
                for path in (certs.cert_file.parent, certs.cert_file, certs.key_file):
                    os.chown(path, run_as.pw_uid, run_as.pw_gid)

    @staticmethod
    def _run_as() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(_OS_USER)
        except KeyError:
            raise PostgreSQLError(
                f"PostgreSQL refuses to run as root and there is no OS user {_OS_USER!r} to run it as "
                "(the Debian package postgresql creates it)"
            ) from None

    def _as_user(self, cmd: list[str]) -> list[str]:
        run_as = self._run_as_user
        if run_as is None:
            return cmd
        # setpriv execs the command itself: the pid we hold is the server's.
        return ["setpriv", f"--reuid={run_as.pw_uid}", f"--regid={run_as.pw_gid}", "--init-groups", "--", *cmd]

    def _initdb(self) -> None:
        cmd = [
            str(self._bindir / "initdb"), "-D", str(self.datadir), "-U", self.admin_user, "--auth-local=trust",
            "--auth-host=scram-sha-256", "--no-sync", "--encoding=UTF8", "--locale=C", "--no-instructions",
        ]
        self._run_setup(self._as_user(cmd), "initdb")
        (self.datadir / "pg_hba.conf").write_text(_HBA)

    def _command(self) -> list[str]:
        settings: dict[str, Any] = {
            "listen_addresses": self.host,
            "port": self.port,
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
            "log_connections": "on",
            "log_line_prefix": "%m [%p] %h: ",
            "password_encryption": "scram-sha-256",
        }
        if self._certs is not None:
            settings.update(
                ssl="on",
                ssl_cert_file=str(self._certs.cert_file),
                ssl_key_file=str(self._certs.key_file),
                ssl_ca_file=str(self._certs.ca_file),
            )
        settings.update(self.options)
        flags = [str(self._bindir / "postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            flags += ["-c", f"{key}={value}"]
        return self._as_user(flags)

    def _ready(self) -> bool:
        if not (self.socket_dir / f".s.PGSQL.{self.port}").exists():
            return False
        try:
            self._socket_connect(connect_timeout=2).close()
        except _import_psycopg().OperationalError:
            return False  # "the database system is starting up"
        return True

    def _socket_connect(self, dbname: str = "postgres", **kwargs: Any) -> Any:
        psycopg = _import_psycopg()
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.admin_user, dbname=dbname, autocommit=True, **kwargs
        )

    def _set_up_admin(self) -> None:
        from psycopg import sql

        with self._socket_connect() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(self.admin_user), sql.Literal(self.admin_password)))
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(REQUIRE_SSL_ROLE)))
            row = conn.execute("SHOW server_version").fetchone()
            self.version = str(row[0]) if row else ""

    def _kill_server(self, pid: int) -> None:
        # Each child of the postmaster is its own session leader (setsid), so killing the
        # postmaster's group would leave them: stop it (no more forks), kill them, then it.
        os.kill(pid, signal.SIGSTOP)
        for child in _children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        os.killpg(pid, signal.SIGKILL)

    # -- connections ----------------------------------------------------------------------

    def connect(
        self,
        user: str | None = None,
        password: str | None = None,
        dbname: str | None = None,
        **psycopg_kwargs: Any,
    ) -> Any:
        """A psycopg connection over TCP (scram-sha-256); the administrator by default.

        5 s to connect by default. TLS follows libpq's default (``sslmode=prefer``: used,
        unverified, when offered): pass ``sslmode="verify-full", sslrootcert=str(pg.ca_file)``
        to verify, ``sslmode="disable"`` for none.
        """
        self._require_started()
        psycopg = _import_psycopg()
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.admin_user if user is None else user,
            "password": self.admin_password if user is None and password is None else (password or ""),
            "dbname": dbname or "postgres",
            "connect_timeout": 5,
        }
        kwargs.update(psycopg_kwargs)
        return psycopg.connect(**kwargs)

    def admin(self, dbname: str = "postgres", **psycopg_kwargs: Any) -> Any:
        """An administrator connection in autocommit mode, over the Unix socket (no password)."""
        self._require_started()
        return self._socket_connect(dbname, **psycopg_kwargs)

    def execute(self, query: Any, params: Any = None, *, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the administrator and return its rows (empty for statements without any)."""
        with self.admin(dbname) as conn:
            cur = conn.execute(query, params)
            return list(cur.fetchall()) if cur.description is not None else []

    def create_database(self, prefix: str = "t", owner: str | None = None) -> str:
        """Create a database with a fresh name starting with ``prefix`` and return the name."""
        name = self._fresh_name(prefix)
        owner_sql = f" OWNER {_quote_ident(owner)}" if owner else ""
        self.execute(f"CREATE DATABASE {_quote_ident(name)}{owner_sql}")
        return name

    def create_user(
        self,
        name: str,
        password: str,
        grants: Iterable[str] = (),
        *,
        attributes: str = "",
        require_ssl: bool = False,
        dbname: str = "postgres",
    ) -> None:
        """Create (or replace) the login role ``name`` with ``password``, then ``GRANT <g> TO`` it.

        Each grant is SQL such as ``"ALL ON DATABASE mydb"``, ``"CREATE ON SCHEMA public"`` or a
        role to join (``"pg_read_all_data"``), run in database ``dbname`` (use
        :meth:`quote_ident` for names you did not choose). ``attributes`` are more role options
        (``"CREATEROLE CONNECTION LIMIT 5"``). ``require_ssl`` makes the role a member of
        :data:`REQUIRE_SSL_ROLE`. The name is quoted and the password sent as a literal, so any
        characters are safe in them.
        """
        from psycopg import sql

        _role(name)
        if "\x00" in password:
            raise InvalidParameter("a password must not contain NUL")
        ident = sql.Identifier(name)
        with self.admin(dbname) as conn, conn.transaction():
            self._drop_role(conn, name)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + attributes).format(ident, sql.Literal(password)))
            if require_ssl:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(REQUIRE_SSL_ROLE), ident))
            for grant in grants:
                conn.execute(sql.SQL("GRANT " + grant + " TO {}").format(ident))

    def drop_user(self, name: str, *, dbname: str = "postgres") -> None:
        """Drop role ``name`` if it exists, with what it owns and its privileges in database ``dbname``."""
        _role(name)
        with self.admin(dbname) as conn, conn.transaction():
            self._drop_role(conn, name)

    @staticmethod
    def _drop_role(conn: Any, name: str) -> None:
        from psycopg import sql

        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))

    @staticmethod
    def quote_ident(name: str) -> str:
        """``name`` quoted as a PostgreSQL identifier (double quotes doubled)."""
        return _quote_ident(name)

    # -- failed logins --------------------------------------------------------------------

    def failed_logins(self, user: str, host: str | None = None) -> int:
        """How many logins as ``user`` (from client ``host``, if given) the server refused so far.

        Counted from the server log: wrong passwords (and unknown roles, which look the same
        to the client) and pg_hba.conf refusals. A backend logs the refusal before it tells
        the client, so the count is complete once the client has seen its error.
        """
        try:
            text = self.server_log.read_text(errors="replace")
        except FileNotFoundError:
            raise PostgreSQLError("no server log: the server is not started") from None
        count = 0
        for line in text.splitlines():
            m = _FAILED_LOGIN.match(line)
            if m is None:
                continue
            name = m.group("u1") if m.group("u1") is not None else (m.group("u2") or m.group("u3"))
            if name == user and (host is None or m.group("host") == host):
                count += 1
        return count


def main(argv: list[str] | None = None) -> int:
    """Command line: run a throwaway server until Ctrl-C or SIGTERM, then delete it."""
    parser = argparse.ArgumentParser(
        prog="python -m secretclient.testing.postgresql", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--tls", action="store_true", help="turn TLS on with a throwaway CA")
    parser.add_argument("--database", default="app", help="a database to create (default app)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        pg = PostgreSQL(tls=args.tls).start()
    except (PostgreSQLError, InvalidParameter) as exc:
        print(f"error: {exc}", flush=True)
        return 1
    with pg:
        db = pg.create_database(args.database) if args.database else "postgres"
        ssl = f"&sslmode=verify-full&sslrootcert={pg.ca_file}" if pg.ca_file else ""
        print(f"PostgreSQL {pg.version} listening on {pg.host}:{pg.port} (data in {pg.directory})", flush=True)
        print(f"database: {db}", flush=True)
        print(f"administrator over TCP: postgresql://{pg.admin_user}:{pg.admin_password}@{pg.host}:{pg.port}/{db}"
              f"?connect_timeout=5{ssl}", flush=True)
        print(f"administrator over the socket: psql -h {pg.socket_dir} -p {pg.port} -U {pg.admin_user} {db}",
              flush=True)
        if pg.ca_file:
            print(f"CA file: {pg.ca_file}", flush=True)
        print("Ctrl-C stops the server and deletes its data", flush=True)
        while not stop.wait(0.5):
            if not pg.running:
                print("error: the server exited", flush=True)
                return 1
    print("PostgreSQL stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
