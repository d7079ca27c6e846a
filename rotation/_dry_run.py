"""Dry run: what a rotation would do now — accounts, grant changes, SQL with passwords
redacted, and the checks that would fail — without changing anything."""

from __future__ import annotations

from dataclasses import dataclass

from secretclient.errors import SecretClientError
from secretclient.model import Stage, StageLabels, stage_labels
from secretclient.stores.base import SecretStore

from .lock import Lock
from .status import stage_holder
from .strategies.base import Check, RotationContext, Strategy, StrategyPlan

__all__ = ["Plan", "make_plan"]

#: Stands in for the password in a dry run; it is never sent anywhere (statements are redacted).
_PLACEHOLDER = "<generated at rotation time>"
_NOTHING = StrategyPlan()


@dataclass(frozen=True, slots=True)
class Plan:
    """A dry run's result. ``ok`` is False when a check would make the rotation fail."""

    secret_name: str
    strategy: str
    current_version_id: str | None
    pending_version_id: str | None
    steps: tuple[str, ...]
    #: The store's labels for the three roles (how the lines name them).
    labels: StageLabels
    accounts: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    grant_changes: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def resumes(self) -> bool:
        return self.pending_version_id is not None

    def lines(self) -> list[str]:
        out = [f"plan for {self.secret_name} ({self.strategy})",
               f"{self.labels.current}: {self.current_version_id}",
               f"{self.labels.pending}: {self.pending_version_id or '(new version)'}"
               + (" — resuming" if self.resumes else ""),
               f"steps: {' -> '.join(self.steps)}"]
        out += [f"account: {a}" for a in self.accounts]
        out += [f"grant change: {g}" for g in self.grant_changes]
        out += [f"sql: {s}" for s in self.statements]
        out += [
            f"check: {'ok  ' if c.ok else 'FAIL'} {c.name}{' — ' + c.detail if c.detail else ''}" for c in self.checks
        ]
        return out


def make_plan(store: SecretStore, strategy: Strategy, ctx: RotationContext, lock: Lock) -> Plan:
    """The dry run behind :meth:`Rotator.plan`: reads only (the lock is taken and released at once)."""
    name = ctx.secret_name
    labels = stage_labels(store)
    versions = store.list_versions(name)
    current_v, pending_v = stage_holder(versions, labels.current), stage_holder(versions, labels.pending)
    current_vid = current_v.version_id if current_v else None
    pending_vid = pending_v.version_id if pending_v else None
    checks: list[Check] = []

    def result(steps: tuple[str, ...], sp: StrategyPlan = _NOTHING) -> Plan:
        return Plan(name, strategy.name, current_vid, pending_vid, steps, labels, sp.accounts, sp.statements,
                    sp.grant_changes, (*checks, *sp.checks))

    try:
        handle = lock.acquire(name, 0.0)
        checks.append(Check("lock is free", handle is not None, "" if handle else "another rotator holds it"))
    except SecretClientError as exc:
        handle = None
        checks.append(Check("lock can be taken", False, str(exc)))
    if handle is not None:
        handle.release()

    if pending_vid is not None and pending_vid == current_vid:
        return result(("end",))
    current = store.get_secret(name, stage=Stage.CURRENT)
    steps = ("set", "test", "end") if pending_vid else ("new", "set", "test", "end")
    try:
        strategy.preflight(ctx, current)
        checks.append(Check("secret and accounts are valid", True))
    except SecretClientError as exc:
        checks.append(Check("secret and accounts are valid", False, str(exc)))
        return result(steps)
    creds = current.db_credentials()
    if pending_vid:
        pending = store.get_secret(name, version_id=pending_vid).db_credentials()
    else:
        pending = strategy.pending_credentials(creds, _PLACEHOLDER)
    try:
        return result(steps, strategy.plan(ctx, creds, pending))
    except SecretClientError as exc:
        checks.append(Check("database can be prepared", False, str(exc)))
        return result(steps)
