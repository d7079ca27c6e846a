"""The Function Compute handler: the seed's CloudFlow flow drives this engine unchanged.

The flow calls ``handler`` with ``{"SecretName", "RegionId", "Step", "VersionId"?, "InstanceId"?}``
for the steps new → set → test → end, passing the returned ``{"VersionId": …}`` along
(``$local.VersionId``). ``VersionId`` defaults to ``context.requestId`` as in the seed; step
``new`` returns the VersionId of an interrupted rotation instead, so the flow resumes it.

Configuration comes from environment variables (FC function settings):

``ROTATION_STORE``           ``kms`` (default) or ``embedded:PATH`` (key of an encrypted file:
                             ``SECRETCLIENT_EMBEDDED_KEY``)
``ROTATION_KMS_ENDPOINT``    default ``kms-vpc.<RegionId>.aliyuncs.com`` (the seed's VPC endpoint)
credentials                  ``context.credentials`` (the FC role's STS token), else ``ALIBABA_CLOUD_ACCESS_KEY_ID`` /
                             ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` / ``ALIBABA_CLOUD_SECURITY_TOKEN`` (runtimes
                             whose context has no credentials put the role's token there)
``ROTATION_STRATEGY``        ``alternating`` (the seed's ``_rt`` scheme; the default without ``InstanceId``),
                             ``single``, or ``rds`` (the default when the event has ``InstanceId``:
                             Scenario 1, alternating users through the RDS API)
``ROTATION_RDS_ENDPOINT``    strategy ``rds``: RDS endpoint, default the SDK's for the region
``ROTATION_RDS_INSTANCE_ID`` strategy ``rds``: instance id when the event has no ``InstanceId``
``ROTATION_NAME_LIMIT``      longest account name, default 16 (RDS, as the seed)
``ROTATION_SUFFIX``          alternating users (and ``rds``): the second account's suffix, default ``_rt``
``ROTATION_GRACE_SECONDS``   PREVIOUS grace period, default 3600 (see docs/rotation.md, "grace")
``ROTATION_INTERVAL_SECONDS`` how often the flow's timer rotates; step ``end`` then records the next
                             rotation (now + interval) in the secret's ``secretclient:NextRotation`` tag, so
                             clients refresh right after it (KMS gives a Generic secret no rotation date);
                             unset: nothing is recorded
``ROTATION_DRAIN_WAIT``      alternating users: seconds to wait for sessions of the account to reset, default 0
``ROTATION_DRAIN``           ``refuse`` (default: stop with AccountInUse) or ``proceed``
``ROTATION_MASTER_SECRET``   privileged secret, default: the secret's ``MasterSecret`` field
``ROTATION_ALLOW_ACCOUNTS``  comma-separated reserved/administrative accounts that may be rotated anyway
``EXCLUDE_CHARACTERS``       excluded password characters (the seed's variable), default ``/@"'\\``
``ROTATION_PASSWORD_LENGTH`` default 32
``ROTATION_CA_FILE``         CA bundle for ``"SSL": true``, default ``/opt/python/certs/cert.pem`` when present

``InstanceId`` (Scenario 1's field) names the ApsaraDB RDS instance for strategy ``rds``; the
MySQL strategies ignore it. The RDS API is called with the same credentials as KMS.

Store calls that are throttled or fail transiently are retried (:class:`~rotation.StoreRetryPolicy`,
60 s by default) but never past the function's timeout (``context.function.timeout``) minus
:data:`~rotation.store_retry.INVOCATION_MARGIN`: the step then fails with the store's typed error
and the flow's retry resumes it. A factory given to :func:`make_handler` does the same with
``StoreRetryPolicy().within_invocation(context)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from secretclient.model import Stage

from ._factories import lock_for, make_strategy, open_store
from .engine import Rotator
from .errors import InvalidRotationSetup
from .store_retry import StoreRetryPolicy
from .strategies.base import DEFAULT_GRACE

__all__ = ["handler", "make_handler", "parse_event", "rotator_from_environment"]

_SEED_CA = "/opt/python/certs/cert.pem"


def parse_event(event: Any) -> dict[str, Any]:
    """The event as a dict: FC passes bytes; tests and other callers may pass str or a mapping."""
    if isinstance(event, (bytes, bytearray)):
        try:
            event = bytes(event).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRotationSetup("the event is not UTF-8 text") from None
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except ValueError:
            raise InvalidRotationSetup("the event is not JSON") from None
    if not isinstance(event, Mapping):
        raise InvalidRotationSetup("the event must be a JSON object")
    for key in ("SecretName", "Step"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise InvalidRotationSetup(f"the event needs a non-empty string {key!r}")
    return dict(event)


def _context_credentials(context: Any) -> dict[str, str | None]:
    creds = getattr(context, "credentials", None)
    ak = getattr(creds, "accessKeyId", None) or getattr(creds, "access_key_id", None)
    if not ak:
        return {}
    return {
        "access_key_id": ak,
        "access_key_secret": getattr(creds, "accessKeySecret", None) or getattr(creds, "access_key_secret", None),
        "security_token": getattr(creds, "securityToken", None) or getattr(creds, "security_token", None),
    }


def rotator_from_environment(event: Mapping[str, Any], context: Any, env: Mapping[str, str] | None = None) -> Rotator:
    """A Rotator configured by the environment variables listed in this module's docstring."""
    env = os.environ if env is None else env
    retry = StoreRetryPolicy().within_invocation(context)  # at the invocation's start
    region = event.get("RegionId") or env.get("ALIBABA_CLOUD_REGION_ID")
    spec = env.get("ROTATION_STORE", "kms")
    interval = _interval(env.get("ROTATION_INTERVAL_SECONDS"))
    kms: dict[str, Any] = {}
    if spec == "kms":
        if not region:
            raise InvalidRotationSetup("the event has no RegionId")
        kms = dict(region=region, endpoint=env.get("ROTATION_KMS_ENDPOINT") or f"kms-vpc.{region}.aliyuncs.com",
                   **_context_credentials(context))
    kind = env.get("ROTATION_STRATEGY") or ("rds" if event.get("InstanceId") else "alternating")
    rds: Any = None
    if kind == "rds":
        from .strategies.rds import rds_client

        if not region:
            raise InvalidRotationSetup("the event has no RegionId (the RDS API needs it)")
        rds = rds_client(region, endpoint=env.get("ROTATION_RDS_ENDPOINT") or None, **_context_credentials(context))
    store = open_store(spec, env=env, create=False, **kms)  # a mistyped path is an error, not a new store
    ca_file = env.get("ROTATION_CA_FILE") or (_SEED_CA if os.path.exists(_SEED_CA) else None)
    try:
        strategy = make_strategy(
            kind,
            name_limit=int(env.get("ROTATION_NAME_LIMIT", "16")),
            grace_seconds=float(env.get("ROTATION_GRACE_SECONDS", DEFAULT_GRACE.total_seconds())),
            drain_wait=float(env.get("ROTATION_DRAIN_WAIT", "0")),
            drain_proceed=_drain_proceed(env.get("ROTATION_DRAIN", "refuse")),
            master_secret=env.get("ROTATION_MASTER_SECRET"),
            exclude_characters=env.get("EXCLUDE_CHARACTERS"),
            password_length=int(env.get("ROTATION_PASSWORD_LENGTH", "32")),
            ca_file=ca_file,
            instance_id=str(event.get("InstanceId") or env.get("ROTATION_RDS_INSTANCE_ID") or ""),
            rds_client=rds,
            allow_accounts=tuple(a.strip() for a in env.get("ROTATION_ALLOW_ACCOUNTS", "").split(",") if a.strip()),
            suffix=env.get("ROTATION_SUFFIX") or None,
        )
    except ValueError:
        store.close()
        raise InvalidRotationSetup(
            "ROTATION_NAME_LIMIT, ROTATION_GRACE_SECONDS and ROTATION_PASSWORD_LENGTH must be numbers"
        ) from None
    except InvalidRotationSetup:
        store.close()
        raise
    # Retries of throttled store calls end before FC's timeout would kill the invocation.
    return Rotator(store, strategy=strategy, lock=lock_for(strategy, store), rotation_interval=interval,
                   store_retry=retry)


def _interval(value: str | None) -> timedelta | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise InvalidRotationSetup("ROTATION_INTERVAL_SECONDS must be a positive number of seconds")
    return timedelta(seconds=seconds)


def _drain_proceed(value: str) -> bool:
    if value not in ("refuse", "proceed"):
        raise InvalidRotationSetup("ROTATION_DRAIN must be 'refuse' or 'proceed'")
    return value == "proceed"


def make_handler(factory: Callable[[Mapping[str, Any], Any], Rotator]) -> Callable[[Any, Any], dict[str, str]]:
    """A handler that builds its Rotator with ``factory(event, context)`` (for configuration in code)."""

    def handle(event: Any, context: Any) -> dict[str, str]:
        evt = parse_event(event)
        version_id = evt.get("VersionId") or getattr(context, "requestId", None) or getattr(context, "request_id", None)
        rotator = factory(evt, context)
        try:
            current = rotator.store.get_secret(evt["SecretName"], stage=Stage.CURRENT)
            if current.secret_type != "Generic":  # as the seed: only generic secrets rotate here
                raise InvalidRotationSetup(f"secret {evt['SecretName']!r} is {current.secret_type}, not Generic")
            return {"VersionId": rotator.step(evt["SecretName"], evt["Step"], version_id)}
        finally:
            rotator.store.close()

    return handle


#: The Function Compute entry point (``rotation.fc.handler``), configured by the environment.
handler = make_handler(rotator_from_environment)
