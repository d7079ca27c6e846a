"""Parsing and checking KMS request parameters for the KMS emulator: flags, intervals, stage
lists, tags, filters, and names given as names or ARNs — each refused as KMS refuses it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ._rpc_errors import RpcError, missing

__all__ = [
    "ACCOUNT_ID", "MANAGED_TYPES", "SECRET_TYPES", "arn", "flag", "interval", "iso", "page", "parse_filters",
    "parse_stages", "parse_tag_keys", "parse_tags", "secret_name", "stage", "version_id",
]

#: The account id in the ARNs the emulator hands out.
ACCOUNT_ID = "1234567890123456"
#: The secret types KMS knows; the managed ones are those KMS rotates itself.
SECRET_TYPES = frozenset({"Generic", "Rds", "Redis", "RAMCredentials", "ECS", "PolarDB"})
MANAGED_TYPES = SECRET_TYPES - {"Generic"}

# Fullmatch patterns (a trailing newline or any control character is refused, as by KMS).
_NAME = re.compile(r"[A-Za-z0-9_/+=.@-]{1,192}")
_VERSION = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_STAGE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ARN = re.compile(r"acs:kms:([a-z0-9-]+):(\d+):secret/(.+)", re.DOTALL)


def invalid(name: str, why: str = "") -> RpcError:
    return RpcError("InvalidParameter", f"The specified parameter {name} is not valid.{why}", 400)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def flag(params: Mapping[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise invalid(name)


def interval(raw: str) -> timedelta:
    """``604800s``, ``7d``, ``12h``, ``30m`` or plain seconds; KMS's 6 hours to 365 days."""
    text = raw.strip()
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}.get(text[-1:].lower()) if text else None
    number = text[:-1] if unit else text
    if not number.isascii() or not number.isdigit():
        raise invalid("RotationInterval")
    value = timedelta(seconds=int(number) * (unit or 1))
    if not timedelta(hours=6) <= value <= timedelta(days=365):
        raise invalid("RotationInterval", " It must be from 6 hours to 365 days.")
    return value


def page(params: Mapping[str, str], default_size: int) -> tuple[int, int]:
    """``(PageNumber, PageSize)``: 1 or more, and 1 to 100 (default ``default_size``)."""
    try:
        number = int(params.get("PageNumber") or 1)
        size = int(params.get("PageSize") or default_size)
    except ValueError:
        raise invalid("PageNumber or PageSize") from None
    if number < 1 or not 1 <= size <= 100:
        raise invalid("PageNumber or PageSize")
    return number, size


def secret_name(params: Mapping[str, str], region: str) -> str:
    """``SecretName``, given as a name or as this region's ARN ``acs:kms:<region>:<account>:secret/<name>``."""
    raw = params.get("SecretName")
    if raw is None or raw == "":
        raise missing("SecretName")
    m = _ARN.fullmatch(raw)
    if m:
        if m.group(1) != region or m.group(2) != ACCOUNT_ID:
            raise RpcError("Forbidden.ResourceNotFound", "The resource is not found.", 404)
        raw = m.group(3)
    if not _NAME.fullmatch(raw):
        raise invalid("SecretName", " Use 1-192 letters, digits and _ / + = . @ -.")
    return raw


def arn(region: str, name: str) -> str:
    return f"acs:kms:{region}:{ACCOUNT_ID}:secret/{name}"


def version_id(value: str, name: str = "VersionId") -> str:
    if not _VERSION.fullmatch(value):
        raise invalid(name, " Use 1-64 letters, digits and _ . : -.")
    return value


def stage(value: str, name: str = "VersionStage") -> str:
    if not _STAGE.fullmatch(value):
        raise invalid(name, " Use 1-64 letters, digits and _ . -.")
    return value


def parse_stages(raw: str) -> list[str]:
    """``["ACSPending"]`` (what the SDK users send), ``{"VersionStage": [...]}`` or one label."""
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    if isinstance(value, dict):
        value = value.get("VersionStage", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise invalid("VersionStages")
    return [stage(s, "VersionStages") for s in value]


def parse_tags(raw: str) -> dict[str, str]:
    """``[{"TagKey": "k", "TagValue": "v"}, ...]``: at most 10; keys not ``acs:``/``aliyun``."""
    try:
        value: Any = json.loads(raw)
    except ValueError:
        raise invalid("Tags") from None
    if not isinstance(value, list) or not value or len(value) > 10:
        raise invalid("Tags", " Give 1 to 10 tags.")
    tags: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("TagKey"), str) or not isinstance(
            item.get("TagValue"), str
        ):
            raise invalid("Tags")
        key, val = item["TagKey"], item["TagValue"]
        if not 1 <= len(key) <= 128 or len(val) > 256 or key.lower().startswith(("acs:", "aliyun")):
            raise invalid("Tags")
        if any(ord(c) < 32 or ord(c) == 127 for c in key + val):
            raise invalid("Tags")
        tags[key] = val
    return tags


def parse_tag_keys(raw: str) -> list[str]:
    """``["k1","k2"]`` (as documented) or ``k1,k2``."""
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = [k.strip() for k in raw.split(",")]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(k, str) and k for k in value):
        raise invalid("TagKeys")
    return value


def parse_filters(raw: str | None) -> list[tuple[str, list[str]]]:
    """``[{"Key": "SecretName", "Values": ["a", "b"]}]``: keys SecretName, Description, TagKey,
    TagValue; at most one filter of at most 10 values (ListSecrets)."""
    if not raw:
        return []
    try:
        value: Any = json.loads(raw)
    except ValueError:
        raise invalid("Filters") from None
    if not isinstance(value, list) or len(value) > 1:
        raise invalid("Filters")
    out: list[tuple[str, list[str]]] = []
    for item in value:
        if not isinstance(item, dict) or item.get("Key") not in ("SecretName", "Description", "TagKey", "TagValue"):
            raise invalid("Filters")
        values = item.get("Values", [])
        if not isinstance(values, list) or len(values) > 10 or not all(isinstance(v, str) for v in values):
            raise invalid("Filters")
        out.append((item["Key"], values))
    return out
