"""Fixtures shared by several test modules. Helpers that are not fixtures live in modules not named
``test_*.py``: ``db_support``, ``rotation_support`` (and ``rotation_child``, the process it starts),
``store_helpers``, ``seed_harness``, ``server_support``. The library's own fixtures (``mariadb``, ``kms_emulator``, …)
come from its pytest plugin, registered by installing the package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from db_support import Account
from rotation_support import StoreHandle, drop_accounts, start_store

from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing import MariaDB


@pytest.fixture
def account(mariadb: MariaDB) -> Iterator[Account]:
    """A fresh database user on the session's MariaDB, its secret in a counting EmbeddedStore and a
    SecretClient reading it (the connection tests)."""
    acc = Account(mariadb)
    yield acc
    acc.client.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """An EmbeddedStore in a file of its own (modules that define ``store`` use theirs)."""
    s = EmbeddedStore(tmp_path / "secrets.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(params=["embedded", "kms"])
def store_handle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHandle]:
    """The rotation tests' store: an EmbeddedStore file, or the KMS emulator through the SDK."""
    handle = start_store(request.param, tmp_path)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def cleanup_accounts(mariadb: Any) -> Iterator[list[str]]:
    """Names appended here are dropped (with their ``_rt`` twins) after the test."""
    names: list[str] = []
    yield names
    drop_accounts(mariadb, *names, *(n + "_rt" for n in names))
