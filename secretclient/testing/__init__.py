"""Test helpers for code that uses secretclient: a throwaway MariaDB and PostgreSQL, a fault-injecting
TCP proxy, local KMS, RDS (account API) and NCP Secret Manager emulators and a proxy routing host names
to them,
a manual clock and executor, and a pytest plugin with fixtures.

Only the stores and clients the emulators hand out need the optional Alibaba Cloud SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from secretclient.testing.certs import TestCertificates, make_certificates
from secretclient.testing.manual import ManualClock, ManualExecutor
from secretclient.testing.proxy import FaultProxy

__all__ = [
    "FaultProxy",
    "KmsEmulator",
    "ManualClock",
    "ManualExecutor",
    "MariaDB",
    "MariaDBError",
    "MariaDBNotInstalled",
    "NcpEmulator",
    "PostgreSQL",
    "PostgreSQLError",
    "PostgreSQLNotInstalled",
    "ProxyRouter",
    "RdsEmulator",
    "TestCertificates",
    "make_certificates",
]

if TYPE_CHECKING:
    from secretclient.testing.kms_emulator import KmsEmulator
    from secretclient.testing.mariadb import MariaDB, MariaDBError, MariaDBNotInstalled
    from secretclient.testing.ncp_emulator import NcpEmulator
    from secretclient.testing.postgresql import PostgreSQL, PostgreSQLError, PostgreSQLNotInstalled
    from secretclient.testing.rds_emulator import RdsEmulator
    from secretclient.testing.rpc_server import ProxyRouter

# The emulators and the database servers load on first use, so that `python -m
# secretclient.testing.kms_emulator` (or `.mariadb`, `.postgresql`) runs its module once (an eager
# import here makes runpy warn about a second copy).
_LAZY = {
    "MariaDB": "secretclient.testing.mariadb",
    "MariaDBError": "secretclient.testing.mariadb",
    "MariaDBNotInstalled": "secretclient.testing.mariadb",
    "KmsEmulator": "secretclient.testing.kms_emulator",
    "RdsEmulator": "secretclient.testing.rds_emulator",
    "NcpEmulator": "secretclient.testing.ncp_emulator",
    "ProxyRouter": "secretclient.testing.rpc_server",
    "PostgreSQL": "secretclient.testing.postgresql",
    "PostgreSQLError": "secretclient.testing.postgresql",
    "PostgreSQLNotInstalled": "secretclient.testing.postgresql",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'secretclient.testing' has no attribute {name!r}")
