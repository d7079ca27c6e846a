"""A local ApsaraDB RDS account API: a real HTTP(S) server speaking the RDS RPC API (2014-08-15)
that creates and changes accounts on a real MariaDB.

It checks request signatures like every Alibaba Cloud RPC service (shared with the KMS
emulator: :mod:`secretclient.testing.rpc_server`), answers with RDS's JSON shapes, error codes
and HTTP statuses, and turns each call into SQL run by the MariaDB's admin account:

* accounts are ``'name'@'%'``; ``AccountType=Super`` gets RDS's privileged-account set on
  ``*.*`` WITH GRANT OPTION, ``Normal`` only what it is granted;
* ``AccountPrivilege`` ReadWrite / ReadOnly / DDLOnly / DMLOnly become the privileges RDS
  documents for it on ``DBName.*`` (plus its global PROCESS / REPLICATION ones on ``*.*``);
  ``DescribeAccounts`` maps them back, and reports any other set as ``Custom``.

    with MariaDB() as db, RdsEmulator(db) as rds:
        client = rds.acs_client()        # aliyunsdkcore AcsClient, "rds" endpoint set
        rds.instance_id                  # the DBInstanceId to pass
        rds.calls["CreateAccount"]

Code written for RDS with ``aliyun-python-sdk-rds`` runs against it with only the endpoint
changed, or unchanged through :class:`~secretclient.testing.rpc_server.ProxyRouter`.
"""

from __future__ import annotations

import re
import secrets as _secrets
import string
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Unpack

import pymysql

from secretclient.errors import InvalidParameter
from secretclient.testing.mariadb import MariaDB
from secretclient.testing.rpc_server import COMMON_ERRORS, EmulatorOptions, Handler, RpcEmulator, RpcError

__all__ = ["ACCOUNT_PRIVILEGES", "SUPER_PRIVILEGES", "RdsEmulator", "RdsError"]

API_VERSION = "2014-08-15"

# Code -> (HTTP status, message) as RDS documents them.
_RDS_ERRORS: dict[str, tuple[int, str]] = {
    **COMMON_ERRORS,
    "InvalidParameter": (400, "The specified parameter is not valid."),
    "InvalidDBInstanceId.NotFound": (404, "The DBInstanceId provided does not exist in our records."),
    "InvalidAccountName.Duplicate": (400, "The specified account name already exists."),
    "InvalidAccountName.NotFound": (404, "Specified AccountName does not exist."),
    "InvalidAccountName.Malformed": (400, "Specified account name is not valid."),
    "InvalidAccountPassword.Malformed": (400, "Specified account password is not valid."),
    "InvalidAccountType.Malformed": (400, "Specified account type is not valid."),
    "InvalidAccountPrivilege.Malformed": (400, "Specified account privilege is not valid."),
    "InvalidDBName.Malformed": (400, "Specified DB name is not valid."),
    "InvalidDBName.NotFound": (404, "Specified one or more DB name does not exist or DB status does not support."),
    "Throttling": (400, "Request was denied due to request throttling."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}

#: The privileges each ``AccountPrivilege`` gives on ``DBName.*`` (RDS for MySQL's account
#: permissions table); the global ones follow in :data:`_GLOBAL_PRIVILEGES`.
ACCOUNT_PRIVILEGES: dict[str, frozenset[str]] = {
    "ReadOnly": frozenset({"SELECT", "SHOW VIEW"}),
    "ReadWrite": frozenset({
        "ALTER", "ALTER ROUTINE", "CREATE", "CREATE ROUTINE", "CREATE TEMPORARY TABLES", "CREATE VIEW",
        "DELETE", "DROP", "EVENT", "EXECUTE", "INDEX", "INSERT", "LOCK TABLES", "REFERENCES", "SELECT",
        "SHOW VIEW", "TRIGGER", "UPDATE",
    }),
    "DDLOnly": frozenset({
        "ALTER", "ALTER ROUTINE", "CREATE", "CREATE ROUTINE", "CREATE TEMPORARY TABLES", "CREATE VIEW",
        "DROP", "INDEX", "LOCK TABLES", "SHOW VIEW",
    }),
    "DMLOnly": frozenset({
        "CREATE TEMPORARY TABLES", "DELETE", "EVENT", "EXECUTE", "INSERT", "LOCK TABLES", "SELECT",
        "SHOW VIEW", "TRIGGER", "UPDATE",
    }),
}
# Server-wide privileges RDS adds with a database privilege (they exist only on *.*).
_GLOBAL_PRIVILEGES: dict[str, frozenset[str]] = {
    "ReadOnly": frozenset({"REPLICATION SLAVE", "REPLICATION CLIENT"}),
    "ReadWrite": frozenset({"PROCESS", "REPLICATION SLAVE", "REPLICATION CLIENT"}),
    "DDLOnly": frozenset({"PROCESS", "REPLICATION SLAVE", "REPLICATION CLIENT"}),
    "DMLOnly": frozenset({"PROCESS", "REPLICATION SLAVE", "REPLICATION CLIENT"}),
}
_MANAGED_GLOBALS = frozenset({"PROCESS", "REPLICATION SLAVE", "REPLICATION CLIENT"})
#: What a privileged (``Super``) account holds on ``*.*``.
SUPER_PRIVILEGES: frozenset[str] = frozenset({
    "ALTER", "ALTER ROUTINE", "CREATE", "CREATE VIEW", "CREATE ROUTINE", "CREATE USER",
    "CREATE TEMPORARY TABLES", "DELETE", "DROP", "EVENT", "EXECUTE", "INDEX", "INSERT", "LOCK TABLES",
    "PROCESS", "RELOAD", "REFERENCES", "REPLICATION SLAVE", "REPLICATION CLIENT", "SELECT", "SHOW VIEW",
    "TRIGGER", "UPDATE",
})
# MariaDB 10.5+ reports REPLICATION CLIENT under its new name.
_ALIASES = {"BINLOG MONITOR": "REPLICATION CLIENT"}

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*[A-Za-z0-9]")
_DB_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RESERVED = frozenset({"root", "mysql", "mariadb.sys", "admin", "aliyun_root", "replicator", "public"})
_SPECIALS = "!@#$%^&*()_+-="


class RdsError(RpcError):
    """An error answer: RDS code, HTTP status and message (RDS's own for known codes)."""

    table: ClassVar[Mapping[str, tuple[int, str]]] = _RDS_ERRORS


def _password_ok(password: str) -> bool:
    """RDS's password rules: 8-32 characters of letters, digits and ``!@#$%^&*()_+-=``, 3 classes."""
    allowed = set(string.ascii_letters + string.digits + _SPECIALS)
    if not 8 <= len(password) <= 32 or not set(password) <= allowed:
        return False
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits, _SPECIALS)
    return sum(any(c in cls for c in password) for cls in classes) >= 3


def _db_pattern(db: str) -> str:
    """``db`` as a quoted grant target: ``_`` escaped, since it is a wildcard in database grants."""
    return "`" + db.replace("_", "\\_") + "`"


def _split(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",")]


class RdsEmulator(RpcEmulator):
    """A local RDS account API for the instance :attr:`instance_id`, acting on ``mariadb``.

    :param mariadb: the server the accounts live on (its admin connection runs the SQL).
    :param instance_id: the DBInstanceId it answers to (default ``rm-`` + random).
    :param name_limit: longest account name accepted (32: MySQL 5.7/8.0; 16: MySQL 5.6).
    :param options: :class:`~secretclient.testing.rpc_server.EmulatorOptions`, as for
        :class:`~secretclient.testing.KmsEmulator` (signatures, TLS, fault injection).

    Account descriptions are kept in memory. Unlike RDS it accepts more than one ``Super``
    account (RDS for MySQL allows one) and never refuses an operation for instance status.
    """

    product = "Rds"
    endpoint_product = "rds"
    api_version = API_VERSION
    error_class = RdsError

    def __init__(
        self,
        mariadb: MariaDB,
        instance_id: str | None = None,
        *,
        name_limit: int = 32,
        **options: Unpack[EmulatorOptions],
    ) -> None:
        super().__init__(**options)
        if not 2 <= name_limit <= 80:
            raise InvalidParameter("name_limit must be from 2 to 80")
        self.mariadb = mariadb
        self.instance_id = instance_id or "rm-" + _secrets.token_hex(8)
        self.name_limit = name_limit
        self._descriptions: dict[str, str] = {}
        self._db_lock = threading.Lock()
        self._conn: pymysql.Connection | None = None

    def stop(self) -> None:
        """Stop serving and close the admin connection."""
        super().stop()
        with self._db_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def tls_hostnames(self) -> tuple[str, ...]:
        return ("rds.aliyuncs.com", f"rds.{self.region}.aliyuncs.com", f"rds-vpc.{self.region}.aliyuncs.com")

    def _actions(self) -> Mapping[str, Handler]:
        return {
            "CreateAccount": self._create_account,
            "DeleteAccount": self._delete_account,
            "DescribeAccounts": self._describe_accounts,
            "ResetAccountPassword": self._reset_account_password,
            "GrantAccountPrivilege": self._grant_account_privilege,
            "RevokeAccountPrivilege": self._revoke_account_privilege,
            "DescribeDBInstances": self._describe_db_instances,
        }

    def _invoke(self, handler: Handler, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            return handler(params)
        except pymysql.MySQLError as exc:
            # Never the statement or the server's text: both may quote a password.
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else "?"
            raise RdsError("InternalError", f"DB Operation Failed: MariaDB error {code}.", 500) from None

    # -- SQL plumbing ----------------------------------------------------------------------

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """The admin connection's cursor, one request at a time (reconnecting when needed)."""
        with self._db_lock:
            if self._conn is not None:
                try:
                    self._conn.ping(reconnect=False)
                except pymysql.MySQLError:  # the server restarted or killed us: start over
                    self._conn = None
            if self._conn is None:
                self._conn = self.mariadb.admin()
            with self._conn.cursor() as cur:
                yield cur

    @staticmethod
    def _exists(cur: Any, name: str) -> bool:
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s AND Host = %s", (name, "%"))
        return bool(cur.fetchone()[0])

    @staticmethod
    def _globals(cur: Any, name: str) -> set[str]:
        cur.execute(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s", (f"'{name}'@'%'",)
        )
        return {_ALIASES.get(str(r[0]), str(r[0])) for r in cur.fetchall()} - {"USAGE"}

    @staticmethod
    def _schema_privileges(cur: Any, name: str) -> dict[str, set[str]]:
        cur.execute(
            "SELECT TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = %s",
            (f"'{name}'@'%'",),
        )
        out: dict[str, set[str]] = {}
        for schema, privilege in cur.fetchall():
            db = str(schema).replace("\\_", "_").replace("\\%", "%")
            out.setdefault(db, set()).add(str(privilege))
        return out

    @staticmethod
    def _grant_lines(privileges: frozenset[str] | set[str]) -> str:
        return ", ".join(sorted(privileges))

    def _sync_globals(self, cur: Any, name: str) -> None:
        """Give a Normal account exactly the global privileges its database privileges imply."""
        have = self._globals(cur, name)
        if "CREATE USER" in have:
            return  # a Super account holds them all
        want: set[str] = set()
        for privilege in self._schema_privileges(cur, name).values():
            kind = self._kind(privilege)
            want |= _GLOBAL_PRIVILEGES.get(kind, frozenset())
        if want - have:
            cur.execute(f"GRANT {self._grant_lines(want - have)} ON *.* TO %s@'%%'", (name,))
        extra = (have & _MANAGED_GLOBALS) - want
        if extra:
            cur.execute(f"REVOKE {self._grant_lines(extra)} ON *.* FROM %s@'%%'", (name,))

    @staticmethod
    def _kind(privileges: set[str]) -> str:
        return next((k for k, v in ACCOUNT_PRIVILEGES.items() if v == privileges), "Custom")

    # -- validation ------------------------------------------------------------------------

    def _instance(self, params: Mapping[str, str]) -> None:
        (instance,) = self._require(params, "DBInstanceId")
        if instance != self.instance_id:
            raise RdsError("InvalidDBInstanceId.NotFound")

    def _account_name(self, params: Mapping[str, str]) -> str:
        (name,) = self._require(params, "AccountName")
        if not (2 <= len(name) <= self.name_limit and _NAME_RE.fullmatch(name)) or name.lower() in _RESERVED:
            raise RdsError("InvalidAccountName.Malformed")
        return name

    def _password(self, params: Mapping[str, str]) -> str:
        (password,) = self._require(params, "AccountPassword")
        if not _password_ok(password):
            raise RdsError("InvalidAccountPassword.Malformed")
        return password

    @staticmethod
    def _databases(cur: Any, raw: str) -> list[str]:
        names = _split(raw)
        if not all(_DB_RE.fullmatch(n) for n in names):
            raise RdsError("InvalidDBName.Malformed")
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        known = {str(r[0]) for r in cur.fetchall()}
        if any(n not in known for n in names):
            raise RdsError("InvalidDBName.NotFound")
        return names

    def _existing(self, cur: Any, params: Mapping[str, str]) -> str:
        self._instance(params)
        name = self._account_name(params)
        if not self._exists(cur, name):
            raise RdsError("InvalidAccountName.NotFound")
        return name

    # -- actions ---------------------------------------------------------------------------

    def _create_account(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._instance(params)
        name = self._account_name(params)
        password = self._password(params)
        kind = params.get("AccountType") or "Normal"
        if kind not in ("Normal", "Super"):
            raise RdsError("InvalidAccountType.Malformed")
        with self._cursor() as cur:
            if self._exists(cur, name):
                raise RdsError("InvalidAccountName.Duplicate")
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))
            if kind == "Super":
                cur.execute(f"GRANT {self._grant_lines(SUPER_PRIVILEGES)} ON *.* TO %s@'%%' WITH GRANT OPTION", (name,))
        self._descriptions[name] = params.get("AccountDescription") or ""
        return {}

    def _delete_account(self, params: Mapping[str, str]) -> dict[str, Any]:
        with self._cursor() as cur:
            name = self._existing(cur, params)
            cur.execute("DROP USER %s@'%%'", (name,))
        self._descriptions.pop(name, None)
        return {}

    def _reset_account_password(self, params: Mapping[str, str]) -> dict[str, Any]:
        password = self._password(params)
        with self._cursor() as cur:
            name = self._existing(cur, params)
            cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (name, password))
        return {}

    def _grant_account_privilege(self, params: Mapping[str, str]) -> dict[str, Any]:
        raw_dbs, raw_privileges = self._require(params, "DBName", "AccountPrivilege")
        privileges = _split(raw_privileges)
        if any(p not in ACCOUNT_PRIVILEGES for p in privileges):
            raise RdsError("InvalidAccountPrivilege.Malformed")
        with self._cursor() as cur:
            name = self._existing(cur, params)
            dbs = self._databases(cur, raw_dbs)
            if len(dbs) != len(privileges):
                raise RdsError("InvalidParameter", "DBName and AccountPrivilege must list as many items.")
            current = self._schema_privileges(cur, name)
            for db, privilege in zip(dbs, privileges, strict=True):
                # One AccountPrivilege per database: a new one replaces the old.
                if current.get(db):
                    cur.execute(f"REVOKE ALL PRIVILEGES ON {_db_pattern(db)}.* FROM %s@'%%'", (name,))
                grant = self._grant_lines(ACCOUNT_PRIVILEGES[privilege])
                cur.execute(f"GRANT {grant} ON {_db_pattern(db)}.* TO %s@'%%'", (name,))
            self._sync_globals(cur, name)
        return {}

    def _revoke_account_privilege(self, params: Mapping[str, str]) -> dict[str, Any]:
        (raw_dbs,) = self._require(params, "DBName")
        with self._cursor() as cur:
            name = self._existing(cur, params)
            current = self._schema_privileges(cur, name)
            dbs = _split(raw_dbs)
            unknown = [db for db in dbs if db not in current]
            if unknown:
                self._databases(cur, ",".join(unknown))  # NotFound for missing databases
            for db in dbs:
                if current.get(db):
                    cur.execute(f"REVOKE ALL PRIVILEGES ON {_db_pattern(db)}.* FROM %s@'%%'", (name,))
            self._sync_globals(cur, name)
        return {}

    def _account_entry(self, cur: Any, name: str) -> dict[str, Any]:
        cur.execute(
            "SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = %s AND Host = %s",
            (name, "%"),
        )
        row = cur.fetchone()
        locked = bool(row and str(row[0]).lower() in ("true", "1"))
        privileges = []
        for db, granted in sorted(self._schema_privileges(cur, name).items()):
            privileges.append({
                "DBName": db,
                "AccountPrivilege": self._kind(granted),
                "AccountPrivilegeDetail": ",".join(sorted(granted)),
            })
        return {
            "DBInstanceId": self.instance_id,
            "AccountName": name,
            "AccountStatus": "Unavailable" if locked else "Available",
            "AccountType": "Super" if "CREATE USER" in self._globals(cur, name) else "Normal",
            "AccountDescription": self._descriptions.get(name, ""),
            "PrivExceeded": "0",
            "DatabasePrivileges": {"DatabasePrivilege": privileges},
        }

    def _describe_accounts(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._instance(params)
        wanted = params.get("AccountName") or None
        with self._cursor() as cur:
            if wanted is not None:
                names = [wanted] if self._exists(cur, wanted) else []
            else:
                cur.execute("SELECT User FROM mysql.user WHERE Host = %s AND User <> '' ORDER BY User", ("%",))
                names = [str(r[0]) for r in cur.fetchall() if str(r[0]).lower() not in _RESERVED]
            accounts = [self._account_entry(cur, n) for n in names]
        return {"Accounts": {"DBInstanceAccount": accounts}}

    def _describe_db_instances(self, params: Mapping[str, str]) -> dict[str, Any]:
        ids = _split(params["DBInstanceId"]) if params.get("DBInstanceId") else [self.instance_id]
        items = []
        if self.instance_id in ids:
            with self._cursor() as cur:
                cur.execute("SELECT VERSION()")
                version = ".".join(str(cur.fetchone()[0]).split(".")[:2])
            items.append({
                "DBInstanceId": self.instance_id,
                "DBInstanceDescription": "secretclient RDS emulator",
                "RegionId": self.region,
                "ZoneId": f"{self.region}-a",
                "Engine": "MariaDB",
                "EngineVersion": version,
                "DBInstanceStatus": "Running",
                "DBInstanceType": "Primary",
                "DBInstanceNetType": "Intranet",
                "InstanceNetworkType": "VPC",
                "ConnectionString": self.mariadb.host,
                "PayType": "Postpaid",
                "LockMode": "Unlock",
                "MasterInstanceId": "",
                "ReadOnlyDBInstanceIds": {"ReadOnlyDBInstanceId": []},
            })
        return {
            "Items": {"DBInstance": items},
            "TotalRecordCount": len(items),
            "PageNumber": 1,
            "PageRecordCount": len(items),
        }

