"""One adapter between our code and ``aliyunsdkcore`` for Alibaba Cloud RPC APIs (KMS, RDS).

It owns what every caller of the SDK must get right the same way:

* credentials: arguments, else ``$ALIBABA_CLOUD_*``, else a clear error (:func:`make_client`);
* the STS SecurityToken travels in the signed form body, never in the URL: the SDK logs the
  query parameters at DEBUG and quotes the URL in its connection errors;
* exactly one attempt per request through ``AcsClient._implementation_of_do_action``, the one
  private SDK call the project allows (``do_action_with_exception`` would log the response
  body, which holds secret data, at DEBUG);
* errors raised outside ``except`` (no SDK exception chained to them: its text may quote the
  request), server text capped, answers checked to be JSON objects.

What an error *means* stays with each caller: it passes a function that turns an SDK
exception (or :class:`BadResponse`) into its own typed error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

__all__ = ["MAX_SERVER_TEXT", "BadResponse", "call", "credential", "make_client", "sdk", "server_text"]

#: Longest server message copied into one of our errors.
MAX_SERVER_TEXT = 300
ENV_AK = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SK = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"


class BadResponse(Exception):
    """The service answered 2xx with a body that is not a JSON object (what is wrong, no body)."""


def sdk(missing: Callable[[str], Exception]) -> SimpleNamespace:
    """The ``aliyunsdkcore`` pieces we use, imported on first use; ``missing(message)`` is raised
    when the SDK is not installed."""
    try:
        from aliyunsdkcore import client
        from aliyunsdkcore.acs_exception import exceptions
        from aliyunsdkcore.auth import credentials
        from aliyunsdkcore.auth.signers.access_key_signer import AccessKeySigner
        from aliyunsdkcore.http import protocol_type
        from aliyunsdkcore.request import RpcRequest
    except ImportError:
        raise missing("the Alibaba Cloud SDK (aliyun-python-sdk-core) is not installed") from None
    return SimpleNamespace(
        client=client,
        exceptions=exceptions,
        credentials=credentials,
        AccessKeySigner=AccessKeySigner,
        protocol_type=protocol_type,
        RpcRequest=RpcRequest,
    )


def credential(
    access_key_id: str | None,
    access_key_secret: str | None,
    security_token: str | None,
    given: Any,
    *,
    missing: Callable[[str], Exception],
) -> Any:
    """``given`` (any ``aliyunsdkcore`` credential object), else an AccessKey pair (with an STS
    token) from the arguments, else from ``$ALIBABA_CLOUD_ACCESS_KEY_ID`` /
    ``$ALIBABA_CLOUD_ACCESS_KEY_SECRET`` / ``$ALIBABA_CLOUD_SECURITY_TOKEN``.

    The environment's token is used only with the environment's key: an explicit key is never
    paired with a token meant for another one.
    """
    if given is not None:
        return given
    mod = sdk(missing)
    ak = access_key_id or os.environ.get(ENV_AK)
    sk = access_key_secret or os.environ.get(ENV_SK)
    token = security_token or (None if access_key_id else os.environ.get(ENV_TOKEN))
    if not ak or not sk:
        raise missing(
            "no credentials: give access_key_id= and access_key_secret= (plus security_token= for "
            f"STS), credential=, or set ${ENV_AK} and ${ENV_SK}"
        )
    if token:
        return mod.credentials.StsTokenCredential(ak, sk, token)
    return mod.credentials.AccessKeyCredential(ak, sk)


def make_client(region: str, cred: Any, *, missing: Callable[[str], Exception], **options: Any) -> Any:
    """An ``AcsClient`` for ``region`` signing with ``cred``; ``options`` go to ``AcsClient``.

    The credential is remembered beside the client so that :func:`call` can move an STS token
    out of the URL.
    """
    mod = sdk(missing)
    client = mod.client.AcsClient(region_id=region, credential=cred, **options)
    client.secretclient_credential = cred  # our own attribute on the client, read by call()
    return client


def _token_signer(client: Any, mod: SimpleNamespace) -> tuple[Any, str | None]:
    """``(signer, token)``: for STS credentials, a plain AccessKey signer and the token to put
    in the (signed) body; else ``(None, None)``: the client's own signer."""
    cred = getattr(client, "secretclient_credential", None)
    if isinstance(cred, mod.credentials.StsTokenCredential):
        key = mod.credentials.AccessKeyCredential(cred.sts_access_key_id, cred.sts_access_key_secret)
        return mod.AccessKeySigner(key), cred.sts_token
    return None, None


def _do_action(client: Any, request: Any, signer: Any) -> tuple[Any, Any, Any, Any]:
    """The one call of the SDK's private ``_implementation_of_do_action`` (pinned by a test):
    ``(status, headers, body, exception)`` without the DEBUG log of the response body."""
    status, headers, body, exc = client._implementation_of_do_action(request, signer)
    return status, headers, body, exc


def call(
    client: Any,
    request: Any,
    fail: Callable[[BaseException], Exception],
    *,
    on_date: Callable[[object], None] | None = None,
) -> dict[str, Any]:
    """Send ``request`` once and return the answer's JSON object.

    ``on_date`` gets the ``Date`` header of every answer, errors included (the server's clock).

    ``fail(exc)`` turns an SDK ``ServerException`` / ``ClientException``, any other exception
    the SDK let through, or a :class:`BadResponse` into the caller's error, which is raised
    with no exception chained to it.
    """
    mod = sdk(lambda message: fail(BadResponse(message)))
    signer, token = _token_signer(client, mod)
    if token is not None:
        request.add_body_params("SecurityToken", token)
    error: Exception | None = None
    raw: Any = None
    try:
        _, headers, raw, sdk_error = _do_action(client, request, signer)
        if on_date is not None and headers is not None:
            on_date(headers.get("Date"))
        if sdk_error is not None:
            raise sdk_error
    except Exception as exc:
        error = fail(exc)
    if error is not None:
        # Raised here, outside the except clause, so that neither __cause__ nor __context__
        # holds the SDK's exception.
        raise error
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        error = fail(BadResponse("answered with a body that is not a JSON object"))
        raise error
    return parsed


def server_text(exc: BaseException, *, hide: tuple[str, ...] = ()) -> str:
    """The server's message of a ``ServerException``, or ``""`` when it is longer than
    :data:`MAX_SERVER_TEXT` or contains any of ``hide`` (e.g. a password just sent)."""
    getter = getattr(exc, "get_error_msg", None)
    text = str(getter() or "") if getter is not None else ""
    if len(text) > MAX_SERVER_TEXT or any(h and h in text for h in hide):
        return ""
    return text
