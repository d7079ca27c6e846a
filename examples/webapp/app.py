"""A small Flask shop on SQLAlchemy ORM whose database password rotates while it serves.

    python examples/webapp/app.py                     # serves http://127.0.0.1:8000 until Ctrl-C
    python examples/webapp/app.py --port 0 --interval 2 --duration 20

Needs Flask and SQLAlchemy: ``pip install '.[examples]'`` in the checkout (``scripts/test.sh``'s
.venv has them: the ``dev`` extra includes ``examples``).

The parts an application would copy are :func:`create_app` (one ``SecretClient``, an engine from
``secretclient.db.create_engine``, an ORM session factory) and :func:`start_rotation` (the
in-process ``rotation.Scheduler``). :func:`main` adds what a real deployment already has: a
database (here a throwaway MariaDB), the accounts and their secrets (here an EmbeddedStore).

Routes: ``GET /items``, ``POST /items`` (JSON ``{"name": ..., "stock": ...}``) and
``GET /health`` (the secret's VersionId and the database account in use, never a password).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

try:
    from flask import Flask, jsonify, request
    from werkzeug.serving import make_server
except ImportError:  # Flask is no dependency of the library: the `examples` extra brings it
    sys.exit("examples/webapp needs Flask: pip install '.[examples]' in the checkout (the dev extra has it too)")
from sqlalchemy import String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from rotation import AlternatingUsersStrategy, DrainPolicy, RotationEvent, Rotator, Scheduler
from rotation.passwords import MYSQL_PASSWORD_POLICY
from secretclient import EmbeddedStore, SecretClient
from secretclient.db import Connector, create_engine
from secretclient.testing import MariaDB, MariaDBNotInstalled

SECRET = "shop/web-db"
MASTER_SECRET = "shop/rotator-db"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    stock: Mapped[int] = mapped_column(default=0)


def create_app(client: SecretClient, secret_name: str) -> Flask:
    """The Flask app: every request gets an ORM session from an engine whose credentials come
    from ``secret_name`` and survive rotations."""
    connector = Connector(secret_name, client)
    engine = create_engine(
        "mysql+pymysql:///",  # endpoint, port, database, user, password: all from the secret
        connector=connector,
        pool_size=10,
        connect_args={"connect_timeout": 5, "read_timeout": 30},
    )
    Base.metadata.create_all(engine)
    Session = sessionmaker(engine)
    app = Flask(__name__)
    app.extensions["secretclient.engine"] = engine
    responses: Counter[int] = Counter()
    app.extensions["responses"] = responses

    @app.get("/items")
    def list_items() -> Any:
        with Session() as session:
            items = session.scalars(select(Item).order_by(Item.id)).all()
            return jsonify([{"id": i.id, "name": i.name, "stock": i.stock} for i in items])

    @app.post("/items")
    def add_item() -> Any:
        body = request.get_json(silent=True) or {}
        name, stock = body.get("name"), body.get("stock", 0)
        if not isinstance(name, str) or not 0 < len(name) <= 60 or not isinstance(stock, int):
            return jsonify(error="give a name (1-60 characters) and an integer stock"), 400
        with Session.begin() as session:
            item = Item(name=name, stock=stock)
            session.add(item)
            session.flush()
            return jsonify(id=item.id, name=item.name, stock=item.stock), 201

    @app.get("/health")
    def health() -> Any:
        with engine.connect() as conn:
            account = conn.execute(text("SELECT CURRENT_USER()")).scalar_one()
        return jsonify(secret=secret_name, version=connector.current_version, account=account)

    @app.after_request
    def count(response: Any) -> Any:
        responses[response.status_code] += 1
        return response

    return app


def start_rotation(store: Any, client: SecretClient, secret_name: str, interval: float,
                   on_event: Any = None) -> Scheduler:
    """Rotate ``secret_name`` every ``interval`` seconds in this process (alternating users).

    ``client=`` makes the Rotator hand each new version to our SecretClient at once, so the
    engine rolls its pooled connections over without a single refused login.
    """
    # Rotating every few seconds with its own pool on the PREVIOUS account: grace and the drain
    # check are turned off explicitly for the example (production keeps the defaults).
    strategy = AlternatingUsersStrategy(grace=timedelta(0), drain=DrainPolicy(proceed=True))
    rotator = Rotator(store, strategy=strategy, client=client,
                      listeners=[on_event] if on_event else [])
    return Scheduler(rotator, secret_name, interval=timedelta(seconds=interval), poll=max(interval / 2, 0.1)).start()


def provision(db: MariaDB, store: EmbeddedStore) -> None:
    """The accounts and secrets a real deployment already has: the app's and a MasterSecret."""
    database = db.create_database("shop")
    q = db.quote_ident(database)
    privileges = "SELECT, INSERT, UPDATE, DELETE, CREATE"
    passwords = {name: store.random_password(MYSQL_PASSWORD_POLICY) for name in ("shop_web", "shop_rotator")}
    db.create_user("shop_web", passwords["shop_web"], grants=(f"{privileges} ON {q}.*",))
    db.create_user("shop_rotator", passwords["shop_rotator"], grants=("CREATE USER ON *.*", "SELECT ON mysql.*"))
    db.execute(f"GRANT {privileges} ON {q}.* TO %s@%s WITH GRANT OPTION", ("shop_rotator", "%"))
    common = {"Endpoint": db.host, "Port": db.port, "SSL": False}
    store.create_secret(MASTER_SECRET, json.dumps(
        {**common, "AccountName": "shop_rotator", "AccountPassword": passwords["shop_rotator"]}),
        version_id=uuid.uuid4().hex)
    store.create_secret(SECRET, json.dumps(
        {**common, "AccountName": "shop_web", "AccountPassword": passwords["shop_web"],
         "DBName": database, "MasterSecret": MASTER_SECRET}),
        version_id=uuid.uuid4().hex)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between rotations (default 10)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: Ctrl-C)")
    args = parser.parse_args(argv)

    try:
        db = MariaDB(audit=False).start()
    except MariaDBNotInstalled as exc:
        print(f"webapp: {exc}", file=sys.stderr)
        return 1
    rotations: list[str] = []

    def on_event(event: RotationEvent) -> None:
        if event.kind == "promoted":
            rotations.append(str(event.version_id))
            print(f"rotation {len(rotations)}: ACSCurrent is now version {event.version_id}", flush=True)
        elif event.kind == "failed":
            print(f"rotation failed: {event.detail}", flush=True)

    with db, EmbeddedStore() as store, SecretClient(store) as client:
        provision(db, store)
        app = create_app(client, SECRET)
        scheduler = start_rotation(store, client, SECRET, args.interval, on_event)
        server = make_server("127.0.0.1", args.port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        print(f"serving on http://127.0.0.1:{server.server_port} (MariaDB {db.host}:{db.port}); "
              f"rotating {SECRET} every {args.interval:g} s", flush=True)
        try:
            deadline = time.monotonic() + args.duration if args.duration > 0 else None
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            scheduler.stop()
            server.shutdown()
            app.extensions["secretclient.engine"].dispose()
        responses = app.extensions["responses"]
        errors = sum(n for status, n in responses.items() if status >= 500)
        print(f"served {sum(responses.values())} requests ({errors} server errors) through "
              f"{len(rotations)} rotations", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
