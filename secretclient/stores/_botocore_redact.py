"""Keep Secrets Manager data out of botocore's DEBUG logs.

At DEBUG, ``botocore.endpoint`` logs every request dict (its body holds ``SecretString``)
and ``botocore.parsers`` every response body (``GetSecretValue``'s value,
``GetRandomPassword``'s password). botocore has no switch for that, so a
:class:`logging.Filter` (the logging module's documented hook) on those two loggers
replaces such bodies in the record before any handler sees it. Records are never dropped,
other services' bodies are left as they are, and nothing is configured otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "install"]

REDACTED = b"<secret data redacted by secretclient>"
_MARKERS = (b'"SecretString"', b'"SecretBinary"', b'"RandomPassword"', b'"SecretValues"')
_LOGGERS = ("botocore.endpoint", "botocore.parsers")
_lock = threading.Lock()
_installed = False


def _carries_secret(body: Any) -> bool:
    if isinstance(body, str):
        body = body.encode("utf-8", "replace")
    return isinstance(body, (bytes, bytearray)) and any(m in body for m in _MARKERS)


class _SecretBodyFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(self._redact(a) for a in args)
        return True

    @staticmethod
    def _redact(arg: Any) -> Any:
        if _carries_secret(arg):
            return REDACTED
        if isinstance(arg, Mapping) and _carries_secret(arg.get("body")):
            return {**arg, "body": REDACTED}
        return arg


def install() -> None:
    """Add the filter to botocore's request and response loggers, once per process."""
    global _installed
    with _lock:
        if _installed:
            return
        for name in _LOGGERS:
            logging.getLogger(name).addFilter(_SecretBodyFilter())
        _installed = True
