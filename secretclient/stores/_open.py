"""Open a store from a short text spec, for command lines and environment variables.

``embedded:PATH`` opens an :class:`EmbeddedStore` (its key, if any, from
``$SECRETCLIENT_EMBEDDED_KEY`` as hex or base64); ``kms`` opens an :class:`AliyunKmsStore`
whose options default to the ``ALIBABA_CLOUD_*`` environment variables; ``aws`` opens an
:class:`AwsSecretsManagerStore` whose options default to boto3's usual sources (``AWS_*``);
``ncp`` opens an :class:`NcpSecretManagerStore` (keys from ``$NCLOUD_ACCESS_KEY`` /
``$NCLOUD_SECRET_KEY`` unless given).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from ..errors import InvalidParameter
from .base import SecretStore

__all__ = ["EMBEDDED_KEY_ENV", "open_store"]

#: Environment variable holding the EmbeddedStore key (hex or base64) for ``embedded:PATH``.
EMBEDDED_KEY_ENV = "SECRETCLIENT_EMBEDDED_KEY"


def _decode_key(text: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(key) in (16, 24, 32):
            return key
    raise InvalidParameter(f"${EMBEDDED_KEY_ENV} must be a 16, 24 or 32 byte key in hex or base64")


def open_store(
    spec: str,
    *,
    region: str | None = None,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    security_token: str | None = None,
    verify: bool | str | None = None,
    env: Mapping[str, str] | None = None,
    create: bool = True,
) -> SecretStore:
    """The store ``spec`` names: ``embedded:PATH``, ``kms`` or ``aws``.

    For ``aws``, ``endpoint`` is the endpoint URL and ``access_key_secret`` the secret access key.

    With ``create=False`` a missing ``embedded:PATH`` file is an error instead of a new store.
    """
    env = os.environ if env is None else env
    if spec.startswith("embedded:") and len(spec) > len("embedded:"):
        from .embedded import EmbeddedStore

        key_text = env.get(EMBEDDED_KEY_ENV)
        return EmbeddedStore(
            spec[len("embedded:"):], key=_decode_key(key_text) if key_text else None, create=create
        )
    if spec == "kms":
        from .aliyun import AliyunKmsStore

        return AliyunKmsStore(
            region=region, endpoint=endpoint, access_key_id=access_key_id, access_key_secret=access_key_secret,
            security_token=security_token, verify=verify,
        )
    if spec == "aws":
        from .aws import AwsSecretsManagerStore

        # AWS's names: endpoint_url, secret_access_key, session_token.
        return AwsSecretsManagerStore(
            region=region, endpoint_url=endpoint, access_key_id=access_key_id, secret_access_key=access_key_secret,
            session_token=security_token, verify=verify,
        )
    if spec == "ncp":
        from .ncp import NcpSecretManagerStore

        # NCP's keys: access_key_id / access_key_secret, else $NCLOUD_ACCESS_KEY / $NCLOUD_SECRET_KEY.
        return NcpSecretManagerStore(
            endpoint, region=region, access_key=access_key_id, secret_key=access_key_secret,
            verify=True if verify is None else verify, env=env,
        )
    raise InvalidParameter("store must be 'embedded:PATH', 'kms', 'aws' or 'ncp'")
