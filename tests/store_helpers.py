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


class AwsLabelledStore:
    """A real EmbeddedStore seen through AWS Secrets Manager's stage labels: every label in
    (arguments) and out (secrets, versions) is translated, so code above the store that
    hard-codes ``ACSCurrent`` finds nothing."""

    from secretclient.model import ACS_STAGES as _INNER
    from secretclient.model import AWS_STAGES as stage_labels

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def _in(self, stage: str | None) -> str | None:
        if stage is None:
            return None
        role = self.stage_labels.role(stage)
        if role is None:
            if self._INNER.role(stage) is not None:  # an ACS label means nothing here
                return f"unknown-{stage}"
            return stage
        return self._INNER.label(role)

    def _out(self, stages: Any) -> frozenset[str]:
        return frozenset(self.stage_labels.label(self._INNER.role(s) or s) for s in stages)

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Any:
        import dataclasses

        secret = self.inner.get_secret(name, stage=self._in(stage), version_id=version_id)
        return dataclasses.replace(secret, stages=self._out(secret.stages))

    def put_secret(self, name: str, version_id: str, data: Any, *, stages: Any = None) -> Any:
        import dataclasses

        inner_stages = None if stages is None else [self._in(s) for s in stages]
        info = self.inner.put_secret(name, version_id, data, stages=inner_stages)
        return dataclasses.replace(info, stages=self._out(info.stages))

    def update_stage(self, name: str, stage: str, **kwargs: Any) -> None:
        self.inner.update_stage(name, self._in(stage), **kwargs)

    def list_versions(self, name: str, **kwargs: Any) -> Any:
        import dataclasses

        return [dataclasses.replace(v, stages=self._out(v.stages)) for v in self.inner.list_versions(name, **kwargs)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
