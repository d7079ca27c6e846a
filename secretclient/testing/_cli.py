"""The command line every emulator shares (``python -m secretclient.testing.kms_emulator``,
``….ncp_emulator``): address and TLS options, fault-injection options, and serving until Ctrl-C or
SIGTERM with a few lines saying how to reach it."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from secretclient.errors import InvalidParameter
from secretclient.testing._faults import Faults

__all__ = ["emulator_parser", "serve_until_signalled"]


class _Emulator(Protocol):
    @property
    def faults(self) -> Faults: ...

    @property
    def proxy_url(self) -> str: ...

    def start(self) -> Any: ...

    def stop(self) -> None: ...


E = TypeVar("E", bound=_Emulator)


def emulator_parser(
    module: str, doc: str | None, *, port: int, error_code: str, throttled: str
) -> argparse.ArgumentParser:
    """The parser with ``--host``, ``--port``, ``--https`` and the fault group (``--latency``,
    ``--error-rate``, ``--error-code``, ``--throttle``); the emulator adds its own options."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=(doc or "").split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help=f"0 picks a free port (default {port})")
    parser.add_argument("--https", action="store_true", help="serve HTTPS with a throwaway CA")
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="delay every answer")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="RATE",
                        help="answer this fraction (0..1) of requests with --error-code")
    faults.add_argument("--error-code", default=error_code, help="the code of injected errors")
    faults.add_argument("--throttle", type=float, default=None, metavar="RPS",
                        help=f"answer {throttled} above this many requests per second")
    return parser


def serve_until_signalled(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    make: Callable[[], E],
    describe: Callable[[E], list[str]],
) -> None:
    """Make the emulator, apply the fault options (a bad one is a usage error), serve it, print
    ``describe(emulator)`` and return once SIGINT or SIGTERM came and the emulator stopped."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emu = make()
    try:
        emu.faults.set_latency(args.latency)
        emu.faults.set_error_rate(args.error_rate, code=args.error_code)
        emu.faults.throttle(args.throttle)
    except InvalidParameter as exc:
        parser.error(str(exc))
    emu.start()
    try:
        for line in describe(emu):
            print(line, flush=True)
        print(f"proxy mode: HTTPS_PROXY={emu.proxy_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
