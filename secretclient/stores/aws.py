"""AwsSecretsManagerStore: secrets from AWS Secrets Manager (boto3, the ``aws`` extra).

The same contract as every store (:mod:`secretclient.stores.base`), with AWS's labels
(``AWSCURRENT`` / ``AWSPENDING`` / ``AWSPREVIOUS``). Where AWS differs from KMS:

- A VersionId is AWS's ``ClientRequestToken``: 32 to 64 characters (a UUID). Shorter ids
  are refused here with :class:`~secretclient.errors.InvalidParameter`.
- AWS keeps about 100 versions and removes unlabelled ("deprecated") ones older than a day
  beyond that; KMS keeps 10. Nothing here prunes versions.
- AWS moves a label that is on another version only when told where from
  (``RemoveFromVersionId``); :meth:`~AwsSecretsManagerStore.update_stage` looks the holder
  up so that a move works as on KMS, and a ``remove_from`` given with ``move_to`` is sent
  as ``RemoveFromVersionId``, which AWS checks atomically (the compare-and-set).
- Removing ``AWSCURRENT`` or ``AWSPREVIOUS`` without moving it is refused, as on KMS.
- A new version needs at least one label (``stages=[]`` is refused); remove the label
  afterwards to get an unlabelled one.
- Moving ``AWSCURRENT`` leaves ``AWSPENDING`` where it was (a finished rotation removes it).
- AWS has no secret types and no ``ExtendedConfig``; automatic rotation needs a rotation
  Lambda (``rotation_lambda_arn``).
- ``delete_secret`` schedules the deletion (30 days unless told otherwise) as AWS does;
  ``force=True`` deletes at once. A scheduled secret reads as not found until restored
  (``describe`` too), but :meth:`~AwsSecretsManagerStore.list_secrets` lists it with its
  ``planned_deletion``.

The store makes one attempt per call (botocore's retries are off: retries and backoff
belong to :class:`~secretclient.SecretClient`) with connect and read timeouts, and keeps
secret data out of botocore's DEBUG logs (:mod:`secretclient.stores._botocore_redact`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidParameter, SecretNotFound, StoreError, VersionConflict
from ..model import AWS_STAGES, DEFAULT_PASSWORD_POLICY, PasswordPolicy, Secret, SecretInfo, StageLabels, VersionInfo
from . import _botocore_redact
from ._aws_errors import map_aws_error
from ._server_clock import ServerClock
from ._store_base import NewSecret, StoreBase

__all__ = ["MAX_TOKEN_LENGTH", "MIN_TOKEN_LENGTH", "AwsSecretsManagerStore"]

#: Bounds of a ClientRequestToken (our VersionId) on AWS.
MIN_TOKEN_LENGTH = 32
MAX_TOKEN_LENGTH = 64
_MAX_PAGES = 100  # ListSecretVersionIds pages of 100: far beyond AWS's ~100 versions
_MAX_LIST_PAGES = 5000  # ListSecrets pages of 100: AWS's quota is 500 000 secrets per region


def _boto3() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise InvalidParameter("AwsSecretsManagerStore needs boto3: pip install 'secretclient-rotation[aws]'") from None
    return boto3, Config


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _info(entry: Mapping[str, Any], name: str) -> SecretInfo:
    """Metadata from a ``DescribeSecret`` answer or a ``ListSecrets`` entry (same fields)."""
    days = (entry.get("RotationRules") or {}).get("AutomaticallyAfterDays")
    return SecretInfo(
        name=str(entry.get("Name") or name),
        description=entry.get("Description") or "",
        created=_aware(entry.get("CreatedDate")),
        updated=_aware(entry.get("LastChangedDate")),
        automatic_rotation=bool(entry.get("RotationEnabled")),
        rotation_interval=timedelta(days=int(days)) if days else None,
        last_rotation=_aware(entry.get("LastRotatedDate")),
        next_rotation=_aware(entry.get("NextRotationDate")),
        arn=entry.get("ARN"),
        planned_deletion=_aware(entry.get("DeletedDate")),
    )


class AwsSecretsManagerStore(StoreBase):
    """A :class:`~secretclient.stores.SecretStore` on AWS Secrets Manager.

    :param client: a boto3 ``secretsmanager`` client to use as it is (its retry and timeout
        settings are its own: build it with ``retries={"total_max_attempts": 1}``). When
        given, the connection options below must be left out.
    :param region: the region (default: the usual AWS sources, ``$AWS_REGION`` …).
    :param endpoint_url: another endpoint, e.g. a VPC endpoint or ``http://127.0.0.1:PORT``
        for moto's server.
    :param profile: a profile of the AWS config files.
    :param access_key_id, secret_access_key, session_token: explicit credentials (default:
        boto3's credential chain: environment, config files, container or instance role).
    :param connect_timeout, read_timeout: seconds.
    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path.
    :param rotation_lambda_arn: the rotation function :meth:`create_secret` attaches when
        given ``rotation_interval``.
    """

    #: AWS labels; a :class:`~secretclient.model.Stage` role is accepted wherever a label is.
    stage_labels: StageLabels = AWS_STAGES

    def __init__(
        self,
        client: Any = None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        verify: bool | str | None = None,
        rotation_lambda_arn: str | None = None,
    ) -> None:
        for label, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidParameter(f"{label} must be a positive number of seconds")
        if (access_key_id is None) != (secret_access_key is None):
            raise InvalidParameter("give access_key_id= and secret_access_key= together")
        self.rotation_lambda_arn = rotation_lambda_arn
        self._server_clock = ServerClock()
        _botocore_redact.install()
        if client is not None:
            if any(v is not None for v in (region, endpoint_url, profile, access_key_id, verify)):
                raise InvalidParameter(
                    "give either client= or connection options (region, endpoint_url, profile, keys, verify)"
                )
            meta = getattr(client, "meta", None)
            service = getattr(getattr(meta, "service_model", None), "service_name", None)
            if service != "secretsmanager":
                raise InvalidParameter("client must be a boto3 'secretsmanager' client")
            self._client, self._owns_client = client, False
            return
        boto3, Config = _boto3()
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # SecretClient owns retries
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent_extra="secretclient",
        )
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
            self._client = session.client(
                "secretsmanager", endpoint_url=endpoint_url, verify=verify, config=config,
                aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
                aws_session_token=session_token,
            )
        except Exception as exc:  # botocore's configuration errors have no common base
            raise self._config_error(exc) from None
        self._owns_client = True

    @staticmethod
    def _config_error(exc: Exception) -> InvalidParameter:
        from botocore import exceptions as bce

        if isinstance(exc, bce.NoRegionError):
            return InvalidParameter("AwsSecretsManagerStore needs region= or $AWS_REGION / $AWS_DEFAULT_REGION")
        if isinstance(exc, bce.ProfileNotFound):
            return InvalidParameter("the AWS profile given does not exist in the AWS config files")
        return InvalidParameter(f"could not build a Secrets Manager client: {type(exc).__name__}")

    def __repr__(self) -> str:
        meta = self._client.meta
        return f"AwsSecretsManagerStore(region={meta.region_name!r}, endpoint_url={meta.endpoint_url!r})"

    @property
    def boto_client(self) -> Any:
        """The underlying boto3 client (for calls this store does not wrap)."""
        return self._client

    # -- plumbing ------------------------------------------------------------------------

    def _call(self, operation: str, name: str | None = None, **params: Any) -> dict[str, Any]:
        method: Callable[..., dict[str, Any]] = getattr(self._client, _SNAKE[operation])
        error: StoreError | None = None
        try:
            resp = method(**{k: v for k, v in params.items() if v is not None})
            self._observe_date(resp)
            return resp
        except Exception as exc:  # every SDK error becomes one of ours, none escapes
            self._observe_date(getattr(exc, "response", None))
            error = map_aws_error(exc, operation, name)
        # Raised outside the except clause: botocore's exception stays out of __context__.
        raise error

    def _observe_date(self, resp: Any) -> None:
        if isinstance(resp, Mapping):
            meta = resp.get("ResponseMetadata")
            headers = meta.get("HTTPHeaders") if isinstance(meta, Mapping) else None
            if isinstance(headers, Mapping):
                self._server_clock.observe(headers.get("date"))

    def server_time(self) -> datetime | None:
        """Secrets Manager's time: the ``Date`` of its last answer plus the monotonic time since
        (one-second resolution); None before any answer."""
        return self._server_clock.now()

    @staticmethod
    def _check_name(name: Any) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidParameter("secret name must be a non-empty string (a name or an ARN)")

    @staticmethod
    def _check_token(version_id: Any) -> None:
        if not isinstance(version_id, str) or not MIN_TOKEN_LENGTH <= len(version_id) <= MAX_TOKEN_LENGTH:
            raise InvalidParameter(
                f"version_id must be a string of {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} characters on AWS "
                "(it is the ClientRequestToken): use e.g. uuid.uuid4().hex"
            )

    @staticmethod
    def _payload(data: Any) -> dict[str, Any]:
        if isinstance(data, bytes):
            return {"SecretBinary": data}
        if isinstance(data, str):
            return {"SecretString": data}
        raise InvalidParameter("secret data must be str or bytes")

    def _stages_of(self, name: str) -> dict[str, frozenset[str]]:
        """VersionId -> labels, from DescribeSecret (labelled versions only)."""
        return self.describe_with_stages(name)[1]

    @staticmethod
    def _refuse_deleted(info: Mapping[str, Any], name: str) -> None:
        if info.get("DeletedDate"):
            raise SecretNotFound(
                f"secret {name!r} is scheduled for deletion (RestoreSecret undoes that)",
                code="InvalidRequestException",
            )

    @staticmethod
    def _not_found(what: str) -> SecretNotFound:
        return SecretNotFound(what, code="ResourceNotFoundException", http_status=404)

    # -- SecretStore ---------------------------------------------------------------------

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Secret:
        self._check_name(name)
        label = self.stage_labels.label(stage) if stage is not None else None
        if version_id is not None:
            if not isinstance(version_id, str) or not version_id:
                raise InvalidParameter("version_id must be a non-empty string")
            if not MIN_TOKEN_LENGTH <= len(version_id) <= MAX_TOKEN_LENGTH:
                # No AWS version can have this id (botocore would refuse to ask).
                raise self._not_found(f"secret {name!r} has no version {version_id!r}")
            # By id only, then the label checked here: AWS answers a mismatch with an
            # InvalidRequestException, KMS (and the contract) with "not found".
            resp = self._call("GetSecretValue", name, SecretId=name, VersionId=version_id)
        else:
            # Always name the stage: moto, unlike AWS, serves a stale version without it.
            resp = self._call("GetSecretValue", name, SecretId=name, VersionStage=label or self.stage_labels.current)
        stages = frozenset(resp.get("VersionStages") or ())
        if version_id is not None and label is not None and label not in stages:
            raise self._not_found(f"secret {name!r} version {version_id!r} does not carry stage {label!r}")
        data: str | bytes
        if "SecretBinary" in resp:
            data = bytes(resp["SecretBinary"])
        elif "SecretString" in resp:
            data = resp["SecretString"]
        else:
            raise self._not_found(f"secret {name!r} has no value in that version")
        return Secret(
            name=resp.get("Name", name),
            version_id=str(resp.get("VersionId", "")),
            stages=stages,
            data=data,
            created=_aware(resp.get("CreatedDate")),
        )

    def put_secret(
        self, name: str, version_id: str, data: str | bytes, *, stages: Sequence[str] | None = None
    ) -> VersionInfo:
        self._check_name(name)
        self._check_token(version_id)
        if isinstance(stages, (str, bytes)):
            raise InvalidParameter("stages must be a list of stage names, not a string")
        labels = [self.stage_labels.label(s) for s in stages] if stages is not None else None
        if labels == []:
            raise InvalidParameter("AWS stores a new version with at least one stage label: give stages")
        resp = self._call(
            "PutSecretValue", name, SecretId=name, ClientRequestToken=version_id,
            VersionStages=labels, **self._payload(data),
        )
        got = frozenset(resp.get("VersionStages") or ())
        expected = labels if labels is not None else [self.stage_labels.current]
        return VersionInfo(str(resp.get("VersionId") or version_id), got or frozenset(expected))

    def update_stage(
        self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None
    ) -> None:
        self._check_name(name)
        label = self.stage_labels.label(stage)
        if move_to is None and remove_from is None:
            raise InvalidParameter("update_stage needs move_to, remove_from or both")
        if move_to is None and label in (self.stage_labels.current, self.stage_labels.previous):
            raise InvalidParameter(f"{label} can only be moved to another version, not removed")
        if remove_from is not None:
            # AWS checks RemoveFromVersionId atomically: the compare-and-set needs no look-up.
            try:
                self._call(
                    "UpdateSecretVersionStage", name, SecretId=name, VersionStage=label,
                    MoveToVersionId=move_to, RemoveFromVersionId=remove_from,
                )
            except StoreError as exc:
                if exc.code == "InvalidParameterException":
                    self._explain_refusal(name, label, move_to, remove_from)
                raise
            return
        assert move_to is not None
        versions = self._stages_of(name)
        holder = next((vid for vid, labels in versions.items() if label in labels), None)
        if holder == move_to:
            return  # already there: a retried move changes nothing
        if move_to not in versions:
            self._require_version(name, move_to)
        try:
            # AWS moves a label that is on another version only when told where from.
            self._call(
                "UpdateSecretVersionStage", name, SecretId=name, VersionStage=label,
                MoveToVersionId=move_to, RemoveFromVersionId=holder,
            )
        except StoreError as exc:
            if exc.code == "InvalidParameterException" and holder is not None:
                self._explain_refusal(name, label, move_to, holder)
            raise

    def _require_version(self, name: str, version_id: str) -> None:
        if version_id not in {v.version_id for v in self.list_versions(name, include_deprecated=True)}:
            raise self._not_found(f"secret {name!r} has no version {version_id!r}")

    def _explain_refusal(self, name: str, label: str, move_to: str | None, remove_from: str) -> None:
        """After AWS refused a stage move: raise the contract's error for the reason."""
        versions = self._stages_of(name)
        if move_to is not None and move_to not in versions:
            self._require_version(name, move_to)
        if label not in versions.get(remove_from, frozenset()):
            raise VersionConflict(
                f"stage {label!r} of secret {name!r} is not on version {remove_from!r}", code="StageNotOnVersion"
            )

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        self._check_name(name)
        out: list[VersionInfo] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            resp = self._call(
                "ListSecretVersionIds", name, SecretId=name, IncludeDeprecated=include_deprecated,
                MaxResults=100, NextToken=token,
            )
            for item in resp.get("Versions") or ():
                stages = frozenset(item.get("VersionStages") or ())
                if stages or include_deprecated:
                    out.append(VersionInfo(str(item["VersionId"]), stages, _aware(item.get("CreatedDate"))))
            token = resp.get("NextToken") or None
            if token is None:
                break
        # Newest first; equal dates keep AWS's order reversed (oldest is listed first).
        out.reverse()
        out.sort(key=lambda v: v.created or datetime.min.replace(tzinfo=UTC), reverse=True)
        return out

    def describe(self, name: str) -> SecretInfo:
        return self.describe_with_stages(name)[0]

    def describe_with_stages(self, name: str) -> tuple[SecretInfo, dict[str, frozenset[str]]]:
        """:meth:`describe` and the labels of each labelled version, from one ``DescribeSecret``
        (what AWS's rotation functions read before every step)."""
        self._check_name(name)
        resp = self._call("DescribeSecret", name, SecretId=name)
        self._refuse_deleted(resp, name)
        stages = {vid: frozenset(labels) for vid, labels in (resp.get("VersionIdsToStages") or {}).items()}
        return _info(resp, name), stages

    def list_secrets(self) -> list[SecretInfo]:
        """Every secret's metadata by name (``ListSecrets``, all pages), never a value; those
        scheduled for deletion included, with ``planned_deletion`` (AWS's ``DeletedDate``).

        ``ListSecrets`` is eventually consistent on AWS: a secret created or deleted in the last
        minutes may be missing or listed as it was (``describe`` is up to date)."""
        out: list[SecretInfo] = []
        token: str | None = None
        for _ in range(_MAX_LIST_PAGES):
            resp = self._call("ListSecrets", IncludePlannedDeletion=True, MaxResults=100, NextToken=token)
            out.extend(_info(item, "") for item in resp.get("SecretList") or () if item.get("Name"))
            token = resp.get("NextToken") or None
            if token is None:
                break
        out.sort(key=lambda info: info.name)
        return out

    def random_password(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        resp = self._call(
            "GetRandomPassword",
            PasswordLength=policy.length,
            ExcludeCharacters=policy.exclude_characters or None,
            ExcludeNumbers=policy.exclude_numbers,
            ExcludePunctuation=policy.exclude_punctuation,
            ExcludeUppercase=policy.exclude_uppercase,
            ExcludeLowercase=policy.exclude_lowercase,
            IncludeSpace=False,
            RequireEachIncludedType=policy.require_each_included_type,
        )
        password = resp.get("RandomPassword")
        if not isinstance(password, str) or not password:
            raise StoreError("Secrets Manager GetRandomPassword returned no password", code="InvalidResponse")
        return password

    def _create(self, new: NewSecret) -> SecretInfo:
        """AWS has no secret types and no extended config; automatic rotation needs
        ``rotation_lambda_arn`` and whole days from 1 to 1000."""
        name, data, version_id, secret_type, description, extended_config, rotation_interval = new
        self._check_name(name)
        self._check_token(version_id)
        if secret_type != "Generic":
            raise InvalidParameter("AWS Secrets Manager has no secret types: leave secret_type as 'Generic'")
        if extended_config is not None:
            raise InvalidParameter("AWS Secrets Manager has no ExtendedConfig: keep such settings in the value")
        days = None
        if rotation_interval is not None:
            days = rotation_interval / timedelta(days=1)
            if not days.is_integer() or not 1 <= days <= 1000:
                raise InvalidParameter("rotation_interval must be a whole number of days from 1 to 1000 on AWS")
            if not self.rotation_lambda_arn:
                raise InvalidParameter("automatic rotation on AWS needs a rotation Lambda: give rotation_lambda_arn=")
        payload = self._payload(data)
        self._call(
            "CreateSecret", name, Name=name, ClientRequestToken=version_id,
            Description=description or None, **payload,
        )
        if days is not None:
            self._call(
                "RotateSecret", name, SecretId=name, RotationLambdaARN=self.rotation_lambda_arn,
                RotationRules={"AutomaticallyAfterDays": int(days)}, RotateImmediately=False,
            )
        return self.describe(name)

    def delete_secret(self, name: str, *, recovery_window_days: int | None = 30, force: bool = False) -> None:
        """Schedule ``name`` for deletion in ``recovery_window_days`` (7 to 30; ``None``: 30, as
        AWS) or, with ``force=True``, delete it at once. Meanwhile it reads as not found and
        :meth:`restore_secret` brings it back."""
        self._check_name(name)
        if not isinstance(force, bool):
            raise InvalidParameter("force must be True or False")
        if force:
            # AWS answers a forced delete of an unknown name with success: look first.
            self._call("DescribeSecret", name, SecretId=name)
            self._call("DeleteSecret", name, SecretId=name, ForceDeleteWithoutRecovery=True)
            return
        days = 30 if recovery_window_days is None else recovery_window_days
        if isinstance(days, bool) or not isinstance(days, int) or not 7 <= days <= 30:
            raise InvalidParameter(
                "recovery_window_days must be a whole number of days from 7 to 30 (or force=True to delete at once)"
            )
        self._call("DeleteSecret", name, SecretId=name, RecoveryWindowInDays=days)

    def restore_secret(self, name: str) -> None:
        """Cancel the scheduled deletion of ``name``."""
        self._check_name(name)
        self._call("RestoreSecret", name, SecretId=name)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


_SNAKE = {
    "GetSecretValue": "get_secret_value",
    "PutSecretValue": "put_secret_value",
    "UpdateSecretVersionStage": "update_secret_version_stage",
    "ListSecretVersionIds": "list_secret_version_ids",
    "DescribeSecret": "describe_secret",
    "GetRandomPassword": "get_random_password",
    "CreateSecret": "create_secret",
    "RotateSecret": "rotate_secret",
    "DeleteSecret": "delete_secret",
    "RestoreSecret": "restore_secret",
    "ListSecrets": "list_secrets",
}
