"""A counting wrapper of our own SecretStore protocol around a real store (not a mock: every
call reaches the real store), shared by the client and connection tests."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class CountingStore:
    """Passes every call to ``inner`` and counts it by method name.

    ``gate``: when set, ``get_secret`` waits for it (to hold a store read in flight);
    ``fail_with``: when set, every call raises it instead (a store outage).
    """

    def __init__(self, inner: Any, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.gate = gate
        self.calls: Counter[str] = Counter()
        self.fail_with: Exception | None = None

    def _count(self, name: str) -> None:
        self.calls[name] += 1
        if self.fail_with is not None:
            raise self.fail_with

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Any:
        self._count("get_secret")
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        return self.inner.get_secret(name, stage=stage, version_id=version_id)

    def describe(self, name: str) -> Any:
        self._count("describe")
        return self.inner.describe(name)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._count(name)
            return attr(*args, **kwargs)

        return counted

    @property
    def reads(self) -> int:
        return self.calls["get_secret"]

    @property
    def describes(self) -> int:
        return self.calls["describe"]

    def total(self) -> int:
        return sum(self.calls.values())
