"""The store contract through Alibaba's current KMS SDK, ``alibabacloud_kms20160120`` (Tea),
with its default configuration (signature V3, ACS3-HMAC-SHA256): a thin SecretStore over the
real SDK and real HTTPS, so that the contract suite proves the emulator answers it as KMS would.

Not a mock: every call is the SDK's own request to the emulator. Errors become ours through the
same KMS code table AliyunKmsStore uses.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.utils_models import Config

from secretclient.model import ACS_STAGES, DEFAULT_PASSWORD_POLICY, PasswordPolicy, Secret, SecretInfo, VersionInfo
from secretclient.stores._aliyun_errors import classify
from secretclient.stores.aliyun import _parse_interval, _parse_time

T = TypeVar("T")


def tea_client(emu: Any) -> Client:
    """The Tea client with its default configuration, pointed at the emulator (HTTPS with its
    CA; plain HTTP only when the emulator serves nothing else)."""
    tls = {"ca": str(emu.ca_file)} if emu.https else {"protocol": "http"}
    return Client(
        Config(
            access_key_id=emu.access_key_id,
            access_key_secret=emu.access_key_secret,
            region_id=emu.region,
            endpoint=emu.host_port,
            **tls,
        )
    )


class TeaKmsStore:
    """What the contract suite calls, each as one ``alibabacloud_kms20160120`` request."""

    stage_labels = ACS_STAGES

    def __init__(self, client: Client) -> None:
        self.client = client

    def _do(self, action: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except AlibabaCloudException as exc:
            code = str(exc.code)
            error = classify(code, exc.status_code, action)(f"KMS {action}: {code}", code=code,
                                                            http_status=exc.status_code)
        raise error

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Secret:
        req = models.GetSecretValueRequest(secret_name=name, version_stage=stage and self.stage_labels.label(stage),
                                           version_id=version_id, fetch_extended_config=True)
        body = self._do("GetSecretValue", lambda: self.client.get_secret_value(req)).body
        data: str | bytes = body.secret_data
        if body.secret_data_type == "binary":
            data = base64.b64decode(data)
        return Secret(name=body.secret_name, version_id=body.version_id,
                      stages=frozenset(body.version_stages.version_stage), data=data,
                      created=_parse_time(body.create_time), secret_type=body.secret_type or "Generic")

    def get_dry_run(self, name: str) -> Any:
        req = models.GetSecretValueRequest(secret_name=name, dry_run="true")
        return self._do("GetSecretValue", lambda: self.client.get_secret_value(req))

    @staticmethod
    def _encode(data: str | bytes) -> tuple[str, str]:
        return (base64.b64encode(data).decode(), "binary") if isinstance(data, bytes) else (data, "text")

    def put_secret(self, name: str, version_id: str, data: str | bytes, *,
                   stages: Sequence[str] | None = None) -> VersionInfo:
        payload, kind = self._encode(data)
        req = models.PutSecretValueRequest(
            secret_name=name, version_id=version_id, secret_data=payload, secret_data_type=kind,
            version_stages=json.dumps([self.stage_labels.label(s) for s in stages]) if stages is not None else None,
        )
        body = self._do("PutSecretValue", lambda: self.client.put_secret_value(req)).body
        return VersionInfo(body.version_id, frozenset(body.version_stages.version_stage))

    def update_stage(self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None) -> None:
        req = models.UpdateSecretVersionStageRequest(secret_name=name, version_stage=self.stage_labels.label(stage),
                                                     move_to_version=move_to, remove_from_version=remove_from)
        self._do("UpdateSecretVersionStage", lambda: self.client.update_secret_version_stage(req))

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        req = models.ListSecretVersionIdsRequest(secret_name=name, include_deprecated=str(include_deprecated).lower(),
                                                 page_size=100)
        body = self._do("ListSecretVersionIds", lambda: self.client.list_secret_version_ids(req)).body
        return [VersionInfo(v.version_id, frozenset(v.version_stages.version_stage), _parse_time(v.create_time))
                for v in body.version_ids.version_id]

    def describe(self, name: str) -> SecretInfo:
        req = models.DescribeSecretRequest(secret_name=name, fetch_tags="true")
        b = self._do("DescribeSecret", lambda: self.client.describe_secret(req)).body
        return SecretInfo(
            name=b.secret_name, secret_type=b.secret_type or "Generic", description=b.description or "",
            created=_parse_time(b.create_time), updated=_parse_time(b.update_time),
            automatic_rotation=b.automatic_rotation == "Enabled",
            rotation_interval=_parse_interval(b.rotation_interval), last_rotation=_parse_time(b.last_rotation_date),
            next_rotation=_parse_time(b.next_rotation_date), arn=b.arn,
            extended_config=json.loads(b.extended_config) if b.extended_config else None,
            planned_deletion=_parse_time(b.planned_delete_time),
        )

    def list_secrets(self) -> list[SecretInfo]:
        req = models.ListSecretsRequest(page_size=100)
        body = self._do("ListSecrets", lambda: self.client.list_secrets(req)).body
        return [SecretInfo(name=s.secret_name, secret_type=s.secret_type or "Generic",
                           planned_deletion=_parse_time(s.planned_delete_time))
                for s in body.secret_list.secret]

    def random_password(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        def flag(value: bool) -> str:
            return str(value).lower()

        req = models.GetRandomPasswordRequest(
            password_length=str(policy.length), exclude_characters=policy.exclude_characters or None,
            exclude_lowercase=flag(policy.exclude_lowercase), exclude_uppercase=flag(policy.exclude_uppercase),
            exclude_numbers=flag(policy.exclude_numbers), exclude_punctuation=flag(policy.exclude_punctuation),
            require_each_included_type=flag(policy.require_each_included_type),
        )
        return self._do("GetRandomPassword", lambda: self.client.get_random_password(req)).body.random_password

    def create_secret(self, name: str, data: str | bytes, *, version_id: str = "v1", secret_type: str = "Generic",
                      description: str = "", extended_config: Mapping[str, Any] | None = None,
                      rotation_interval: timedelta | None = None) -> SecretInfo:
        payload, kind = self._encode(data)
        req = models.CreateSecretRequest(
            secret_name=name, version_id=version_id, secret_data=payload, secret_data_type=kind,
            secret_type=secret_type, description=description or None,
            extended_config=dict(extended_config) if extended_config is not None else None,
            enable_automatic_rotation=rotation_interval is not None or None,
            rotation_interval=f"{int(rotation_interval.total_seconds())}s" if rotation_interval else None,
        )
        self._do("CreateSecret", lambda: self.client.create_secret(req))
        return self.describe(name)

    def delete_secret(self, name: str, *, recovery_window_days: int | None = 30, force: bool = False) -> None:
        req = models.DeleteSecretRequest(
            secret_name=name, force_delete_without_recovery="true" if force else None,
            recovery_window_in_days=None if force else str(recovery_window_days or 30),
        )
        self._do("DeleteSecret", lambda: self.client.delete_secret(req))

    def restore_secret(self, name: str) -> None:
        self._do("RestoreSecret", lambda: self.client.restore_secret(models.RestoreSecretRequest(secret_name=name)))

    def close(self) -> None:
        pass
