"""A tiny application module: stock levels in MySQL, credentials from a secret.

It knows nothing about tests. test_inventory.py shows how to test it against real parts: a
throwaway MariaDB (``mariadb`` fixture) and a local Alibaba KMS endpoint (``kms_emulator``
fixture) reached through the real aliyun SDK.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from secretclient import SecretClient
from secretclient.db import create_engine


def make_engine(client: SecretClient, secret_name: str) -> Engine:
    """The application's engine: endpoint, database, user and password come from the secret."""
    return create_engine("mysql+pymysql:///", secret=secret_name, client=client,
                         connect_args={"connect_timeout": 5, "read_timeout": 30})


def create_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS stock (sku VARCHAR(32) PRIMARY KEY, qty INT NOT NULL)"))


def receive(engine: Engine, sku: str, qty: int) -> int:
    """Add ``qty`` units of ``sku``; returns the new level."""
    if qty <= 0:
        raise ValueError("qty must be positive")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO stock VALUES (:sku, :qty) ON DUPLICATE KEY UPDATE qty = qty + :qty"),
                     {"sku": sku, "qty": qty})
        return int(conn.execute(text("SELECT qty FROM stock WHERE sku = :sku"), {"sku": sku}).scalar_one())


def level(engine: Engine, sku: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT qty FROM stock WHERE sku = :sku"), {"sku": sku}).scalar()
    return int(found or 0)
