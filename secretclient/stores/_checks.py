"""Argument checks every store makes before it calls anything, with one message per rule.

Each check raises :class:`~secretclient.errors.InvalidParameter` (code ``InvalidParameter``,
HTTP 400, as KMS answers) naming what is wrong and what is allowed, never a secret value.
Patterns are matched whole (``fullmatch``): a trailing ``\\n`` or any other control
character is refused, as KMS refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from ..errors import InvalidParameter
from ..model import StageLabels
from .base import MAX_STAGE_LENGTH, MAX_STAGES_PER_VERSION

__all__ = [
    "check_data",
    "check_name",
    "check_put_stages",
    "check_read",
    "check_recovery_window",
    "check_rotation_interval",
    "check_stage",
    "check_stage_move",
    "check_stages",
    "check_version_id",
    "invalid",
]

_NAME = re.compile(r"[A-Za-z0-9_/+=.@-]{1,192}")
_ARN = re.compile(r"acs:kms:[a-z0-9-]*:[A-Za-z0-9]*:secret/(.+)")
_VERSION = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_STAGE = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_STAGE_LENGTH}}}")
#: KMS's bounds for ``RecoveryWindowInDays``.
MIN_RECOVERY_DAYS, MAX_RECOVERY_DAYS = 7, 30


def invalid(message: str) -> InvalidParameter:
    """The error a store raises for a bad argument."""
    return InvalidParameter(message, code="InvalidParameter", http_status=400)


def check_name(name: Any, *, arn: bool = False) -> None:
    """A secret name; with ``arn=True`` also its ARN (``acs:kms:<region>:<account>:secret/<name>``),
    which KMS accepts wherever a name is."""
    if isinstance(name, str) and arn and name.startswith("acs:"):
        match = _ARN.fullmatch(name)
        if match and _NAME.fullmatch(match.group(1)):
            return
        raise invalid("a secret ARN must be acs:kms:<region>:<account>:secret/<name>")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise invalid("secret name must be 1-192 characters of letters, digits and _ / + = . @ -")


def check_version_id(version_id: Any) -> None:
    if not isinstance(version_id, str) or not _VERSION.fullmatch(version_id):
        raise invalid("VersionId must be 1-64 characters of letters, digits and _ . : -")


def check_stage(stage: Any) -> None:
    if not isinstance(stage, str) or not _STAGE.fullmatch(stage):
        raise invalid(f"a version stage must be 1-{MAX_STAGE_LENGTH} characters of letters, digits and _ . -")


def check_read(labels: StageLabels, stage: str | None, version_id: str | None) -> str | None:
    """The label a read asks for (``stage`` as a role or the store's own label; None for any),
    after checking it and ``version_id``."""
    label = labels.label(stage) if stage is not None else None
    if version_id is not None:
        check_version_id(version_id)
    if label is not None:
        check_stage(label)
    return label


def check_put_stages(labels: StageLabels, stages: Any) -> list[str] | None:
    """The ``stages`` of a put (roles or the store's own labels) as distinct, valid labels; None
    (no stages given) stays None."""
    if stages is None:
        return None
    if not isinstance(stages, (str, bytes)):
        stages = [labels.label(s) for s in stages]
    return check_stages(stages)


def check_stage_move(labels: StageLabels, stage: str, move_to: str | None, remove_from: str | None) -> str:
    """The label ``update_stage`` moves (``stage`` as a role or the store's own label), after
    checking it and both versions, at least one of which must be given."""
    label = labels.label(stage)
    check_stage(label)
    for version in (move_to, remove_from):
        if version is not None:
            check_version_id(version)
    if move_to is None and remove_from is None:
        raise invalid("update_stage needs move_to, remove_from or both")
    return label


def check_stages(stages: Any) -> list[str]:
    """``stages`` as a list of distinct, valid labels (order kept)."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        raise invalid("stages must be a list of stage names, not a string")
    for stage in stages:
        check_stage(stage)
    unique = list(dict.fromkeys(stages))
    if len(unique) > MAX_STAGES_PER_VERSION:
        raise invalid(f"a version may carry at most {MAX_STAGES_PER_VERSION} stages")
    return unique


def check_data(data: Any) -> None:
    if not isinstance(data, (str, bytes)):
        raise invalid("secret data must be str or bytes")


def check_rotation_interval(interval: Any) -> None:
    if interval is not None and (not isinstance(interval, timedelta) or interval.total_seconds() <= 0):
        raise invalid("rotation_interval must be a positive timedelta")


def check_recovery_window(days: Any, force: Any) -> None:
    """``force=True`` deletes at once (the window is then not used); otherwise ``days`` must
    be within KMS's bounds (``None`` stands for the default, 30)."""
    if not isinstance(force, bool):
        raise invalid("force must be True or False")
    if force or days is None:
        return
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_RECOVERY_DAYS <= days <= MAX_RECOVERY_DAYS:
        raise invalid(
            f"recovery_window_days must be a whole number of days from {MIN_RECOVERY_DAYS} to "
            f"{MAX_RECOVERY_DAYS} (or force=True to delete at once)"
        )
