"""Test helpers for code that uses secretclient: a throwaway MariaDB, a fault-injecting TCP
proxy, a local KMS emulator, a manual clock and executor, and a pytest plugin with fixtures.

Only the stores the emulator hands out need the optional Alibaba Cloud SDK.
"""

from __future__ import annotations

from secretclient.manual import ManualClock, ManualExecutor
from secretclient.testing.certs import TestCertificates, make_certificates
from secretclient.testing.kms_emulator import KmsEmulator
from secretclient.testing.mariadb import MariaDB, MariaDBError, MariaDBNotInstalled
from secretclient.testing.proxy import FaultProxy

__all__ = [
    "FaultProxy",
    "KmsEmulator",
    "ManualClock",
    "ManualExecutor",
    "MariaDB",
    "MariaDBError",
    "MariaDBNotInstalled",
    "TestCertificates",
    "make_certificates",
]
