"""Error answers of the local Alibaba Cloud emulators: the API gateway's common codes and
:class:`RpcError`, which each emulator subclasses with its product's table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

__all__ = ["COMMON_ERRORS", "RpcError", "missing"]

#: Code -> (HTTP status, message) of the errors the API gateway answers for every product.
COMMON_ERRORS: dict[str, tuple[int, str]] = {
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidSecurityToken.Malformed": (400, "Specified SecurityToken is malformed."),
    "InvalidSecurityToken.Mismatch": (400, "Specified SecurityToken mismatch with the AccessKey."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
}


class RpcError(Exception):
    """An error answer: code, HTTP status and message (status and message default to the
    common gateway errors, else 400 and the code)."""

    table: ClassVar[Mapping[str, tuple[int, str]]] = COMMON_ERRORS

    def __init__(self, code: str, message: str | None = None, status: int | None = None) -> None:
        known = self.table.get(code) or COMMON_ERRORS.get(code, (400, code))
        super().__init__(code)
        self.code = code
        self.status = status if status is not None else known[0]
        self.message = message if message is not None else known[1]


def missing(param: str) -> RpcError:
    """The gateway's answer to a missing required parameter (``MissingSecretName``)."""
    return RpcError(f"Missing{param}", f"{param} is mandatory for this action.", 400)
