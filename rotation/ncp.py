"""The NAVER Cloud Functions rotation action: NCP's job protocol driving our rotation engine.

NCP's Secret Manager starts a rotation by calling a Cloud Functions action with
``{"secretId", "jobToken", "accessKey", "secretKey"}`` (the seed's arguments). :func:`action`
runs the engine's new → set → test → end under that job:

1. ``/start`` — the chain and the ``rotationTargets``;
2. a new password from ``/generate-random-secret``, stored with ``PUT /pending`` *before* the
   database changes (NCP's own sample changes the database first: a crash there loses the
   password);
3. set and test on the database (single user: the account changes its own password, as the
   sample; alternating users with the ``_rt`` account when the secret names a master secret);
4. ``/complete`` — pending becomes active, active previous; on any error ``/fail`` (the chain,
   pending included, is kept).

A retried job (NCP issues a new token) finds the stored pending value and resumes with it,
never with a new password. Only keys named in ``rotationTargets`` may change.

Configuration, from ``args`` first and then environment variables (action default parameters):

``endpoint`` / ``NCLOUD_SECRET_MANAGER_ENDPOINT``  default ``https://secretmanager.apigw.ntruss.com``
``caFile`` / ``NCLOUD_CA_FILE``                  CA bundle for the endpoint (default: system CAs)
``strategy`` / ``ROTATION_STRATEGY``             ``single`` or ``alternating`` (default: ``alternating``
                                                 when the secret names a ``MasterSecret``, else ``single``)
``EXCLUDE_CHARACTERS``                           excluded password characters (default: the seed's ``"&'+/\\```)
``ROTATION_PASSWORD_LENGTH``                     default 16, as the seed (NCP generates at most 32)
``ROTATION_DB_CA_FILE``                          CA bundle for databases whose secret says ``"SSL": true``
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

from secretclient.errors import SecretClientError
from secretclient.model import DbCredentials
from secretclient.stores.ncp import NcpSecretManagerStore

from ._factories import make_strategy
from ._ncp_job import JobView, StoreView
from .engine import Checkpoint, Rotator
from .errors import InvalidRotationSetup

__all__ = ["SEED_EXCLUDED", "action", "for_engine", "main"]

#: The characters NCP's sample action excludes from passwords.
SEED_EXCLUDED = "\"&'+/\\`"
_ARGS = ("secretId", "jobToken", "accessKey", "secretKey")


def _setting(args: Mapping[str, Any], env: Mapping[str, str], arg: str, var: str) -> str | None:
    value = args.get(arg)
    return str(value) if value else (env.get(var) or None)


def action(
    args: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    checkpoint: Checkpoint | None = None,
    store_factory: Callable[..., NcpSecretManagerStore] = NcpSecretManagerStore,
) -> dict[str, Any]:
    """Run one rotation job; returns ``{"done": True, "resumed": bool}`` or ``{"done": False,
    "error_message": …}`` (after ``/fail``), as the seed's action does. Never returns secrets.

    ``checkpoint`` is the engine's hook (tests stop the process at step boundaries there).
    """
    env = os.environ if env is None else env
    missing = [k for k in _ARGS if not isinstance(args.get(k), str) or not args.get(k)]
    if missing:
        return {"done": False, "error_message": f"the action needs {', '.join(missing)}"}
    try:
        store = store_factory(
            _setting(args, env, "endpoint", "NCLOUD_SECRET_MANAGER_ENDPOINT"),
            access_key=args["accessKey"], secret_key=args["secretKey"],
            verify=_setting(args, env, "caFile", "NCLOUD_CA_FILE") or True, env=env,
        )
        job = store.job(args["secretId"], args["jobToken"])
    except SecretClientError as exc:  # no store, so no /fail to send: the settings are wrong
        return {"done": False, "error_message": f"{type(exc).__name__}: {exc}"}
    try:
        started = job.start()
        view = JobView(store, job, dict(started.chain), started.rotation_targets)
        rotator = _rotator(view, args, env, checkpoint)
        result = rotator.rotate(view.secret_id)
        return {"done": True, "resumed": result.resumed}
    except Exception as exc:
        with contextlib.suppress(SecretClientError):
            job.fail()
        # Our errors never carry secret values; others are named by type only.
        text = str(exc) if isinstance(exc, SecretClientError) else type(exc).__name__
        return {"done": False, "error_message": f"{type(exc).__name__}: {text}"}
    finally:
        store.close()


def _rotator(view: JobView, args: Mapping[str, Any], env: Mapping[str, str], checkpoint: Checkpoint | None) -> Rotator:
    current = DbCredentials.from_secret(view.get_secret(view.secret_id))
    default = "alternating" if current.master_secret else "single"
    kind = _setting(args, env, "strategy", "ROTATION_STRATEGY") or default
    if kind not in ("single", "alternating"):
        raise InvalidRotationSetup("the NCP action rotates with strategy 'single' or 'alternating'")
    try:
        length = int(env.get("ROTATION_PASSWORD_LENGTH", "16"))
    except ValueError:
        raise InvalidRotationSetup("ROTATION_PASSWORD_LENGTH must be a number") from None
    strategy = make_strategy(
        kind,
        exclude_characters=env.get("EXCLUDE_CHARACTERS", SEED_EXCLUDED),
        password_length=length,
        ca_file=env.get("ROTATION_DB_CA_FILE") or None,
    )
    return Rotator(view, strategy=strategy, checkpoint=checkpoint)


def for_engine(store: NcpSecretManagerStore) -> StoreView:
    """``store`` as an in-process :class:`~rotation.Rotator` (or :class:`~rotation.Scheduler`)
    needs it: ``Rotator(for_engine(store), strategy=SingleUserStrategy())``.

    Outside a job NCP's service is not involved: pending is written with Update Secret Stage
    Value and promoted with Update Secret Value (see docs/rotation.md). Only keys named in the
    secret's ``rotationTargets`` may change.
    """
    return StoreView(store)


def main(args: dict[str, Any]) -> dict[str, Any]:
    """The Cloud Functions entry point (``main``, as NCP's Python actions are named)."""
    return action(args)
