"""Values: secrets, versions, metadata and database credentials.

All are frozen dataclasses, so the cache hands the same object to every caller without
copying. Nothing here ever shows secret data in ``repr`` or ``str``.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from .errors import InvalidParameter, InvalidSecretContent

__all__ = [
    "ACS_STAGES",
    "AWS_STAGES",
    "CURRENT",
    "DEFAULT_PASSWORD_POLICY",
    "NCP_STAGES",
    "PENDING",
    "PREVIOUS",
    "DbCredentials",
    "PasswordPolicy",
    "Secret",
    "SecretInfo",
    "Stage",
    "StageLabels",
    "VersionInfo",
    "stage_labels",
]


class Stage(StrEnum):
    """The three roles a version can play, whatever a store calls them.

    The cache, the credential search and the rotation engine speak roles; each store has
    its own labels for them (:class:`StageLabels`) and accepts either a role or its own label.
    """

    CURRENT = "CURRENT"
    PENDING = "PENDING"
    PREVIOUS = "PREVIOUS"


@dataclass(frozen=True, slots=True)
class StageLabels:
    """A store's own labels for the three roles (``store.stage_labels``)."""

    current: str
    pending: str
    previous: str

    def label(self, stage: str) -> str:
        """The store's label for ``stage``: a :class:`Stage` role is translated, any other
        string (the store's own label, or a custom one) is returned as given."""
        if stage == Stage.CURRENT:
            return self.current
        if stage == Stage.PENDING:
            return self.pending
        if stage == Stage.PREVIOUS:
            return self.previous
        return stage

    def role(self, label: str) -> Stage | None:
        """The role ``label`` plays in this store, or ``None`` for a custom label."""
        if label in (self.current, Stage.CURRENT):
            return Stage.CURRENT
        if label in (self.pending, Stage.PENDING):
            return Stage.PENDING
        if label in (self.previous, Stage.PREVIOUS):
            return Stage.PREVIOUS
        return None


#: Alibaba Cloud KMS and the embedded store.
ACS_STAGES = StageLabels("ACSCurrent", "ACSPending", "ACSPrevious")
#: AWS Secrets Manager.
AWS_STAGES = StageLabels("AWSCURRENT", "AWSPENDING", "AWSPREVIOUS")
#: NAVER Cloud Secret Manager's chain.
NCP_STAGES = StageLabels("active", "pending", "previous")

# The Alibaba / embedded labels, kept for code written against those stores. Code that works
# with any store uses ``stage_labels(store).current`` (or a :class:`Stage` role) instead.
CURRENT = ACS_STAGES.current
PENDING = ACS_STAGES.pending
PREVIOUS = ACS_STAGES.previous


def stage_labels(store: object) -> StageLabels:
    """The labels ``store`` uses for the three roles (KMS's for a store that does not say)."""
    labels = getattr(store, "stage_labels", None)
    return labels if isinstance(labels, StageLabels) else ACS_STAGES


@dataclass(frozen=True, slots=True)
class Secret:
    """One version of a secret, with its value.

    ``data`` is ``str`` for text secrets and ``bytes`` for binary ones. It is excluded from
    ``repr``/``str`` and comparisons print only names and version ids.
    """

    name: str
    version_id: str
    stages: frozenset[str]
    data: str | bytes = field(repr=False)
    created: datetime | None = None
    secret_type: str = "Generic"
    extended_config: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def data_type(self) -> Literal["text", "binary"]:
        """``"binary"`` for ``bytes`` data, else ``"text"``."""
        return "binary" if isinstance(self.data, bytes) else "text"

    @property
    def text(self) -> str:
        """The value as text (binary data is decoded as UTF-8)."""
        if isinstance(self.data, bytes):
            try:
                return self.data.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidSecretContent(
                    f"secret {self.name!r} version {self.version_id!r} is binary and not UTF-8"
                ) from None
        return self.data

    def json(self) -> Any:
        """The value parsed as JSON; :class:`InvalidSecretContent` if it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            # Never chain: the JSON error message quotes the document.
            raise InvalidSecretContent(
                f"secret {self.name!r} version {self.version_id!r} is not valid JSON"
            ) from None

    def db_credentials(self) -> DbCredentials:
        """The value parsed as :class:`DbCredentials`."""
        return DbCredentials.from_secret(self)

    def __str__(self) -> str:
        return repr(self)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A version's id and labels, without its value (``ListSecretVersionIds``)."""

    version_id: str
    stages: frozenset[str]
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """Metadata of a secret (``DescribeSecret``): no value."""

    name: str
    secret_type: str = "Generic"
    description: str = ""
    created: datetime | None = None
    updated: datetime | None = None
    automatic_rotation: bool = False
    rotation_interval: timedelta | None = None
    last_rotation: datetime | None = None
    next_rotation: datetime | None = None
    arn: str | None = None
    extended_config: Mapping[str, Any] | None = field(default=None, repr=False)
    #: When a secret scheduled for deletion (``delete_secret`` with a recovery window) goes.
    planned_deletion: datetime | None = None


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Parameters of a random password (KMS ``GetRandomPassword``).

    ``require_each_included_type`` makes every character class that is not excluded
    appear at least once.
    """

    length: int = 32
    exclude_characters: str = ""
    exclude_lowercase: bool = False
    exclude_uppercase: bool = False
    exclude_numbers: bool = False
    exclude_punctuation: bool = False
    require_each_included_type: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or not 8 <= self.length <= 128:
            raise InvalidParameter("PasswordPolicy.length must be an integer from 8 to 128")
        if not self.alphabet():
            raise InvalidParameter("PasswordPolicy excludes every character; allow at least one class")

    def classes(self) -> list[str]:
        """The character classes allowed, each minus the excluded characters; empty ones dropped."""
        groups = []
        for excluded, chars in (
            (self.exclude_lowercase, string.ascii_lowercase),
            (self.exclude_uppercase, string.ascii_uppercase),
            (self.exclude_numbers, string.digits),
            (self.exclude_punctuation, string.punctuation),
        ):
            if not excluded:
                kept = "".join(c for c in chars if c not in self.exclude_characters)
                if kept:
                    groups.append(kept)
        return groups

    def alphabet(self) -> str:
        """Every character a password may contain."""
        return "".join(self.classes())

    def generate(self) -> str:
        """A password from the ``secrets`` module following this policy."""
        classes = self.classes()
        alphabet = "".join(classes)
        while True:
            pw = "".join(secrets.choice(alphabet) for _ in range(self.length))
            if not self.require_each_included_type or self.length < len(classes):
                return pw
            if all(any(c in group for c in pw) for group in classes):
                return pw

    def accepts(self, password: str) -> bool:
        """Whether ``password`` could have been produced by this policy."""
        classes = self.classes()
        alphabet = set("".join(classes))
        if len(password) != self.length or not set(password) <= alphabet:
            return False
        if self.require_each_included_type and self.length >= len(classes):
            return all(any(c in group for c in password) for group in classes)
        return True


#: The policy used when none is given: 32 characters of every class, each class present.
DEFAULT_PASSWORD_POLICY = PasswordPolicy()

# Key spellings accepted for each field: Alibaba first, then AWS / NCP / common ones.
_ALIASES: dict[str, tuple[str, ...]] = {
    "account_name": ("AccountName", "username", "user", "Username", "cdbUser", "cdbUserName", "dbUser"),
    "account_password": ("AccountPassword", "password", "Password", "cdbPassword", "dbPassword"),
    "endpoint": ("Endpoint", "host", "Host", "cdbHost", "dbHost"),
    "port": ("Port", "port", "cdbPort", "dbPort"),
    "db_name": ("DBName", "dbname", "DbName", "database", "Database", "cdbDatabase"),
    "ssl": ("SSL", "ssl"),
    "master_secret": ("MasterSecret", "masterarn", "masterSecret"),
}


# AWS's keys, for fields an AWS-format secret (``username``…) did not have when read.
_AWS_SPELLINGS = {"account_name": "username", "account_password": "password", "endpoint": "host", "port": "port",
                  "db_name": "dbname", "ssl": "ssl", "master_secret": "masterarn"}


def _as_port(value: Any) -> int | None:
    """``value`` as an integer (``3306``, ``"3306"``, ``3306.0``); ``None`` if it is not one."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        return None  # a bool is an int, and int() would truncate 3306.5 silently
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _pick(data: Mapping[str, Any], key: str) -> tuple[str | None, Any]:
    for spelling in _ALIASES[key]:
        if spelling in data:
            return spelling, data[spelling]
    return None, None


@dataclass(frozen=True, slots=True)
class DbCredentials:
    """Database credentials parsed from a secret's JSON.

    Accepts the Alibaba seed's keys (``AccountName``, ``AccountPassword``, ``Endpoint``,
    ``Port``, ``DBName``, ``SSL``, ``MasterSecret``) and the AWS / NCP spellings
    (``username``, ``password``, ``host``, ``port``, ``dbname``, ``masterarn``).
    ``ssl`` is ``True``/``False`` when the secret says so, ``None`` when it does not; likewise
    ``port`` is ``None`` when the secret has none, and the database family decides (3306 for
    MySQL/MariaDB, 5432 for PostgreSQL: :meth:`port_or`).
    Validation errors name the field, never its value. ``extra`` keeps unknown keys and
    ``spellings`` the keys the fields were read from, so :meth:`to_json_dict` writes a secret
    back in its own format (NCP's ``cdbUser``/``cdbPassword`` stay so).
    """

    account_name: str
    account_password: str = field(repr=False)
    endpoint: str | None = None
    port: int | None = None
    db_name: str | None = None
    ssl: bool | None = None
    master_secret: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    version_id: str | None = None
    stages: frozenset[str] = frozenset()
    spellings: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_mapping(
        cls,
        data: Any,
        *,
        source: str = "secret",
        version_id: str | None = None,
        stages: frozenset[str] = frozenset(),
    ) -> DbCredentials:
        """Parse ``data`` (a JSON object); ``source`` names it in error messages."""
        if not isinstance(data, Mapping):
            raise InvalidSecretContent(f"{source}: database credentials must be a JSON object")
        used: set[str] = set()
        spellings: dict[str, str] = {}

        def get(key: str, required: bool = False) -> tuple[str | None, Any]:
            spelling, value = _pick(data, key)
            if spelling is None:
                if required:
                    raise InvalidSecretContent(
                        f"{source}: field {_ALIASES[key][0]!r} is missing"
                    )
                return None, None
            used.add(spelling)
            spellings[key] = spelling
            return spelling, value

        name_key, name = get("account_name", required=True)
        pw_key, password = get("account_password", required=True)
        if not isinstance(name, str) or not name:
            raise InvalidSecretContent(f"{source}: field {name_key!r} must be a non-empty string")
        if not isinstance(password, str):
            raise InvalidSecretContent(f"{source}: field {pw_key!r} must be a string")

        ep_key, endpoint = get("endpoint")
        if endpoint is not None and (not isinstance(endpoint, str) or not endpoint):
            raise InvalidSecretContent(f"{source}: field {ep_key!r} must be a non-empty string")

        port_key, port_raw = get("port")
        port: int | None = None
        if port_raw is not None:
            parsed = _as_port(port_raw)
            if parsed is None:
                raise InvalidSecretContent(f"{source}: field {port_key!r} must be an integer")
            port = parsed
            if isinstance(port_raw, str):
                spellings["port_format"] = "text"
            if not 1 <= port <= 65535:
                raise InvalidSecretContent(f"{source}: field {port_key!r} must be from 1 to 65535")

        db_key, db_name = get("db_name")
        if db_name is not None and not isinstance(db_name, str):
            raise InvalidSecretContent(f"{source}: field {db_key!r} must be a string")

        ssl_key, ssl_raw = get("ssl")
        ssl: bool | None
        if ssl_raw is None:
            ssl = None
        elif isinstance(ssl_raw, bool):
            ssl = ssl_raw
        elif isinstance(ssl_raw, str) and ssl_raw.strip().lower() in ("true", "false"):
            ssl = ssl_raw.strip().lower() == "true"
        else:
            raise InvalidSecretContent(f"{source}: field {ssl_key!r} must be true or false")

        ms_key, master = get("master_secret")
        if master is not None and not isinstance(master, str):
            raise InvalidSecretContent(f"{source}: field {ms_key!r} must be a string")

        extra = {k: v for k, v in data.items() if k not in used}
        return cls(
            account_name=name,
            account_password=password,
            endpoint=endpoint,
            port=port,
            db_name=db_name or None,
            ssl=ssl,
            master_secret=master or None,
            extra=extra,
            version_id=version_id,
            stages=stages,
            spellings=spellings,
        )

    def port_or(self, default: int) -> int:
        """The secret's port, or ``default`` (the database family's) when it names none."""
        return default if self.port is None else self.port

    @classmethod
    def from_secret(cls, secret: Secret) -> DbCredentials:
        """Parse a secret's JSON value, keeping its VersionId and stages."""
        source = f"secret {secret.name!r} version {secret.version_id!r}"
        return cls.from_mapping(
            secret.json(), source=source, version_id=secret.version_id, stages=secret.stages
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object, with the keys it was parsed from (for fields it did not have:
        AWS's keys in an AWS-format secret, else Alibaba's; unknown keys kept as they were).
        A port read as text is written as text."""
        out: dict[str, Any] = dict(self.extra)
        aws = self.spellings.get("account_name") in ("username", "Username")

        def put(key: str, value: Any) -> None:
            out[self.spellings.get(key) or (_AWS_SPELLINGS[key] if aws else _ALIASES[key][0])] = value

        put("account_name", self.account_name)
        put("account_password", self.account_password)
        if self.endpoint is not None:  # a port means nothing without a host
            put("endpoint", self.endpoint)
            if self.port is not None:
                put("port", str(self.port) if self.spellings.get("port_format") == "text" else self.port)
        if self.db_name is not None:
            put("db_name", self.db_name)
        if self.ssl is not None:
            put("ssl", self.ssl)
        if self.master_secret is not None:
            put("master_secret", self.master_secret)
        return out

    def to_json(self) -> str:
        """:meth:`to_json_dict` as a JSON string (what a rotation stores)."""
        return json.dumps(self.to_json_dict())

    def with_changes(self, **changes: Any) -> DbCredentials:
        """A copy with ``changes`` applied (e.g. a new ``account_password``)."""
        return replace(self, **changes)

    def __str__(self) -> str:
        return repr(self)
