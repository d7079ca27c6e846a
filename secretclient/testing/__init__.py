"""Test helpers for code that uses secretclient: a throwaway MariaDB, a fault-injecting TCP
proxy, local KMS and RDS (account API) emulators and a proxy routing host names to them,
a manual clock and executor, and a pytest plugin with fixtures.

Only the stores and clients the emulators hand out need the optional Alibaba Cloud SDK.
"""

from __future__ import annotations

from secretclient.manual import ManualClock, ManualExecutor
from secretclient.testing.certs import TestCertificates, make_certificates
from secretclient.testing.kms_emulator import KmsEmulator
from secretclient.testing.mariadb import MariaDB, MariaDBError, MariaDBNotInstalled
from secretclient.testing.proxy import FaultProxy
from secretclient.testing.rds_emulator import RdsEmulator
from secretclient.testing.rpc_server import ProxyRouter

__all__ = [
    "FaultProxy",
    "KmsEmulator",
    "ManualClock",
    "ManualExecutor",
    "MariaDB",
    "MariaDBError",
    "MariaDBNotInstalled",
    "ProxyRouter",
    "RdsEmulator",
    "TestCertificates",
    "make_certificates",
]
