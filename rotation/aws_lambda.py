"""An AWS Secrets Manager rotation function on this engine: a drop-in for AWS's MySQL templates.

Secrets Manager invokes ``lambda_handler`` four times per rotation with one
``ClientRequestToken``: ``{"SecretId", "ClientRequestToken", "Step"}`` and ``Step`` one of
``createSecret``, ``setSecret``, ``testSecret``, ``finishSecret``. As AWS's templates do, the
handler first checks that rotation is enabled, that the token is a version of the secret,
returns at once when that version is already ``AWSCURRENT``, and refuses a version that is
not ``AWSPENDING``. The steps then run on :class:`~rotation.engine.Rotator` (lock, resume
after a crash, grant copy by difference, TLS kept, redacted logs):

================  ================================================================
createSecret      fills Secrets Manager's AWSPENDING version (the token) with new
                  credentials, in the format of AWSCURRENT (``username``/``password``…)
setSecret         engine step ``set``
testSecret        engine step ``test`` (after ``RotateSecret`` without an immediate
                  rotation, AWSPENDING is a copy of AWSCURRENT: AWSCURRENT must log in)
finishSecret      engine step ``end``: AWSCURRENT moves with ``RemoveFromVersionId``
                  (AWSPREVIOUS follows), then AWSPENDING is removed (also when a
                  finish died between the two: no AWSPENDING is left behind)
================  ================================================================

Strategy: single user (the account changes its own password) when the secret has no
``masterarn``; alternating users ``user`` ↔ ``user_clone`` through the master secret when it
has one, as AWS's multi-user template, so secrets it rotated keep working.

Environment (Lambda configuration), AWS's names first:

``SECRETS_MANAGER_ENDPOINT``  Secrets Manager endpoint URL (AWS's templates read it too)
``EXCLUDE_CHARACTERS``        characters new passwords never contain, default ``/@"'\\``
``PASSWORD_LENGTH``           default 32
``ROTATION_STRATEGY``         ``single`` or ``alternating`` to override the choice above
``ROTATION_NAME_LIMIT``       longest account name, default 32 (MySQL 5.7+; 80 on MariaDB)
``ROTATION_GRACE_SECONDS``    alternating users: AWSPREVIOUS grace period, default 3600 (one hour:
                              AWS's caching clients' TTL; docs/concepts.md, "Grace periods")
``ROTATION_DRAIN_WAIT``       alternating users (MySQL): seconds to wait for sessions of the
                              AWSPREVIOUS account to end before resetting it, default 0
``ROTATION_DRAIN``            ``refuse`` (default: stop with AccountInUse while it has sessions)
                              or ``proceed`` (reset it anyway, as AWS's template does)
``ROTATION_CA_FILE``          CA bundle for secrets with ``"ssl": true``
``ROTATION_LOCK_TIMEOUT``     seconds to wait for another rotator's lock, default 10

Store calls that are throttled or fail transiently are retried (:class:`~rotation.StoreRetryPolicy`,
60 s by default) but never past ``context.get_remaining_time_in_millis()`` minus
:data:`~rotation.store_retry.INVOCATION_MARGIN`: the step then fails with the store's typed error
(and its logs) instead of being killed at the function's timeout, and Secrets Manager's retry of
the step resumes it. A factory given to :func:`make_handler` does the same with
``StoreRetryPolicy().within_invocation(context)``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from secretclient.model import PasswordPolicy, Stage, stage_labels
from secretclient.stores.aws import AwsSecretsManagerStore

from .dbconn import ConnectOptions
from .engine import Rotator
from .errors import InvalidRotationSetup, LoginFailed, RotationConflict
from .passwords import MYSQL_PASSWORD_POLICY
from .store_retry import StoreRetryPolicy
from .strategies import AlternatingUsersStrategy, SingleUserStrategy, Strategy
from .strategies.base import DEFAULT_GRACE, DrainPolicy, RotationContext
from .strategies.by_engine import engine_of
from .strategies.postgres import PostgresAlternatingUsersStrategy, PostgresSingleUserStrategy

__all__ = ["CLONE_SUFFIX", "STEPS", "lambda_handler", "make_handler", "parse_event", "rotator_from_environment"]

log = logging.getLogger("rotation.aws_lambda")

#: Secrets Manager's steps and the engine's.
STEPS = {"createSecret": "new", "setSecret": "set", "testSecret": "test", "finishSecret": "end"}
#: The suffix of AWS's multi-user template.
CLONE_SUFFIX = "_clone"


def parse_event(event: Any) -> dict[str, str]:
    """The event as Secrets Manager sends it, checked."""
    if not isinstance(event, Mapping):
        raise InvalidRotationSetup("the event must be a JSON object with SecretId, ClientRequestToken and Step")
    for key in ("SecretId", "ClientRequestToken", "Step"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise InvalidRotationSetup(f"the event needs a non-empty string {key!r}")
    if event["Step"] not in STEPS:
        raise InvalidRotationSetup(f"Step must be one of {', '.join(STEPS)}, not {event['Step'][:20]!r}")
    return {key: event[key] for key in ("SecretId", "ClientRequestToken", "Step")}


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name) or default)
    except ValueError:
        raise InvalidRotationSetup(f"${name} must be a number") from None


def _strategy(store: AwsSecretsManagerStore, secret_id: str, env: Mapping[str, str]) -> Strategy:
    exclude = env.get("EXCLUDE_CHARACTERS")
    policy = PasswordPolicy(
        length=int(_number(env, "PASSWORD_LENGTH", MYSQL_PASSWORD_POLICY.length)),
        exclude_characters=MYSQL_PASSWORD_POLICY.exclude_characters if exclude is None else exclude,
    )
    options: dict[str, Any] = {
        "password_policy": policy,
        "name_limit": int(_number(env, "ROTATION_NAME_LIMIT", 32)),
        "connect_options": ConnectOptions(ca_file=env.get("ROTATION_CA_FILE") or None),
    }
    current = store.get_secret(secret_id, stage=Stage.CURRENT).db_credentials()
    kind = env.get("ROTATION_STRATEGY") or ("alternating" if current.master_secret else "single")
    if kind == "alternating":
        options["grace"] = timedelta(seconds=_number(env, "ROTATION_GRACE_SECONDS", DEFAULT_GRACE.total_seconds()))
        drain = env.get("ROTATION_DRAIN", "refuse")
        if drain not in ("refuse", "proceed"):
            raise InvalidRotationSetup("ROTATION_DRAIN must be 'refuse' or 'proceed'")
        options["drain"] = DrainPolicy(wait=_number(env, "ROTATION_DRAIN_WAIT", 0), proceed=drain == "proceed")
    if engine_of(current) == "postgres":  # "engine": "postgres", as AWS writes RDS PostgreSQL secrets
        options.pop("name_limit")
        if kind == "alternating":
            return PostgresAlternatingUsersStrategy(suffix=CLONE_SUFFIX, **options)
        if kind == "single":
            return PostgresSingleUserStrategy(**options)
    if kind == "alternating":
        return AlternatingUsersStrategy(suffix=CLONE_SUFFIX, **options)
    if kind == "single":
        return SingleUserStrategy(**options)
    raise InvalidRotationSetup("ROTATION_STRATEGY must be 'single' or 'alternating'")


_stores: dict[str | None, AwsSecretsManagerStore] = {}
_stores_lock = threading.Lock()


def _store(endpoint_url: str | None) -> AwsSecretsManagerStore:
    """One store (one boto3 client) per endpoint for the life of the Lambda container:
    building a client loads botocore's models, which costs more than a whole rotation step."""
    with _stores_lock:
        store = _stores.get(endpoint_url)
        if store is None:
            store = _stores[endpoint_url] = AwsSecretsManagerStore(endpoint_url=endpoint_url)
        return store


def rotator_from_environment(event: Mapping[str, str], context: Any, env: Mapping[str, str] | None = None) -> Rotator:
    """A Rotator on Secrets Manager configured by the variables in this module's docstring
    (credentials and region: the function's role, as boto3 finds them when the container starts)."""
    env = os.environ if env is None else env
    store = _store(env.get("SECRETS_MANAGER_ENDPOINT") or None)
    retry = StoreRetryPolicy().within_invocation(context)  # at the invocation's start
    strategy = _strategy(store, event["SecretId"], env)
    # Retries of throttled store calls end before Lambda's timeout would kill the invocation.
    return Rotator(store, strategy=strategy, lock_timeout=_number(env, "ROTATION_LOCK_TIMEOUT", 10),
                   store_retry=retry)


def _is_configuration_test(rotator: Rotator, secret_id: str, token: str) -> bool:
    """``RotateSecret`` without an immediate rotation makes an AWSPENDING copy of AWSCURRENT and
    calls only testSecret: then AWSCURRENT must log in (nothing is rotated). True when that was it."""
    store = rotator.store
    pending = store.get_secret(secret_id, version_id=token)
    current = store.get_secret(secret_id, stage=Stage.CURRENT)
    if pending.data != current.data:
        return False
    ctx = RotationContext(store=store, secret_name=secret_id, now=rotator.clock)
    if not rotator.strategy.can_login(ctx, current.db_credentials()):
        raise LoginFailed(f"{stage_labels(store).current} of {secret_id!r} does not log in")
    return True


def make_handler(factory: Callable[[Mapping[str, str], Any], Rotator]) -> Callable[[Any, Any], None]:
    """A rotation function building its Rotator with ``factory(event, context)`` (the
    factory owns the store: the handler does not close it)."""

    def handle(event: Any, context: Any) -> None:
        evt = parse_event(event)
        secret_id, token, step = evt["SecretId"], evt["ClientRequestToken"], evt["Step"]
        rotator = factory(evt, context)
        store = rotator.store
        if not isinstance(store, AwsSecretsManagerStore):
            raise InvalidRotationSetup("the rotation function needs a Rotator over an AwsSecretsManagerStore")
        labels = stage_labels(store)
        info, versions = store.describe_with_stages(secret_id)  # one DescribeSecret, as AWS's templates
        if not info.automatic_rotation:
            raise InvalidRotationSetup(f"secret {secret_id!r} is not enabled for rotation")
        if token not in versions:
            raise InvalidRotationSetup(f"version {token!r} has no stage for rotation of secret {secret_id!r}")
        if labels.current in versions[token]:
            log.info("%s: version %s of %r is already %s", step, token, secret_id, labels.current)
            if step == "finishSecret" and labels.pending in versions[token]:
                rotator.step(secret_id, "end", token)  # a finish that died after the move: clear AWSPENDING
            return
        if labels.pending not in versions[token]:
            raise RotationConflict(f"version {token!r} of {secret_id!r} is not {labels.pending}")
        # createSecret: the engine's step new fills the token's value-less AWSPENDING version (or
        # keeps the value an earlier attempt stored: the database may have its password).
        if not (step == "testSecret" and _is_configuration_test(rotator, secret_id, token)):
            rotator.step(secret_id, STEPS[step], token)
        log.info("%s: done for version %s of %r", step, token, secret_id)

    return handle


#: The Lambda entry point (handler ``rotation.aws_lambda.lambda_handler``), configured by the environment.
lambda_handler = make_handler(rotator_from_environment)
