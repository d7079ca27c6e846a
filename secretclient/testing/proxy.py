"""A TCP proxy for tests that injects network faults: latency, resets and silence.

    with FaultProxy(db.host, db.port) as proxy:
        conn = pymysql.connect(host=proxy.host, port=proxy.port, ...)
        proxy.blackhole()        # the server seems to hang
        proxy.pass_through()     # and comes back

Runs in daemon threads on 127.0.0.1; every wait is bounded and the proxy stops itself after
``max_lifetime`` seconds, so a forgotten proxy cannot hang a test run.
"""

from __future__ import annotations

import atexit
import contextlib
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Literal, Self

from secretclient.errors import InvalidParameter, SecretClientError
from secretclient.testing._lifecycle import StartStop

__all__ = ["FaultProxy", "ProxyMode"]

ProxyMode = Literal["pass", "delay", "reset", "blackhole"]

_TICK = 0.05  # how often idle threads look at the mode and the stop flag


def _abort(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN, like a crashed peer or a middlebox dropping state."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy(StartStop):
    """Forwards 127.0.0.1:``port`` to ``target_host:target_port``; faults switch at runtime.

    Modes:
      * ``pass_through()`` - forward everything (the initial mode);
      * ``delay(seconds)`` - hold each chunk of data, either way, for ``seconds`` before forwarding;
      * ``reset(existing=False)`` - reset new connections right after accepting them; with
        ``existing=True`` reset the open ones too;
      * ``blackhole()`` - accept new connections but never answer, and stop forwarding on open
        ones (data waits in the socket buffers and flows again after ``pass_through()``).

    ``drop_connections()`` resets the open connections once, leaving the mode as it is.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 5.0,
        max_lifetime: float | None = 600.0,
    ) -> None:
        self.target = (target_host, int(target_port))
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.max_lifetime = max_lifetime
        self._mode: ProxyMode = "pass"
        self._delay = 0.0
        self._generation = 0  # bumped to reset the connections open at that moment
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: set[threading.Thread] = set()
        self.accepted = 0

    def __repr__(self) -> str:
        return f"FaultProxy({self.host}:{self.port} -> {self.target[0]}:{self.target[1]}, mode={self._mode})"

    # -- modes ----------------------------------------------------------------------------

    @property
    def mode(self) -> ProxyMode:
        return self._mode

    @property
    def running(self) -> bool:
        """Whether it still accepts connections (False after stop() or max_lifetime)."""
        with self._lock:
            return any(t.name == "fault-proxy-accept" for t in self._threads)

    @property
    def active(self) -> int:
        """Connections being served now."""
        with self._lock:
            return sum(1 for t in self._threads if t.name.startswith("fault-proxy-conn"))

    def pass_through(self) -> None:
        """Forward everything again."""
        with self._lock:
            self._mode, self._delay = "pass", 0.0

    def delay(self, seconds: float) -> None:
        """Hold every chunk of data for ``seconds`` before forwarding it."""
        if not 0 <= seconds <= 300:
            raise InvalidParameter("a proxy delay must be between 0 and 300 seconds")
        with self._lock:
            self._mode, self._delay = "delay", float(seconds)

    def reset(self, existing: bool = False) -> None:
        """Reset new connections; with ``existing=True`` also the ones open now."""
        with self._lock:
            self._mode = "reset"
            if existing:
                self._generation += 1

    def blackhole(self) -> None:
        """Accept but never answer; open connections stop forwarding."""
        with self._lock:
            self._mode = "blackhole"

    def drop_connections(self) -> None:
        """Reset every connection open now; the mode is unchanged."""
        with self._lock:
            self._generation += 1

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def _has_started(self) -> bool:
        return self._listener is not None

    def start(self) -> Self:
        """Listen and serve in background threads."""
        if self._listener is not None:
            raise SecretClientError("the proxy is already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.settimeout(_TICK)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._started = time.monotonic()
        self._spawn(self._accept_loop, "fault-proxy-accept")
        atexit.register(self.stop)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, reset every connection and wait (bounded) for the threads."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        atexit.unregister(self.stop)

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        t = threading.Thread(target=self._run, args=(target, *args), name=name, daemon=True)
        with self._lock:  # started under the lock, so stop() never sees an unstarted thread
            self._threads.add(t)
            t.start()

    def _run(self, target: Callable[..., None], *args: object) -> None:
        try:
            target(*args)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _expired(self) -> bool:
        if self._stop.is_set():
            return True
        if self.max_lifetime is not None and time.monotonic() - self._started > self.max_lifetime:
            self._stop.set()
            return True
        return False

    # -- serving --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        try:
            while not self._expired():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                self.accepted += 1
                if self._mode == "reset":
                    _abort(client)
                    continue
                self._spawn(self._serve, f"fault-proxy-conn-{self.accepted}", client)
        finally:
            # Once stopped (or expired), connecting must be refused rather than hang in the backlog.
            listener.close()

    def _serve(self, client: socket.socket) -> None:
        generation = self._generation
        upstream: socket.socket | None = None
        graceful = False
        try:
            # In a blackhole a new connection is accepted but hears nothing until the mode changes.
            while self._mode == "blackhole" and generation == self._generation:
                if self._stop.wait(_TICK) or self._expired():
                    return
            if self._mode == "reset" or generation != self._generation:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                return
            # Bounded sends: a peer that stops reading cannot pin this thread forever.
            client.settimeout(30.0)
            upstream.settimeout(30.0)
            graceful = self._pump(client, upstream, generation)
        finally:
            for sock in (client, upstream):
                if sock is None:
                    continue
                if graceful:
                    sock.close()
                else:
                    _abort(sock)

    def _pump(self, client: socket.socket, upstream: socket.socket, generation: int) -> bool:
        """Forward until one side closes (True: close the other gently) or a fault or stop (False)."""
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ)
            sel.register(upstream, selectors.EVENT_READ)
            while not self._expired():
                if generation != self._generation:
                    return False
                if self._mode == "blackhole":
                    self._stop.wait(_TICK)
                    continue
                for key, _ in sel.select(_TICK):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = src.recv(65536)
                    except OSError:
                        return False
                    if not data:
                        return True
                    if self._mode == "delay" and self._stop.wait(self._delay):
                        return False
                    if generation != self._generation:
                        return False
                    try:
                        peer[src].sendall(data)
                    except OSError:
                        return False
            return False
