"""moto's Secrets Manager server on loopback, for testing code that uses AWS Secrets Manager.

:class:`MotoServer` runs moto's ``ThreadedMotoServer`` on ``127.0.0.1`` (a real HTTP server
that botocore reaches through ``endpoint_url``; no in-process patching) and hands out
boto3 clients and :class:`~secretclient.stores.aws.AwsSecretsManagerStore` objects with test
credentials. Needs ``moto[server]`` (in the ``dev`` extra).

moto keeps its state per process, not per server: :meth:`MotoServer.reset` (called on
start) empties it, so use one server at a time.
"""

from __future__ import annotations

import urllib.request
from typing import Any, Self

from secretclient.stores.aws import AwsSecretsManagerStore
from secretclient.testing._lifecycle import StartStop

__all__ = ["TEST_REGION", "MotoServer", "enable_rotation"]

TEST_REGION = "us-east-1"
_TEST_KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}


class MotoServer(StartStop):
    """``with MotoServer() as moto: store = moto.store()``."""

    def __init__(self, *, region: str = TEST_REGION) -> None:
        self.region = region
        self._server: Any = None
        self.endpoint_url = ""

    def start(self) -> Self:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise RuntimeError("MotoServer needs moto's server: pip install 'moto[server]'") from None
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.reset()
        return self

    @property
    def _has_started(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def reset(self) -> None:
        """Forget every secret (moto's ``/moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as resp:
            resp.read()

    def store(self, **options: Any) -> AwsSecretsManagerStore:
        """An AwsSecretsManagerStore on this server (test credentials)."""
        return AwsSecretsManagerStore(region=self.region, endpoint_url=self.endpoint_url,
                                      access_key_id=_TEST_KEYS["access_key_id"],
                                      secret_access_key=_TEST_KEYS["secret_access_key"], **options)

    def client(self) -> Any:
        """A plain boto3 ``secretsmanager`` client on this server."""
        import boto3

        return boto3.session.Session(region_name=self.region).client(
            "secretsmanager",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=_TEST_KEYS["access_key_id"],
            aws_secret_access_key=_TEST_KEYS["secret_access_key"],
        )

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing boto3 (``AwsSecretsManagerStore()`` without arguments)
        and rotation functions at this server."""
        return {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": _TEST_KEYS["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": _TEST_KEYS["secret_access_key"],
            "SECRETS_MANAGER_ENDPOINT": self.endpoint_url,  # AWS's rotation functions' variable
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.endpoint_url,  # boto3's own, for any client
        }


def enable_rotation(client: Any, secret_id: str, *, days: int = 30,
                    lambda_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:rotate") -> None:
    """Turn automatic rotation on for ``secret_id`` on moto, as ``RotateSecret`` does on AWS.

    moto cannot invoke the Lambda: it answers ``ResourceNotFoundException`` after turning
    rotation on and labelling a stray version AWSPENDING, which is removed here so that the
    next rotation starts clean.
    """
    from botocore.exceptions import ClientError

    # moto refuses RotateSecret while AWSPENDING shares a version with AWSCURRENT (AWS takes
    # that as a finished rotation): clear it first.
    _clear_pending(client, secret_id, keep_on_current=False)
    try:
        client.rotate_secret(SecretId=secret_id, RotationLambdaARN=lambda_arn,
                             RotationRules={"AutomaticallyAfterDays": days}, RotateImmediately=False)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    _clear_pending(client, secret_id, keep_on_current=True)


def _clear_pending(client: Any, secret_id: str, *, keep_on_current: bool) -> None:
    stages = client.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    for version_id, labels in stages.items():
        if "AWSPENDING" in labels and not (keep_on_current and "AWSCURRENT" in labels):
            client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING",
                                               RemoveFromVersionId=version_id)
