"""EmbeddedStore: the default store, a SQLite file (or memory) with KMS stage semantics.

Safe from many threads (one connection behind a lock) and many processes (WAL journal,
``BEGIN IMMEDIATE`` write transactions, a busy timeout). Errors carry the KMS code a real
KMS would answer, so the KMS emulator can serve this store unchanged.

Without a key, secret data is stored in plain text inside the SQLite file: protect the file
(permissions are set to 0600 on creation) and its backups. With ``key=`` (16, 24 or 32
bytes), every version's data is sealed with AES-GCM, bound to its secret name and VersionId;
names, VersionIds, stages and timestamps stay readable.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import EncryptionKeyError, LimitExceeded, SecretNotFound, StoreError, StoreUnavailable, VersionConflict
from ..model import (
    ACS_STAGES,
    CURRENT,
    DEFAULT_PASSWORD_POLICY,
    PREVIOUS,
    PasswordPolicy,
    Secret,
    SecretInfo,
    StageLabels,
    VersionInfo,
)
from ._checks import (
    check_data,
    check_name,
    check_put_stages,
    check_read,
    check_recovery_window,
    check_rotation_interval,
    check_stage_move,
    check_version_id,
    invalid,
)
from ._store_base import NewSecret, StoreBase
from .base import MAX_STAGES_PER_VERSION, MAX_VERSIONS

__all__ = ["EmbeddedStore", "EncryptionKeyError"]

_KEY_CHECK = b"secretclient-embedded-key-check"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    secret_type TEXT NOT NULL,
    description TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    rotation_interval REAL,
    extended_config TEXT,
    planned_deletion REAL
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL REFERENCES secrets(name) ON DELETE CASCADE,
    version_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    binary INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (name, version_id)
);
CREATE TABLE IF NOT EXISTS stages (
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    version_id TEXT NOT NULL,
    PRIMARY KEY (name, stage),
    FOREIGN KEY (name, version_id) REFERENCES versions(name, version_id) ON DELETE CASCADE
);
"""


# sqlite3 error names (the base code, without the extended suffix) -> (our type, code, what it means).
_SQLITE_ERRORS: dict[str, tuple[type[StoreError], str, str]] = {
    "SQLITE_BUSY": (StoreUnavailable, "StoreBusy", "locked by another connection past the busy timeout"),
    "SQLITE_LOCKED": (StoreUnavailable, "StoreBusy", "locked by another connection past the busy timeout"),
    "SQLITE_FULL": (StoreUnavailable, "StoreFull", "the disk is full"),
    "SQLITE_IOERR": (StoreUnavailable, "StoreIOError", "an I/O error reading or writing the file"),
    "SQLITE_READONLY": (StoreError, "StoreReadOnly", "the file or its file system is read-only"),
    "SQLITE_CANTOPEN": (StoreError, "StoreCannotOpen", "the file cannot be opened"),
    "SQLITE_PERM": (StoreError, "StoreCannotOpen", "no permission to open the file"),
    "SQLITE_NOTADB": (StoreError, "StoreCorrupt", "the file is not an SQLite database"),
    "SQLITE_CORRUPT": (StoreError, "StoreCorrupt", "the file is damaged"),
}
# Stores with a connection to reopen in a forked child (SQLite handles must not cross a fork).
_STORES: weakref.WeakSet[EmbeddedStore] = weakref.WeakSet()


def _typed(path: str, exc: sqlite3.Error | OSError) -> StoreError:
    """Our error for a sqlite3 or OS error (SQLite's messages never quote bound values)."""
    if isinstance(exc, OSError):
        return StoreError(f"EmbeddedStore {path!r} cannot be opened: {exc.strerror or type(exc).__name__}",
                          code="StoreCannotOpen")
    errorname = getattr(exc, "sqlite_errorname", None) or ""
    base = "_".join(errorname.split("_")[:2])
    cls, code, meaning = _SQLITE_ERRORS.get(base, (StoreError, "StoreFailure", "SQLite failed"))
    return cls(f"EmbeddedStore {path!r}: {meaning} ({errorname or type(exc).__name__}: {exc})", code=code)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _not_found(what: str) -> SecretNotFound:
    return SecretNotFound(f"{what} does not exist", code="Forbidden.ResourceNotFound", http_status=404)


def _in_delete_window(name: str, when: float) -> SecretNotFound:
    return SecretNotFound(
        f"secret {name!r} is scheduled for deletion at {_ts(when).isoformat(timespec='seconds')}: "
        f"restore_secret() brings it back",
        code="Rejected.ResourceInDeleteWindow", http_status=400,
    )


class _Sealer:
    """AES-GCM with the (name, version_id) pair as associated data."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) not in (16, 24, 32):
            raise EncryptionKeyError("EmbeddedStore key must be 16, 24 or 32 bytes (see EmbeddedStore.generate_key())")
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - depends on the environment
            raise EncryptionKeyError(
                "encryption at rest needs the 'cryptography' package: pip install 'secretclient-rotation[crypto]'"
            ) from None
        self._aead = AESGCM(bytes(key))

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plain, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], aad)
        except InvalidTag:
            raise EncryptionKeyError(
                "stored data cannot be decrypted with this key (wrong key or tampered file)"
            ) from None


class EmbeddedStore(StoreBase):
    """A :class:`~secretclient.stores.SecretStore` in a SQLite database.

    :param path: a file path, or ``":memory:"`` (the default) for a private in-memory store.
    :param key: optional AES key (16/24/32 bytes) sealing secret data at rest.
    :param clock: returns the current UTC time; injected for tests.
    :param busy_timeout: seconds to wait for another process's write lock.
    :param create: create the file when it does not exist; with ``False`` a missing file is
        an :class:`~secretclient.errors.InvalidParameter` (a mistyped path is not a new store).
    """

    #: Alibaba KMS labels; a :class:`~secretclient.model.Stage` role is accepted wherever a label is.
    stage_labels: StageLabels = ACS_STAGES

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        key: bytes | None = None,
        clock: Callable[[], datetime] = _utc_now,
        busy_timeout: float = 10.0,
        create: bool = True,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._sealer = _Sealer(key) if key is not None else None
        self._lock = threading.RLock()
        self._closed = False
        self._inherited: list[sqlite3.Connection] = []  # see _after_fork_in_child
        if self.path != ":memory:":
            p = Path(self.path)
            if not p.exists():
                if not create:
                    raise invalid(f"there is no store file at {self.path!r}")
                try:
                    p.parent.mkdir(parents=True, exist_ok=True)
                    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
                except OSError as exc:
                    raise _typed(self.path, exc) from None
        self._db: sqlite3.Connection | None = None
        try:
            with self._write() as db:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                if "planned_deletion" not in {r[1] for r in db.execute("PRAGMA table_info(secrets)")}:
                    db.execute("ALTER TABLE secrets ADD COLUMN planned_deletion REAL")  # older files
                self._check_key(db)
        except BaseException:
            self.close()
            raise
        _STORES.add(self)

    @staticmethod
    def generate_key() -> bytes:
        """A new random 32-byte key for ``key=``. Keep it outside the database file."""
        return os.urandom(32)

    def __repr__(self) -> str:
        return f"EmbeddedStore(path={self.path!r}, encrypted={self._sealer is not None})"

    # -- plumbing ------------------------------------------------------------------------

    def _open_db(self) -> sqlite3.Connection:
        """The connection (opened on first use, and again in a forked child), under the lock;
        a typed error once :meth:`close` ran."""
        if self._closed:
            raise StoreError("this EmbeddedStore is closed; open a new one", code="StoreClosed")
        if self._db is None:
            db = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                db.execute("PRAGMA foreign_keys=ON")
                db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
                if self.path != ":memory:":
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        """``begin`` ... COMMIT (ROLLBACK on an error); every sqlite3 error becomes a typed
        :class:`StoreError` naming the file and the cause."""
        with self._lock:
            try:
                db = self._open_db()
                db.execute(begin)
                try:
                    yield db
                except BaseException:
                    # SQLite may have rolled back already (e.g. on SQLITE_FULL): report the cause.
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _typed(self.path, exc) from None

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._transaction("BEGIN")

    def _after_fork_in_child(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it at the fork) and,
        for a file, a new connection on next use. The inherited handle is kept, unused and
        unclosed, because SQLite forbids touching it in the child (closing included)."""
        self._lock = threading.RLock()
        if self.path != ":memory:" and self._db is not None:
            self._inherited.append(self._db)
            self._db = None

    def _check_key(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT v FROM meta WHERE k = 'key_check'").fetchone()
        if row is None:
            has_data = db.execute("SELECT 1 FROM versions LIMIT 1").fetchone() is not None
            if self._sealer is not None:
                if has_data:
                    raise EncryptionKeyError("this store already holds unencrypted data; a key cannot be added to it")
                db.execute("INSERT INTO meta VALUES ('key_check', ?)", (self._sealer.seal(_KEY_CHECK, b"meta"),))
            return
        if self._sealer is None:
            raise EncryptionKeyError("this store is encrypted: pass the key it was created with")
        if self._sealer.open(row[0], b"meta") != _KEY_CHECK:  # pragma: no cover - AEAD already fails
            raise EncryptionKeyError("wrong key for this store")

    def _aad(self, name: str, version_id: str) -> bytes:
        return json.dumps([name, version_id]).encode()

    def _encode(self, name: str, version_id: str, data: str | bytes) -> tuple[int, bytes]:
        binary = isinstance(data, bytes)
        raw = data if isinstance(data, bytes) else data.encode("utf-8")
        if self._sealer is not None:
            raw = self._sealer.seal(raw, self._aad(name, version_id))
        return int(binary), raw

    def _decode(self, name: str, version_id: str, binary: int, raw: bytes) -> str | bytes:
        if self._sealer is not None:
            raw = self._sealer.open(raw, self._aad(name, version_id))
        return bytes(raw) if binary else bytes(raw).decode("utf-8")

    def server_time(self) -> datetime:
        """This store's time (it is the server): its clock, which timestamps its versions."""
        return self._clock()

    def _now(self) -> float:
        return self._clock().timestamp()

    def _require_secret(self, db: sqlite3.Connection, name: str, *, pending_ok: bool = False) -> tuple[Any, ...]:
        """The secret's row; :class:`SecretNotFound` if it does not exist, its deletion time
        has passed, or (unless ``pending_ok``) it is scheduled for deletion."""
        row: tuple[Any, ...] | None = db.execute(
            "SELECT name, secret_type, description, created, updated, rotation_interval, extended_config,"
            " planned_deletion FROM secrets WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None or (row[7] is not None and row[7] <= self._now()):
            raise _not_found(f"secret {name!r}")
        if row[7] is not None and not pending_ok:
            raise _in_delete_window(name, row[7])
        return row

    @staticmethod
    def _purge(db: sqlite3.Connection, name: str) -> None:
        db.execute("DELETE FROM stages WHERE name = ?", (name,))
        db.execute("DELETE FROM versions WHERE name = ?", (name,))
        db.execute("DELETE FROM secrets WHERE name = ?", (name,))

    def _stages_of(self, db: sqlite3.Connection, name: str, version_id: str) -> frozenset[str]:
        rows = db.execute(
            "SELECT stage FROM stages WHERE name = ? AND version_id = ?", (name, version_id)
        ).fetchall()
        return frozenset(r[0] for r in rows)

    def _holder(self, db: sqlite3.Connection, name: str, stage: str) -> str | None:
        row = db.execute("SELECT version_id FROM stages WHERE name = ? AND stage = ?", (name, stage)).fetchone()
        return row[0] if row else None

    def _attach(self, db: sqlite3.Connection, name: str, stage: str, version_id: str) -> None:
        """Put ``stage`` on ``version_id``; moving ACSCurrent drags ACSPrevious behind it."""
        old = self._holder(db, name, stage)
        if old == version_id:
            return
        if stage == CURRENT and old is not None:
            db.execute(
                "INSERT OR REPLACE INTO stages (name, stage, version_id) VALUES (?, ?, ?)",
                (name, PREVIOUS, old),
            )
        db.execute(
            "INSERT OR REPLACE INTO stages (name, stage, version_id) VALUES (?, ?, ?)",
            (name, stage, version_id),
        )
        count = db.execute(
            "SELECT COUNT(*) FROM stages WHERE name = ? AND version_id = ?", (name, version_id)
        ).fetchone()[0]
        if count > MAX_STAGES_PER_VERSION:
            raise LimitExceeded(
                f"a version may carry at most {MAX_STAGES_PER_VERSION} stages",
                code="Rejected.LimitExceeded",
                http_status=400,
            )

    def _enforce_cap(self, db: sqlite3.Connection, name: str) -> None:
        while True:
            count = db.execute("SELECT COUNT(*) FROM versions WHERE name = ?", (name,)).fetchone()[0]
            if count <= MAX_VERSIONS:
                return
            oldest = db.execute(
                "SELECT version_id FROM versions v WHERE name = ? AND NOT EXISTS"
                " (SELECT 1 FROM stages s WHERE s.name = v.name AND s.version_id = v.version_id)"
                " ORDER BY seq LIMIT 1",
                (name,),
            ).fetchone()
            if oldest is None:
                raise LimitExceeded(
                    f"secret {name!r} already has {MAX_VERSIONS} versions that all carry stages",
                    code="Rejected.LimitExceeded",
                    http_status=400,
                )
            db.execute("DELETE FROM versions WHERE name = ? AND version_id = ?", (name, oldest[0]))

    # -- reads ---------------------------------------------------------------------------

    def get_secret(
        self, name: str, *, stage: str | None = None, version_id: str | None = None
    ) -> Secret:
        check_name(name)
        stage = check_read(self.stage_labels, stage, version_id)
        with self._read() as db:
            meta = self._require_secret(db, name)
            if version_id is None:
                wanted = stage or CURRENT
                version_id = self._holder(db, name, wanted)
                if version_id is None:
                    raise _not_found(f"stage {wanted!r} of secret {name!r}")
            row = db.execute(
                "SELECT created, binary, data FROM versions WHERE name = ? AND version_id = ?",
                (name, version_id),
            ).fetchone()
            if row is None:
                raise _not_found(f"version {version_id!r} of secret {name!r}")
            stages = self._stages_of(db, name, version_id)
            if stage is not None and stage not in stages:
                raise _not_found(f"version {version_id!r} with stage {stage!r} of secret {name!r}")
        return Secret(
            name=name,
            version_id=version_id,
            stages=stages,
            data=self._decode(name, version_id, row[1], row[2]),
            created=_ts(row[0]),
            secret_type=meta[1],
            extended_config=json.loads(meta[6]) if meta[6] else None,
        )

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        check_name(name)
        with self._read() as db:
            self._require_secret(db, name)
            rows = db.execute(
                "SELECT version_id, created FROM versions WHERE name = ? ORDER BY seq DESC", (name,)
            ).fetchall()
            out = []
            for version_id, created in rows:
                stages = self._stages_of(db, name, version_id)
                if stages or include_deprecated:
                    out.append(VersionInfo(version_id, stages, _ts(created)))
        return out

    def describe(self, name: str) -> SecretInfo:
        """Metadata; a secret scheduled for deletion is described (``planned_deletion`` set)."""
        check_name(name)
        with self._read() as db:
            meta = self._require_secret(db, name, pending_ok=True)
            return self._info(db, meta)

    def list_secrets(self) -> list[SecretInfo]:
        """Every secret's metadata by name, those scheduled for deletion included."""
        with self._read() as db:
            rows = db.execute(
                "SELECT name, secret_type, description, created, updated, rotation_interval, extended_config,"
                " planned_deletion FROM secrets WHERE planned_deletion IS NULL OR planned_deletion > ?"
                " ORDER BY name",
                (self._now(),),
            ).fetchall()
            return [self._info(db, row) for row in rows]

    def _info(self, db: sqlite3.Connection, meta: tuple[Any, ...]) -> SecretInfo:
        name = meta[0]
        current = self._holder(db, name, CURRENT)
        current_created = None
        if current is not None:
            current_created = db.execute(
                "SELECT created FROM versions WHERE name = ? AND version_id = ?", (name, current)
            ).fetchone()[0]
        interval = timedelta(seconds=meta[5]) if meta[5] else None
        last = _ts(current_created) if current_created is not None else None
        return SecretInfo(
            name=name,
            secret_type=meta[1],
            description=meta[2],
            created=_ts(meta[3]),
            updated=_ts(meta[4]),
            automatic_rotation=interval is not None,
            rotation_interval=interval,
            last_rotation=last if interval else None,
            next_rotation=(last + interval) if (interval and last) else None,
            arn=f"acs:kms:local:embedded:secret/{name}",
            extended_config=json.loads(meta[6]) if meta[6] else None,
            planned_deletion=_ts(meta[7]) if meta[7] is not None else None,
        )

    def random_password(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        return policy.generate()

    # -- writes --------------------------------------------------------------------------

    def _create(self, new: NewSecret) -> SecretInfo:
        """Refused while a secret of that name exists or waits out its recovery window."""
        name, data, version_id, secret_type, description, extended_config, rotation_interval = new
        check_name(name)
        check_version_id(version_id)
        check_data(data)
        check_rotation_interval(rotation_interval)
        now = self._now()
        with self._write() as db:
            row = db.execute("SELECT planned_deletion FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] is not None and row[0] <= now:
                self._purge(db, name)  # its recovery window is over
            elif row is not None and row[0] is not None:
                raise VersionConflict(
                    f"secret {name!r} is scheduled for deletion at {_ts(row[0]).isoformat(timespec='seconds')}:"
                    " restore_secret() it, or delete it with force=True first",
                    code="Rejected.ResourceInDeleteWindow", http_status=400,
                )
            elif row is not None:
                raise VersionConflict(
                    f"secret {name!r} already exists", code="Rejected.ResourceExist", http_status=409
                )
            db.execute(
                "INSERT INTO secrets VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    name,
                    secret_type,
                    description,
                    now,
                    now,
                    rotation_interval.total_seconds() if rotation_interval else None,
                    json.dumps(dict(extended_config)) if extended_config is not None else None,
                ),
            )
            binary, raw = self._encode(name, version_id, data)
            db.execute("INSERT INTO versions VALUES (?, ?, 1, ?, ?, ?)", (name, version_id, now, binary, raw))
            self._attach(db, name, CURRENT, version_id)
        return self.describe(name)

    def put_secret(
        self, name: str, version_id: str, data: str | bytes, *, stages: Sequence[str] | None = None
    ) -> VersionInfo:
        check_name(name)
        check_version_id(version_id)
        check_data(data)
        checked = check_put_stages(self.stage_labels, stages)
        wanted = [CURRENT] if checked is None else checked
        now = self._now()
        with self._write() as db:
            self._require_secret(db, name)
            row = db.execute(
                "SELECT binary, data, created FROM versions WHERE name = ? AND version_id = ?",
                (name, version_id),
            ).fetchone()
            if row is not None:
                existing = self._decode(name, version_id, row[0], row[1])
                if existing != data:
                    raise VersionConflict(
                        f"version {version_id!r} of secret {name!r} already exists with other data",
                        code="Rejected.ResourceExist",
                        http_status=409,
                    )
                # Same VersionId and data: a retry of an earlier call; change nothing.
                return VersionInfo(version_id, self._stages_of(db, name, version_id), _ts(row[2]))
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE name = ?", (name,)).fetchone()[0]
            binary, raw = self._encode(name, version_id, data)
            db.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)", (name, version_id, seq, now, binary, raw)
            )
            for s in wanted:
                self._attach(db, name, s, version_id)
            self._enforce_cap(db, name)
            db.execute("UPDATE secrets SET updated = ? WHERE name = ?", (now, name))
            return VersionInfo(version_id, self._stages_of(db, name, version_id), _ts(now))

    def update_stage(
        self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None
    ) -> None:
        check_name(name)
        stage = check_stage_move(self.stage_labels, stage, move_to, remove_from)
        if stage in (CURRENT, PREVIOUS) and move_to is None:
            # KMS requires MoveToVersion for both: they are only ever moved, never dropped.
            raise invalid(f"{stage} cannot be removed, only moved to another version (give move_to)")
        with self._write() as db:
            self._require_secret(db, name)
            for v in (move_to, remove_from):
                if v is not None and not db.execute(
                    "SELECT 1 FROM versions WHERE name = ? AND version_id = ?", (name, v)
                ).fetchone():
                    raise _not_found(f"version {v!r} of secret {name!r}")
            holder = self._holder(db, name, stage)
            if move_to is not None and holder == move_to:
                return  # already done: retries of a finished move succeed
            if remove_from is not None and holder != remove_from:
                raise VersionConflict(
                    f"stage {stage!r} of secret {name!r} is not on version {remove_from!r}",
                    code="Rejected.StageNotOnVersion",
                    http_status=409,
                )
            if move_to is not None:
                self._attach(db, name, stage, move_to)
            else:
                db.execute("DELETE FROM stages WHERE name = ? AND stage = ?", (name, stage))
            db.execute("UPDATE secrets SET updated = ? WHERE name = ?", (self._now(), name))

    def delete_secret(self, name: str, *, recovery_window_days: int | None = 30, force: bool = False) -> None:
        """Schedule ``name`` for deletion in ``recovery_window_days`` (7-30, ``None``: 30) or,
        with ``force=True``, delete it and every version at once. Meanwhile it cannot be read
        or written, its name cannot be created again, and :meth:`restore_secret` brings it back."""
        check_name(name)
        check_recovery_window(recovery_window_days, force)
        with self._write() as db:
            self._require_secret(db, name, pending_ok=force)
            if force:
                self._purge(db, name)
            else:
                planned = self._now() + timedelta(days=recovery_window_days or 30).total_seconds()
                db.execute("UPDATE secrets SET planned_deletion = ? WHERE name = ?", (planned, name))

    def restore_secret(self, name: str) -> None:
        """Cancel the scheduled deletion of ``name`` (nothing to do if none is scheduled)."""
        check_name(name)
        with self._write() as db:
            self._require_secret(db, name, pending_ok=True)
            db.execute("UPDATE secrets SET planned_deletion = NULL WHERE name = ?", (name,))

    def set_rotation(self, name: str, interval: timedelta | None) -> None:
        """Turn automatic rotation on with ``interval``, or off with ``None``."""
        check_name(name)
        check_rotation_interval(interval)
        with self._write() as db:
            self._require_secret(db, name)
            db.execute(
                "UPDATE secrets SET rotation_interval = ?, updated = ? WHERE name = ?",
                (interval.total_seconds() if interval else None, self._now(), name),
            )

    def close(self) -> None:
        """Close the database; later calls raise :class:`StoreError` (code ``StoreClosed``). Idempotent."""
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
