"""NCP as the rotation engine needs it: one rotation job (:class:`JobView`), or the store
outside a job (:class:`StoreView`).

A job seen as a store, so that the rotation engine runs it unchanged.

The engine stores ACSPending, changes the database, tests, and promotes with a compare-and-set.
Here those become the job's calls: ``put_secret(stages=[PENDING])`` is ``PUT /pending``, moving
CURRENT onto the pending version is ``POST /complete``, ``random_password`` is
``/generate-random-secret``. The chain comes from ``/start`` and is kept up to date locally
(nobody else writes it while the job runs: NCP marks the secret *rotating*).

The view speaks the engine's labels (KMS's), and refuses a pending value that changes a key
outside the secret's ``rotationTargets``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from secretclient.errors import InvalidParameter, SecretNotFound, VersionConflict
from secretclient.model import (
    ACS_STAGES,
    DEFAULT_PASSWORD_POLICY,
    NCP_STAGES,
    PasswordPolicy,
    Secret,
    SecretInfo,
    Stage,
    StageLabels,
    VersionInfo,
)
from secretclient.stores.ncp import NcpRotationJob, NcpSecretManagerStore

__all__ = ["JobView", "StoreView", "check_targets"]

_ORDER = ("pending", "active", "previous")  # NCP labels, newest first


def check_targets(active: str, pending: str, targets: Sequence[str]) -> None:
    """Refuse a pending value that changes keys outside ``targets`` (names keys, never values)."""
    try:
        old, new = json.loads(active), json.loads(pending)
    except ValueError:
        return  # not JSON: NCP's targets cannot apply key by key
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    outside = [k for k in changed if k not in targets]
    if outside:
        raise InvalidParameter(
            f"the rotation would change {', '.join(outside)}, which the secret's rotationTargets "
            f"({', '.join(targets) or 'none'}) do not name: add them to rotationTargets"
        )


def _acs(labels: frozenset[str] | set[str]) -> frozenset[str]:
    """NCP labels as the engine's (KMS) labels."""
    return frozenset(ACS_STAGES.label(NCP_STAGES.role(lb) or lb) for lb in labels)


def _role(stage: str) -> Stage:
    role = ACS_STAGES.role(stage) or NCP_STAGES.role(stage)
    if role is None:
        raise InvalidParameter(f"NCP secrets have only the three stages, not {str(stage)[:64]!r}")
    return role


class JobView:
    """The secret of a started job as a :class:`~secretclient.stores.base.SecretStore`."""

    stage_labels: StageLabels = ACS_STAGES

    def __init__(self, store: NcpSecretManagerStore, job: NcpRotationJob, chain: dict[str, str],
                 rotation_targets: Sequence[str]) -> None:
        self.store = store
        self.job = job
        self.secret_id = job.secret_id
        self._chain = dict(chain)
        self.rotation_targets = tuple(rotation_targets)
        self._ids = {label: store.version_id(job.secret_id, value) for label, value in self._chain.items()}
        self.completed = False

    def __repr__(self) -> str:
        return f"JobView(secret_id={self.secret_id!r})"

    def _ncp(self, stage: str) -> str:
        return NCP_STAGES.label(_role(stage))

    def _labels(self, vid: str) -> set[str]:
        return {label for label, v in self._ids.items() if v == vid}

    def _is_self(self, name: str) -> bool:
        return name == self.secret_id

    # -- read --------------------------------------------------------------------------------

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Secret:
        if not self._is_self(name):
            return self.store.get_secret(name, stage=stage, version_id=version_id)  # e.g. the MasterSecret
        label = self._ncp(stage) if stage is not None else None
        if version_id is not None:
            labels = self._labels(version_id)
            if not labels or (label is not None and label not in labels):
                raise SecretNotFound(f"secret {name!r} has no such version in this job", code="NOT_FOUND")
        else:
            label = label or "active"
            if label not in self._chain:
                raise SecretNotFound(f"secret {name!r} has no {label} value", code="NOT_FOUND")
            version_id = self._ids[label]
            labels = self._labels(version_id)
        value = next(self._chain[lb] for lb in _ORDER if lb in labels)
        return Secret(name=name, version_id=version_id, stages=_acs(labels), data=value, secret_type="Generic")

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        if not self._is_self(name):
            return self.store.list_versions(name, include_deprecated=include_deprecated)
        seen: dict[str, set[str]] = {}
        for label in _ORDER:
            if label in self._chain:
                seen.setdefault(self._ids[label], set()).add(label)
        return [VersionInfo(vid, _acs(labels)) for vid, labels in seen.items()]

    def describe(self, name: str) -> SecretInfo:
        return self.store.describe(name)

    def random_password(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        return self.job.generate_random_secret(policy)

    # -- write: only what the job protocol allows ------------------------------------------

    def put_secret(
        self, name: str, version_id: str, data: str | bytes, *, stages: Sequence[str] | None = None
    ) -> VersionInfo:
        if not self._is_self(name) or not stages or [self._ncp(s) for s in stages] != ["pending"]:
            raise InvalidParameter("a rotation job stores only its own secret's pending value")
        if not isinstance(data, str):
            raise InvalidParameter("NCP secret values are text")
        check_targets(self._chain["active"], data, self.rotation_targets)
        self.job.update_pending(data)
        self._chain["pending"] = data
        self._ids["pending"] = version_id
        return VersionInfo(version_id, frozenset({ACS_STAGES.pending}))

    def update_stage(
        self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None
    ) -> None:
        label = self._ncp(stage)
        if not self._is_self(name):
            raise InvalidParameter("a rotation job changes only its own secret")
        if label == "active" and move_to is not None:
            if "active" in self._labels(move_to):
                return
            if "pending" not in self._labels(move_to):
                raise VersionConflict("only the pending value can become active in a rotation job",
                                      code="INVALID_STATUS")
            if remove_from is not None and "active" not in self._labels(remove_from):
                raise VersionConflict("active moved during the rotation", code="INVALID_STATUS")
            self.job.complete()
            self.completed = True
            self._chain = {"previous": self._chain["active"], "active": self._chain["pending"]}
            self._ids = {"previous": self._ids["active"], "active": self._ids["pending"]}
            return
        if label == "pending" and move_to is None:
            if remove_from is not None and "pending" not in self._labels(remove_from):
                raise VersionConflict("pending is not on that version", code="INVALID_STATUS")
            raise InvalidParameter("a rotation job cannot remove its pending value: fail the job instead")
        raise InvalidParameter("a rotation job moves only pending to active (complete)")

    def create_secret(self, *args: Any, **kwargs: Any) -> SecretInfo:
        raise InvalidParameter("a rotation job does not create secrets")

    def delete_secret(self, name: str, *, recovery_window_days: int | None = 30, force: bool = False) -> None:
        raise InvalidParameter("a rotation job does not delete secrets")

    def close(self) -> None:
        pass

    def server_time(self) -> datetime | None:
        """NCP's time (see :meth:`NcpSecretManagerStore.server_time`): ages are measured with it."""
        return self.store.server_time()


class StoreView:
    """An :class:`NcpSecretManagerStore` presented to the engine outside a job (in-process
    :class:`~rotation.Rotator` / :class:`~rotation.Scheduler`).

    Stages are translated to the engine's labels; the engine's VersionIds for the pending
    values it writes are kept as aliases of the store's derived ids (in this process: a
    rotation resumed by another process simply sees the derived id). Pending values must keep
    every key outside the secret's ``rotationTargets``. Promotion is the store's
    ``update_stage`` (one Update Secret Value request after a compare-and-set read).
    """

    stage_labels: StageLabels = ACS_STAGES

    def __init__(self, store: NcpSecretManagerStore) -> None:
        self.store = store
        self._alias: dict[tuple[str, str], str] = {}  # (name, engine id) -> derived id
        self._back: dict[tuple[str, str], str] = {}  # (name, derived id) -> engine id

    def __repr__(self) -> str:
        return f"StoreView({self.store!r})"

    def server_time(self) -> datetime | None:
        """NCP's time (see :meth:`NcpSecretManagerStore.server_time`): ages are measured with it."""
        return self.store.server_time()

    def _to_store(self, name: str, vid: str | None) -> str | None:
        return None if vid is None else self._alias.get((name, vid), vid)

    def _to_engine(self, name: str, vid: str) -> str:
        return self._back.get((name, vid), vid)

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Secret:
        secret = self.store.get_secret(name, stage=None if stage is None else _role(stage),
                                       version_id=self._to_store(name, version_id))
        created = None
        if NCP_STAGES.current in secret.stages:
            # NCP dates no value: the active one is as old as the secret's last rotation or
            # update (what the Scheduler's due time and the engine's due_after need).
            info = self.store.describe(name)
            created = info.last_rotation or info.updated or info.created
        return Secret(name=name, version_id=self._to_engine(name, secret.version_id), stages=_acs(secret.stages),
                      data=secret.data, created=created, secret_type="Generic")

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        return [VersionInfo(self._to_engine(name, v.version_id), _acs(v.stages))
                for v in self.store.list_versions(name)]

    def put_secret(
        self, name: str, version_id: str, data: str | bytes, *, stages: Sequence[str] | None = None
    ) -> VersionInfo:
        if not stages or [_role(s) for s in stages] != [Stage.PENDING]:
            raise InvalidParameter("the engine stores new NCP values only as pending")
        if not isinstance(data, str):
            raise InvalidParameter("NCP secret values are text")
        chain = self.store.chain(name)
        check_targets(chain.chain["active"], data, chain.rotation_targets)
        info = self.store.put_secret(name, None, data, stages=[Stage.PENDING])
        self._alias[(name, version_id)] = info.version_id
        self._back[(name, info.version_id)] = version_id
        return VersionInfo(version_id, _acs(info.stages))

    def update_stage(
        self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None
    ) -> None:
        self.store.update_stage(name, _role(stage), move_to=self._to_store(name, move_to),
                                remove_from=self._to_store(name, remove_from))

    def describe(self, name: str) -> SecretInfo:
        return self.store.describe(name)

    def random_password(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        return self.store.random_password(policy)

    def create_secret(self, *args: Any, **kwargs: Any) -> SecretInfo:
        return self.store.create_secret(*args, **kwargs)

    def delete_secret(self, name: str, *, recovery_window_days: int | None = 30, force: bool = False) -> None:
        self.store.delete_secret(name, recovery_window_days=recovery_window_days, force=force)

    def close(self) -> None:
        self.store.close()
