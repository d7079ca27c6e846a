"""One NCP rotation job seen as a store, so that the rotation engine runs it unchanged.

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

__all__ = ["JobView"]

_ORDER = ("pending", "active", "previous")  # NCP labels, newest first


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
        role = ACS_STAGES.role(stage) or NCP_STAGES.role(stage)
        if role is None:
            raise InvalidParameter(f"a rotation job has only the three stages, not {str(stage)[:64]!r}")
        return NCP_STAGES.label(role)

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
        stages = frozenset(ACS_STAGES.label(NCP_STAGES.role(lb) or Stage.CURRENT) for lb in labels)
        return Secret(name=name, version_id=version_id, stages=stages, data=value, secret_type="Generic")

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        if not self._is_self(name):
            return self.store.list_versions(name, include_deprecated=include_deprecated)
        seen: dict[str, set[str]] = {}
        for label in _ORDER:
            if label in self._chain:
                seen.setdefault(self._ids[label], set()).add(ACS_STAGES.label(NCP_STAGES.role(label) or label))
        return [VersionInfo(vid, frozenset(stages)) for vid, stages in seen.items()]

    def describe(self, name: str) -> SecretInfo:
        return self.store.describe(name)

    def random_password(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        return self.job.generate_random_secret(policy)

    # -- write: only what the job protocol allows ------------------------------------------

    def put_secret(self, name: str, version_id: str, data: str | bytes, *, stages: Sequence[str] | None = None) -> VersionInfo:
        if not self._is_self(name) or not stages or [self._ncp(s) for s in stages] != ["pending"]:
            raise InvalidParameter("a rotation job stores only its own secret's pending value")
        if not isinstance(data, str):
            raise InvalidParameter("NCP secret values are text")
        self._check_targets(data)
        self.job.update_pending(data)
        self._chain["pending"] = data
        self._ids["pending"] = version_id
        return VersionInfo(version_id, frozenset({ACS_STAGES.pending}))

    def _check_targets(self, data: str) -> None:
        """Refuse a pending value that changes keys outside rotationTargets (names keys, never values)."""
        try:
            active, pending = json.loads(self._chain["active"]), json.loads(data)
        except ValueError:
            return  # not JSON: NCP's targets cannot apply key by key
        if not isinstance(active, dict) or not isinstance(pending, dict):
            return
        changed = sorted(k for k in set(active) | set(pending) if active.get(k) != pending.get(k))
        outside = [k for k in changed if k not in self.rotation_targets]
        if outside:
            raise InvalidParameter(
                f"the rotation would change {', '.join(outside)}, which the secret's rotationTargets "
                f"({', '.join(self.rotation_targets) or 'none'}) do not name: add them to rotationTargets"
            )

    def update_stage(self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None) -> None:
        label = self._ncp(stage)
        if not self._is_self(name):
            raise InvalidParameter("a rotation job changes only its own secret")
        if label == "active" and move_to is not None:
            if "active" in self._labels(move_to):
                return
            if "pending" not in self._labels(move_to):
                raise VersionConflict("only the pending value can become active in a rotation job", code="INVALID_STATUS")
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

    def delete_secret(self, name: str) -> None:
        raise InvalidParameter("a rotation job does not delete secrets")

    def close(self) -> None:
        pass
