"""Rotation-aware SQLAlchemy engines against a real MariaDB."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from db_support import Account
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from secretclient import InvalidParameter
from secretclient.db import Connector, CredentialsRejected
from secretclient.db.sqlalchemy import VERSION_KEY, attach, create_engine


def _engine(account: Account, **kw) -> tuple[sa.Engine, Connector]:
    connector = Connector(account.secret, account.client)
    kw.setdefault("pool_size", 1)
    kw.setdefault("max_overflow", 0)
    return create_engine("mysql+pymysql:///", connector=connector, **kw), connector


def test_engine_logs_in_from_the_secret_keeping_url_query_and_connect_args(account):
    engine = create_engine(
        "mysql+pymysql:///?charset=utf8mb4", secret=account.secret, client=account.client,
        connect_args={"init_command": "SET @marker = 7"},
    )
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1), DATABASE(), @marker, @@character_set_client"
        )).one()
    assert tuple(row) == (account.user, account.database, 7, "utf8mb4")
    engine.dispose()


def test_bad_engine_arguments_are_refused(account):
    for url in ("mysql+pymysql://u:pw@localhost/db", "sqlite://", "mysql+mysqldb:///"):
        with pytest.raises(InvalidParameter):
            create_engine(url, secret=account.secret, client=account.client)
    with pytest.raises(InvalidParameter, match="password"):
        create_engine("mysql+pymysql:///", secret=account.secret, client=account.client,
                      connect_args={"password": "x"})
    with pytest.raises(InvalidParameter, match="creator"):  # it would bypass the secret
        create_engine("mysql+pymysql:///", secret=account.secret, client=account.client,
                      creator=lambda: None)
    with pytest.raises(InvalidParameter):
        create_engine("mysql+pymysql:///", secret=account.secret)


def _session_id(engine: sa.Engine) -> tuple[int, str | None]:
    with engine.connect() as conn:
        cid = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
        return cid, conn.connection._connection_record.info.get(VERSION_KEY)


def test_pooled_connections_roll_over_after_a_version_change(account):
    engine, connector = _engine(account)
    first_id, _ = _session_id(engine)
    assert _session_id(engine) == (first_id, "v1")  # pooled and reused
    new_version = account.rotate()
    account.client.refresh(account.secret)  # the client sees the new version (as a TTL refresh would)
    second_id, second_version = _session_id(engine)
    assert second_id != first_id and second_version == new_version
    assert connector.stats().rollovers == 1
    assert connector.stats().rejected == 0  # the new version was known: no failed login
    assert account.failed_logins() == 0
    engine.dispose()


def test_pooled_connections_kept_when_configured(account):
    engine, connector = _engine(account, rollover=False)
    first_id, _ = _session_id(engine)
    account.rotate()
    account.client.refresh(account.secret)
    # MariaDB keeps open sessions valid after a password change.
    assert _session_id(engine) == (first_id, "v1")
    assert connector.stats().rollovers == 0
    engine.dispose()


def test_connect_errors_are_ordinary_sqlalchemy_errors(account):
    engine, _ = _engine(account)
    seen: list[BaseException] = []
    event.listen(engine, "handle_error", lambda ctx: seen.append(ctx.original_exception))
    account.set_password(account.user, account.new_password())  # the secret is now simply wrong
    with pytest.raises(sa.exc.OperationalError) as info, engine.connect():
        pass
    assert isinstance(info.value.orig, CredentialsRejected)
    assert seen and isinstance(seen[0], CredentialsRejected)
    for password in account.passwords:
        assert password not in str(info.value)
    engine.dispose()


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


def test_orm_session_across_a_rotation(account):
    engine, connector = _engine(account, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add(Note(text="before"))
    account.rotate()
    engine.dispose()  # every new session must log in again, now with the rotated password
    with Session(engine) as session, session.begin():
        session.add(Note(text="after"))
    with Session(engine) as session:
        assert [n.text for n in session.scalars(sa.select(Note).order_by(Note.id))] == ["before", "after"]
    assert connector.stats().recovered == 1
    engine.dispose()


def test_attach_to_an_existing_engine(account):
    engine = sa.create_engine("mysql+pymysql:///", pool_size=1, max_overflow=0)
    connector = attach(engine, account.secret, account.client)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT DATABASE()")).scalar_one() == account.database
    assert connector.stats().connects == 1
    with pytest.raises(InvalidParameter):
        attach(engine, account.secret)
    engine.dispose()
