"""A throwaway MariaDB server for tests: its own temp dir, a free loopback port, gone on stop.

    with MariaDB() as db:
        db.create_user("app", "s3cret", grants=(f"ALL ON {db.create_database()}.*",))
        with db.connect("app", "s3cret") as conn: ...

The server runs ``mariadbd --no-defaults`` (no system config is read), listens on 127.0.0.1 only,
and logs connection events with the ``server_audit`` plugin so tests can count failed logins.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pymysql

from secretclient.errors import InvalidParameter, SecretClientError
from secretclient.testing._throwaway import ThrowawayServer

__all__ = ["MariaDB", "MariaDBError", "MariaDBNotInstalled", "find_mariadbd"]

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/mysql/bin")
_PORT_IN_USE = ("Bind on TCP/IP port", "Address already in use")


def _split_grant_option(grant: str) -> tuple[str, str]:
    """``"X WITH GRANT OPTION"`` -> ``("X", " WITH GRANT OPTION")``; other grants unchanged."""
    suffix = " WITH GRANT OPTION"
    if grant.rstrip().upper().endswith(suffix):
        return grant.rstrip()[: -len(suffix)], suffix
    return grant, ""


class MariaDBError(SecretClientError):
    """The throwaway server could not be set up, started or queried."""


class MariaDBNotInstalled(MariaDBError):
    """``mariadbd`` or ``mariadb-install-db`` is not on this machine (apt install mariadb-server)."""


def _which(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN_DIRS))
        if found:
            return found
    return None


def find_mariadbd() -> tuple[str, str] | None:
    """Paths of ``mariadbd`` and ``mariadb-install-db``, or None when either is missing.

    ``SECRETCLIENT_MARIADBD`` overrides the server binary.
    """
    override = os.environ.get("SECRETCLIENT_MARIADBD")
    server = (override if os.access(override, os.X_OK) else None) if override else _which("mariadbd", "mysqld")
    install = _which("mariadb-install-db", "mysql_install_db")
    return (server, install) if server and install else None


def _quote_ident(name: str) -> str:
    if not name or "\x00" in name or len(name) > 64:
        raise InvalidParameter("a database or table name must be 1-64 characters without NUL")
    return "`" + name.replace("`", "``") + "`"


def _account(name: str, host: str) -> None:
    # MariaDB allows up to 80 characters for a user name and 255 for a host.
    if not name or len(name) > 80 or "\x00" in name:
        raise InvalidParameter("a user name must be 1-80 characters without NUL")
    if not host or len(host) > 255 or "\x00" in host:
        raise InvalidParameter("a host must be 1-255 characters without NUL")


class MariaDB(ThrowawayServer):
    """A ``mariadbd`` on a free 127.0.0.1 port with its data in a temp dir.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``stop`` kills the
    server's process group and deletes the directory; it also runs at interpreter exit, and a
    small watchdog process does the same if the test process is killed, so a failing or
    interrupted test run does not leave a server behind.

    ``tls=True`` makes a throwaway CA and server certificate (see :attr:`ca_file`).
    ``options`` adds server flags: ``{"max_password_errors": 3}`` becomes
    ``--max-password-errors=3``; a value of ``None`` or ``True`` gives the bare flag.
    ``audit=False`` leaves out the audit plugin (then :meth:`failed_logins` is unavailable).
    """

    admin_user = "root"
    _error = MariaDBError
    _family = "mariadb"
    _server_name = "mariadbd"
    _log_label = "error log"
    _port_in_use = ("Bind on TCP/IP port", "Address already in use")

    def __init__(
        self,
        tls: bool = False,
        options: Mapping[str, Any] | None = None,
        *,
        audit: bool = True,
        base_dir: str | Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(tls, options, base_dir=base_dir, startup_timeout=startup_timeout)
        self.audit = audit
        self._binaries = ("", "")

    # -- paths ----------------------------------------------------------------------------

    @property
    def socket(self) -> Path:
        """The server's Unix socket."""
        return self._dir() / "sock"

    @property
    def error_log(self) -> Path:
        return self._dir() / "error.log"

    @property
    def audit_log(self) -> Path:
        return self._dir() / "audit.log"

    @property
    def _log_file(self) -> Path:
        return self.error_log

    # -- lifecycle ------------------------------------------------------------------------

    def _find_binaries(self) -> None:
        binaries = find_mariadbd()
        if binaries is None:
            raise MariaDBNotInstalled(
                "mariadbd or mariadb-install-db not found; install the Debian package mariadb-server "
                "(or set SECRETCLIENT_MARIADBD)"
            )
        self._binaries = binaries

    def _create(self) -> None:
        cmd = [self._binaries[1], *self._common_flags(), "--auth-root-authentication-method=normal",
               "--skip-test-db"]
        self._run_setup(cmd, "mariadb-install-db")
        if self.tls:
            self._make_certificates()

    def _as_root_flag(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def _common_flags(self) -> list[str]:
        return [
            "--no-defaults",
            *self._as_root_flag(),
            f"--datadir={self.datadir}",
            # A private tmpdir: concurrent installs sharing /tmp clash on temp table names.
            f"--tmpdir={self._dir()}",
            "--innodb-log-file-size=16M",
            "--innodb-buffer-pool-size=64M",
        ]

    def _command(self) -> list[str]:
        d = self._dir()
        flags = [
            self._binaries[0],
            *self._common_flags(),
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--skip-log-bin",
            f"--log-error={self.error_log}",
            f"--pid-file={d / 'mariadbd.pid'}",
        ]
        if self.audit:
            # Rotation off: failed_logins() must see every event of the server's life.
            # "loose": without the plugin (mariadb-server-core only) the server still starts.
            flags += [
                "--plugin-load-add=server_audit",
                "--loose-server-audit-events=CONNECT",
                "--loose-server-audit-output-type=file",
                f"--loose-server-audit-file-path={self.audit_log}",
                "--loose-server-audit-file-rotations=0",
                "--loose-server-audit-logging=ON",
            ]
        if self._certs is not None:
            flags += [
                f"--ssl-ca={self._certs.ca_file}",
                f"--ssl-cert={self._certs.cert_file}",
                f"--ssl-key={self._certs.key_file}",
            ]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            flags.append(flag if value is None or value is True else f"{flag}={value}")
        return flags

    def _ready(self) -> bool:
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            try:
                s.connect(str(self.socket))
            except OSError:
                return False
        return True

    def _set_up_admin(self) -> None:
        # install-db leaves root without a password and reachable only from localhost.
        conn = pymysql.connect(
            unix_socket=str(self.socket), user="root", password="", autocommit=True,
            connect_timeout=10, read_timeout=60, write_timeout=60,
        )
        with conn, conn.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):
                cur.execute("CREATE USER IF NOT EXISTS 'root'@%s", (host,))
                cur.execute("ALTER USER 'root'@%s IDENTIFIED BY %s", (host, self.admin_password))
                cur.execute("GRANT ALL ON *.* TO 'root'@%s WITH GRANT OPTION", (host,))
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
            self.version = str(row[0]) if row else ""

    # -- connections ----------------------------------------------------------------------

    def connect(
        self,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        **pymysql_kwargs: Any,
    ) -> pymysql.connections.Connection:
        """A PyMySQL connection over TCP; root with the admin password by default.

        Bounded by default: 5 s to connect, 30 s per read or write. TLS follows PyMySQL's
        default (used, unverified, when the server offers it): pass
        ``ssl_ca=db.ca_file, ssl_verify_identity=True`` to verify, ``ssl_disabled=True`` for none.
        """
        self._require_started()
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.admin_user if user is None else user,
            "password": self.admin_password if user is None and password is None else (password or ""),
            "database": database,
            "connect_timeout": 5,
            "read_timeout": 30,
            "write_timeout": 30,
        }
        kwargs.update(pymysql_kwargs)
        return pymysql.connect(**kwargs)

    def admin(self, **pymysql_kwargs: Any) -> pymysql.connections.Connection:
        """A root connection in autocommit mode."""
        pymysql_kwargs.setdefault("autocommit", True)
        return self.connect(**pymysql_kwargs)

    def execute(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement as root and return its rows (empty for statements without any)."""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def create_database(self, prefix: str = "t") -> str:
        """Create a database with a fresh name starting with ``prefix`` and return the name."""
        name = self._fresh_name(prefix)
        self.execute(f"CREATE DATABASE {_quote_ident(name)}")
        return name

    def create_user(
        self,
        name: str,
        password: str,
        host: str = "%",
        grants: Iterable[str] = (),
        *,
        require_ssl: bool = False,
    ) -> None:
        """Create (or replace) ``name@host`` with ``password`` and run ``GRANT <g> TO`` it for each grant.

        Each grant is SQL such as ``"ALL ON mydb.*"``, ``"SELECT ON mydb.t"`` or
        ``"SELECT ON mydb.* WITH GRANT OPTION"`` (use :meth:`quote_ident` for names you did not
        choose). The user, host and password are sent
        as parameters, so any characters are safe in them.
        """
        _account(name, host)
        require = " REQUIRE SSL" if require_ssl else ""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE OR REPLACE USER %s@%s IDENTIFIED BY %s{require}", (name, host, password))
            for grant in grants:
                # WITH GRANT OPTION goes after TO; a literal % must survive PyMySQL's interpolation.
                grant, with_option = _split_grant_option(grant)
                cur.execute(f"GRANT {grant.replace('%', '%%')} TO %s@%s{with_option}", (name, host))

    def drop_user(self, name: str, host: str = "%") -> None:
        """Drop ``name@host`` if it exists."""
        _account(name, host)
        self.execute("DROP USER IF EXISTS %s@%s", (name, host))

    @staticmethod
    def quote_ident(name: str) -> str:
        """``name`` quoted as a MariaDB identifier (backticks doubled)."""
        return _quote_ident(name)

    # -- failed logins --------------------------------------------------------------------

    def failed_logins(self, user: str, host: str | None = None) -> int:
        """How many logins as ``user`` (from client ``host``, if given) the server refused so far.

        Read from the ``server_audit`` log (FAILED_CONNECT events), after waiting (at most 2 s)
        for connections still in their login phase, because the server writes the event just
        after sending the error to the client.
        """
        if not self.audit:
            raise MariaDBError("failed_logins() needs the audit plugin; start MariaDB(audit=True)")
        self._wait_for_logins()
        try:
            text = self.audit_log.read_text(errors="replace")
        except FileNotFoundError:
            raise MariaDBError(
                f"no audit log: the server_audit plugin did not load; error log:\n{self._log_tail()}"
            ) from None
        count = 0
        for line in text.splitlines():
            # timestamp,serverhost,username,host,connectionid,queryid,operation,database,object,retcode
            # The user name is not escaped, so split it off from both ends.
            head = line.split(",", 2)
            if len(head) < 3:
                continue
            fields = head[2].rsplit(",", 7)
            failed = len(fields) == 8 and fields[4] == "FAILED_CONNECT" and fields[0] == user
            if failed and (host is None or fields[1] == host):
                count += 1
        return count

    def _wait_for_logins(self) -> None:
        deadline = time.monotonic() + 2.0
        with self.admin() as conn, conn.cursor() as cur:
            while True:
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    "WHERE COMMAND = 'Connect' AND ID <> CONNECTION_ID()"
                )
                row = cur.fetchone()
                if not row or row[0] == 0 or time.monotonic() > deadline:
                    return
                time.sleep(0.01)


# -- python -m secretclient.testing.mariadb: a throwaway server for a person -------------------


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (it may hold a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _serve_until_interrupted(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m secretclient.testing.mariadb",
        description="Start a throwaway MariaDB on a free 127.0.0.1 port for you to try things on; "
        "Ctrl-C (or SIGTERM) stops it and deletes its files.",
    )
    parser.add_argument("--tls", action="store_true", help="serve TLS too (a throwaway CA: ca.pem in its directory)")
    parser.add_argument("--env-file", type=Path, metavar="FILE",
                        help="also write MARIADB_HOST, MARIADB_PORT and MARIADB_CNF to FILE for a shell "
                        "(`. ./FILE`); deleted with the server")
    args = parser.parse_args(argv)

    # Ctrl-C and SIGTERM (kill PID, a service manager) clean up alike, even when this was started in
    # the background of a script (which starts it with SIGINT ignored).
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    try:
        db = MariaDB(tls=args.tls).start()
    except MariaDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # start() has cleaned up already
        print("interrupted while starting; nothing is left behind", file=sys.stderr)
        return 130
    with db:
        # The root password goes into a client option file, never to the terminal.
        cnf = db._dir() / "client.cnf"
        lines = ["[client]", f"host={db.host}", f"port={db.port}", f"user={db.admin_user}",
                 f"password={db.admin_password}"]
        if db.ca_file is not None:
            lines += [f"ssl-ca={db.ca_file}", "ssl-verify-server-cert"]
        _write_private(cnf, "\n".join(lines) + "\n")
        env_file = args.env_file.resolve() if args.env_file else None
        if env_file is not None:
            _write_private(env_file, f"MARIADB_HOST={db.host}\nMARIADB_PORT={db.port}\n"
                           f"MARIADB_CNF={shlex.quote(str(cnf))}\nexport MARIADB_HOST MARIADB_PORT MARIADB_CNF\n")
        print(f"MariaDB {db.version} is running on {db.host}:{db.port}: "
              f"a throwaway server, its files in {db.directory}")
        print(f"  as root:      mariadb --defaults-extra-file={shlex.quote(str(cnf))}")
        print("               (that file holds host, port, user root and its random password; only you can read it)")
        if db.ca_file is not None:
            print(f"  TLS CA:       {db.ca_file}")
        if env_file is not None:
            print(f"  for a shell:  . {shlex.quote(str(env_file))}   (sets MARIADB_HOST, MARIADB_PORT, MARIADB_CNF)")
        print("Press Ctrl-C to stop it and delete its files.", flush=True)
        try:
            while db.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("stopping: the server is killed and its files deleted", flush=True)
            return 0
        finally:
            if env_file is not None:
                env_file.unlink(missing_ok=True)
        print(f"error: mariadbd exited by itself; error log:\n{db._log_tail()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_serve_until_interrupted(sys.argv[1:]))
