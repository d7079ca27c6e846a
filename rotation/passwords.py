"""New passwords: a policy (length, excluded characters, classes, RDS rules) and where they come from.

The store's random-password operation (KMS ``GetRandomPassword``) is used when the store has
one, else Python's :mod:`secrets`. A password that does not satisfy the policy is never used.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from typing import Any, TypeGuard

from secretclient.errors import AccessDenied
from secretclient.model import PasswordPolicy

from .errors import InvalidRotationSetup

__all__ = [
    "MYSQL_PASSWORD_POLICY",
    "POSTGRES_PASSWORD_POLICY",
    "RDS_PASSWORD_POLICY",
    "RDS_SPECIAL",
    "PasswordPolicy",
    "PasswordSource",
    "new_password",
    "rds_accepts",
]

log = logging.getLogger("rotation")

#: A replacement for the store as the source of passwords (tests, HSM-backed generators…).
PasswordSource = Callable[[PasswordPolicy], str]

#: The seed's default exclusions for the self-managed MySQL scenario: ``/ @ " ' \``. (Not
#: ``secretclient.model.DEFAULT_PASSWORD_POLICY``, the stores' default for ``random_password``.)
MYSQL_PASSWORD_POLICY = PasswordPolicy(length=32, exclude_characters="/@\"'\\")
#: PostgreSQL: the same exclusions (the password may end up in a connection URL or a .pgpass line).
POSTGRES_PASSWORD_POLICY = MYSQL_PASSWORD_POLICY

#: Special characters ApsaraDB RDS accepts in account passwords.
RDS_SPECIAL = "!@#$%^&*()_+-="
#: RDS rules: 8-32 characters, only letters, digits and :data:`RDS_SPECIAL`, every class present.
RDS_PASSWORD_POLICY = PasswordPolicy(
    length=32,
    exclude_characters="".join(c for c in string.punctuation if c not in RDS_SPECIAL),
)


def rds_accepts(password: str) -> bool:
    """Whether ApsaraDB RDS would accept ``password`` (8-32 characters, 3 of 4 classes, allowed specials)."""
    if not 8 <= len(password) <= 32:
        return False
    allowed = set(string.ascii_letters + string.digits + RDS_SPECIAL)
    if not set(password) <= allowed:
        return False
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits, RDS_SPECIAL)
    return sum(any(c in cls for c in password) for cls in classes) >= 3


def _usable(password: Any, policy: PasswordPolicy) -> TypeGuard[str]:
    return (
        isinstance(password, str)
        and password.isascii()
        and password.isprintable()
        and " " not in password
        and policy.accepts(password)
    )


def new_password(store: Any, policy: PasswordPolicy, source: PasswordSource | None = None) -> str:
    """A new password following ``policy``: from ``source``, else the store, else :mod:`secrets`."""
    if source is not None:
        password = source(policy)
        if not _usable(password, policy):
            raise InvalidRotationSetup("the password source returned a password that breaks the password policy")
        return password
    generate = getattr(store, "random_password", None)
    if generate is not None:
        try:
            password = generate(policy)
        except (AccessDenied, NotImplementedError) as exc:
            log.warning("store cannot generate passwords (%s); using the secrets module", type(exc).__name__)
        else:
            if _usable(password, policy):
                return password
            log.warning("store returned a password outside the policy; using the secrets module")
    return policy.generate()
