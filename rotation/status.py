"""``status``: a secret's versions and stages, last and next rotation — read only, no values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from secretclient.model import StageLabels, VersionInfo, stage_labels
from secretclient.stores.base import SecretStore

__all__ = ["Status", "make_status", "stage_holder"]


def stage_holder(versions: list[VersionInfo] | tuple[VersionInfo, ...], stage: str) -> VersionInfo | None:
    """The version carrying ``stage``, if any."""
    return next((v for v in versions if stage in v.stages), None)


@dataclass(frozen=True, slots=True)
class Status:
    """Where a secret's rotation stands. ``last_rotation`` is the CURRENT version's creation time."""

    secret_name: str
    versions: tuple[VersionInfo, ...]
    current_version_id: str | None
    pending_version_id: str | None
    previous_version_id: str | None
    last_rotation: datetime | None
    next_rotation: datetime | None
    rotation_interval: timedelta | None
    #: The store's labels for the three roles (how the lines name them).
    labels: StageLabels
    #: Live database sessions per (stage label, account, client host, count), when the strategy
    #: can count them (empty otherwise); ``sessions_error`` says why they could not be counted.
    sessions: tuple[tuple[str, str, str, int], ...] = ()
    sessions_error: str = ""

    @property
    def in_progress(self) -> bool:
        """An PENDING version exists (a rotation is running or was interrupted)."""
        return self.pending_version_id is not None

    def lines(self) -> list[str]:
        out = [f"secret {self.secret_name}"]
        for v in self.versions:
            created = v.created.isoformat(timespec="seconds") if v.created else "?"
            out.append(f"  {v.version_id}  {created}  {', '.join(sorted(v.stages)) or '-'}")
        last = self.last_rotation.isoformat(timespec="seconds") if self.last_rotation else "unknown"
        out.append(f"last rotation: {last}")
        next_ = self.next_rotation.isoformat(timespec="seconds") if self.next_rotation else "not scheduled"
        out.append(f"next rotation: {next_}")
        for stage, account, host, count in self.sessions:
            out.append(
                f"sessions: {stage} {account}: {count} from {host}" if count else f"sessions: {stage} {account}: none"
            )
        if self.sessions_error:
            out.append(f"sessions: unknown ({self.sessions_error})")
        if self.in_progress:
            out.append(f"rotation in progress or interrupted: {self.labels.pending} is {self.pending_version_id}")
        return out


def make_status(store: SecretStore, secret_name: str, interval: timedelta | None = None) -> Status:
    labels = stage_labels(store)
    versions = tuple(store.list_versions(secret_name))
    current = stage_holder(versions, labels.current)
    pending = stage_holder(versions, labels.pending)
    previous = stage_holder(versions, labels.previous)
    planned = None
    if interval is None:
        # KMS gives a Generic secret no interval: the engine's recorded next rotation stands in.
        info = store.describe(secret_name)
        interval, planned = info.rotation_interval, info.next_rotation
    last = current.created if current else None
    return Status(
        secret_name=secret_name,
        versions=versions,
        current_version_id=current.version_id if current else None,
        pending_version_id=pending.version_id if pending else None,
        previous_version_id=previous.version_id if previous else None,
        last_rotation=last,
        next_rotation=(last + interval) if (last and interval) else planned,
        rotation_interval=interval,
        labels=labels,
    )
