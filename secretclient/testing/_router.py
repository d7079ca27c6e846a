"""ProxyRouter: one HTTP proxy in front of several emulators."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from secretclient.errors import InvalidParameter

from ._http import HttpService, RpcHandler

if TYPE_CHECKING:
    from .rpc_server import RpcEmulator

__all__ = ["ProxyRouter"]


class ProxyRouter(HttpService):
    """One HTTP proxy in front of several emulators, for code that hard-codes service host names.

    Set ``HTTPS_PROXY`` and ``HTTP_PROXY`` to :attr:`proxy_url` and ``ALIBABA_CLOUD_CA_BUNDLE``
    to :attr:`ca_file` (the emulators' CAs in one bundle). A ``CONNECT host:443`` tunnel, or a
    plain-HTTP request for ``http://host/…``, is served by the emulator whose
    :meth:`RpcEmulator.answers_host` accepts the host (``kms-vpc.<region>.aliyuncs.com``: the
    KMS emulator; ``rds.aliyuncs.com``: the RDS one), in this process, over the emulator's own
    TLS certificate. Other hosts get ``502``: nothing ever leaves the machine.
    """

    handler_class = RpcHandler

    def __init__(self, *emulators: RpcEmulator, host: str = "127.0.0.1", port: int = 0) -> None:
        if not emulators:
            raise InvalidParameter("ProxyRouter needs at least one emulator")
        super().__init__(host, port)
        self.emulators = emulators

    def __repr__(self) -> str:
        state = self.proxy_url if self._server is not None else "stopped"
        return f"ProxyRouter({state}, {len(self.emulators)} emulators)"

    @property
    def ca_file(self) -> Path:
        """A CA bundle holding every emulator's CA."""
        with self._lock:
            if self._tmpdir is None:
                self._tmpdir = tempfile.mkdtemp(prefix="proxy-router-")
                bundle = Path(self._tmpdir) / "ca-bundle.pem"
                bundle.write_text("".join(Path(e.ca_file).read_text() for e in self.emulators))
            return Path(self._tmpdir) / "ca-bundle.pem"

    def route(self, hostname: str) -> RpcEmulator | None:
        """The emulator that answers ``hostname``, if any."""
        return next((e for e in self.emulators if e.answers_host(hostname)), None)
