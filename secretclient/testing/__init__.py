"""Test helpers for code that uses secretclient: a throwaway MariaDB, a fault-injecting TCP
proxy, a local KMS emulator and a pytest plugin with fixtures for all of them.

``KmsEmulator`` is imported on first use, so this package works without the optional
Alibaba Cloud SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secretclient.testing.certs import TestCertificates, make_certificates
from secretclient.testing.mariadb import MariaDB, MariaDBError, MariaDBNotInstalled
from secretclient.testing.proxy import FaultProxy

if TYPE_CHECKING:
    from secretclient.testing.kms_emulator import KmsEmulator

__all__ = [
    "FaultProxy",
    "KmsEmulator",
    "MariaDB",
    "MariaDBError",
    "MariaDBNotInstalled",
    "TestCertificates",
    "make_certificates",
]


def __getattr__(name: str) -> Any:
    if name == "KmsEmulator":
        from secretclient.testing.kms_emulator import KmsEmulator

        return KmsEmulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
