"""rotation: in-process rotation of MySQL/MariaDB, PostgreSQL (and ApsaraDB RDS) credentials held in a secret store.

The new / set / test / end steps of Alibaba's Function Compute + CloudFlow rotation, run by
:class:`Rotator` — resumable, locked across instances, fenced in the store — on a schedule
(:class:`Scheduler`), from the command line (``rotation …``) or as the Function Compute
handler :func:`rotation.fc.handler`. See docs/rotation.md.
"""

from ._dry_run import Plan
from ._pg_conn import PgAdvisoryLock
from .engine import STEPS, AbortResult, RotationResult, Rotator
from .errors import (
    AccountInUse,
    DatabaseError,
    InvalidRotationSetup,
    LockLost,
    LoginFailed,
    ProtectedAccount,
    RdsApiError,
    RotationConflict,
    RotationError,
    RotationInProgress,
    RotationTooSoon,
    UnsafeAccountName,
    UnsupportedGrant,
    UnsupportedServer,
    VerificationFailed,
)
from .events import RotationEvent
from .lock import LocalLock, Lock, LockHandle, MySqlLock, lock_name
from .passwords import MYSQL_PASSWORD_POLICY, POSTGRES_PASSWORD_POLICY, RDS_PASSWORD_POLICY
from .scheduler import RotationWindow, Scheduler
from .status import Status
from .store_retry import StoreRetryPolicy
from .strategies import (
    AlternatingUsersStrategy,
    PostgresAlternatingUsersStrategy,
    PostgresSingleUserStrategy,
    RdsApiStrategy,
    SingleUserStrategy,
    Strategy,
)
from .strategies.base import DrainPolicy

__all__ = [
    "MYSQL_PASSWORD_POLICY",
    "POSTGRES_PASSWORD_POLICY",
    "RDS_PASSWORD_POLICY",
    "STEPS",
    "AbortResult",
    "AccountInUse",
    "AlternatingUsersStrategy",
    "DatabaseError",
    "DrainPolicy",
    "InvalidRotationSetup",
    "LocalLock",
    "Lock",
    "LockHandle",
    "LockLost",
    "LoginFailed",
    "MySqlLock",
    "PgAdvisoryLock",
    "Plan",
    "PostgresAlternatingUsersStrategy",
    "PostgresSingleUserStrategy",
    "ProtectedAccount",
    "RdsApiError",
    "RdsApiStrategy",
    "RotationConflict",
    "RotationError",
    "RotationEvent",
    "RotationInProgress",
    "RotationResult",
    "RotationTooSoon",
    "RotationWindow",
    "Rotator",
    "Scheduler",
    "SingleUserStrategy",
    "Status",
    "StoreRetryPolicy",
    "Strategy",
    "UnsafeAccountName",
    "UnsupportedGrant",
    "UnsupportedServer",
    "VerificationFailed",
    "lock_name",
]
