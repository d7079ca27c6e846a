"""What the throwaway database servers share: a temp dir, a free loopback port, start/wait/stop,
cleanup after a failed start, at interpreter exit and (through a watchdog) after SIGKILL of the
test process, the tail of the server's log, the context manager and fresh database names.

A family (:class:`~secretclient.testing.MariaDB`, :class:`~secretclient.testing.PostgreSQL`)
says how to find its binaries, create its data directory, build its command line, tell that it
is ready and set up its administrator.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from secretclient.errors import InvalidParameter, SecretClientError
from secretclient.testing._lifecycle import StartStop
from secretclient.testing.certs import TestCertificates, make_certificates

_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,40}")

# Runs beside each server: when its stdin pipe from us closes without stop() having killed it
# first (our process died, even by SIGKILL), it kills the server ($1) and deletes its directory
# ($2). A server's children may run setsid() (PostgreSQL's do), so they are found by parent pid:
# the server is stopped first (it forks no more), its children killed, then itself.
_WATCHDOG = """
read -r _
kill -STOP "$1" 2>/dev/null
for f in /proc/[0-9]*/stat; do
    read -r pid _ _ ppid _ < "$f" 2>/dev/null && [ "$ppid" = "$1" ] && kill -9 "$pid" 2>/dev/null
done
kill -9 "$1" 2>/dev/null
rm -rf "$2"
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayServer(StartStop):
    """A database server on a free 127.0.0.1 port with its data in a temp dir; see the module doc.

    Subclasses set the class attributes below and implement the hooks marked "family".
    """

    host = "127.0.0.1"
    admin_user: ClassVar[str]
    #: The family's error; a failed start-up raises it (the port-in-use retry catches it).
    _error: ClassVar[type[SecretClientError]]
    #: Names the temp dir (``secretclient-<family>-…``) and the watchdog process.
    _family: ClassVar[str]
    #: The server binary's name, for messages.
    _server_name: ClassVar[str]
    #: What the log is called in messages ("error log", "server log").
    _log_label: ClassVar[str]
    #: Texts of the log that say another process took the port first.
    _port_in_use: ClassVar[tuple[str, ...]]
    #: Whether the server's stdout and stderr go to :attr:`_log_file` (else it writes it itself).
    _output_to_log: ClassVar[bool] = False

    def __init__(
        self,
        tls: bool = False,
        options: Mapping[str, Any] | None = None,
        *,
        base_dir: str | Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.tls = tls
        self.options = dict(options or {})
        self.base_dir = base_dir
        self.startup_timeout = startup_timeout
        self.admin_password = secrets.token_urlsafe(18)
        self.port = 0
        self.directory: Path | None = None
        self.ca_file: Path | None = None
        self.version = ""
        self._certs: TestCertificates | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"{type(self).__name__}({self.host}:{self.port}, tls={self.tls}, {state})"

    # -- paths ----------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.directory is None:
            raise self._error("the server is not started; call start() first")
        return self.directory

    def _require_started(self) -> None:
        if self.port == 0 or self.directory is None:
            raise self._error("the server is not started; call start() first")

    @property
    def datadir(self) -> Path:
        """The server's data directory."""
        return self._dir() / "data"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def _has_started(self) -> bool:
        return self._proc is not None

    @property
    def _log_file(self) -> Path:  # family
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Create the data directory, start the server and wait until the administrator can log in."""
        if self._proc is not None:
            raise self._error("the server is already started")
        self._find_binaries()
        self.directory = Path(tempfile.mkdtemp(prefix=f"secretclient-{self._family}-", dir=self.base_dir))
        atexit.register(self.stop)
        try:
            self._create()
            # Another process may grab the port between our probe and the server's bind.
            for attempt in range(3):
                self.port = free_port()
                try:
                    self._launch()
                    break
                except self._error:
                    if attempt == 2 or not any(s in self._log_tail() for s in self._port_in_use):
                        raise
            self._set_up_admin()
        except BaseException:
            self.stop()
            raise
        return self

    def _find_binaries(self) -> None:  # family
        """Find what the server needs before a directory is made; raise the NotInstalled error."""
        raise NotImplementedError

    def _create(self) -> None:  # family
        """Fill the new directory: the data directory and, with ``tls``, the certificates."""
        raise NotImplementedError

    def _make_certificates(self) -> TestCertificates:
        """With ``tls``: a throwaway CA and server certificate in the directory (see :attr:`ca_file`)."""
        self._certs = make_certificates(self._dir() / "tls")
        self.ca_file = self._certs.ca_file
        return self._certs

    def _command(self) -> list[str]:  # family
        """The command line that runs the server in the foreground."""
        raise NotImplementedError

    def _ready(self) -> bool:  # family
        """Whether the started server takes logins now."""
        raise NotImplementedError

    def _set_up_admin(self) -> None:  # family
        """Give the administrator :attr:`admin_password` and read :attr:`version`."""
        raise NotImplementedError

    def _kill_server(self, pid: int) -> None:
        """Kill the server, in its own session as ``pid``, and whatever it spawned."""
        os.killpg(pid, signal.SIGKILL)

    def _run_setup(self, cmd: list[str], what: str) -> None:
        """Run a set-up command (install-db, initdb) in the directory; raise with its output's tail."""
        result = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self._dir(), timeout=120, check=False
        )
        if result.returncode != 0:
            tail = result.stdout.decode(errors="replace")[-2000:]
            raise self._error(f"{what} failed (exit {result.returncode}):\n{tail}")

    def _launch(self) -> None:
        self._log_file.unlink(missing_ok=True)
        with contextlib.ExitStack() as stack:
            out: Any = subprocess.DEVNULL
            if self._output_to_log:
                out = stack.enter_context(open(self._log_file, "wb"))  # the child keeps its own copy
            # Own session, so stop() can kill the server and what it spawned at once.
            self._proc = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self._dir(),
                start_new_session=True,
            )
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, f"{self._family}-watchdog", str(self._proc.pid), str(self._dir())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._kill()
                raise self._error(
                    f"{self._server_name} exited with {code} during start-up; {self._log_label}:\n{self._log_tail()}"
                )
            if self._ready():
                return
            time.sleep(0.02)
        self._kill()
        raise self._error(
            f"{self._server_name} not ready after {self.startup_timeout:.0f} s; "
            f"{self._log_label}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 25) -> str:
        try:
            text = self._log_file.read_text(errors="replace")
        except (OSError, self._error):
            return f"(no {self._log_label})"
        return "\n".join(text.splitlines()[-lines:])

    def _kill(self) -> None:
        # The watchdog first, so it never acts on a pid we have already reaped.
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait(timeout=10)
            if watchdog.stdin is not None:
                watchdog.stdin.close()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._kill_server(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):  # a zombie we cannot reap
            proc.wait(timeout=10)

    def stop(self) -> None:
        """Kill the server (no clean shutdown: the data is thrown away) and delete its directory.

        Safe to call more than once.
        """
        self._kill()
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        atexit.unregister(self.stop)

    # -- helpers for the families' SQL -----------------------------------------------------

    def _fresh_name(self, prefix: str) -> str:
        """A new database name starting with ``prefix``; refuses a prefix that is not a plain word."""
        if not _NAME_RE.fullmatch(prefix):
            raise InvalidParameter("a database prefix must be 1-40 letters, digits or underscores")
        return f"{prefix}_{next(self._names)}_{secrets.token_hex(3)}"
