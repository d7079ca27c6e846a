"""``rotation`` command: rotate, plan, status and abort a secret's rotation.

    rotation --store embedded:/var/lib/app/secrets.db rotate app/db
    rotation --store kms --region cn-hangzhou plan app/db
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import click

from secretclient._cli_options import open_store_from, store_options
from secretclient.errors import SecretClientError

from ._factories import STRATEGIES, lock_for, make_strategy
from .engine import Rotator
from .errors import RotationInProgress
from .passwords import MYSQL_PASSWORD_POLICY
from .strategies.base import DEFAULT_GRACE

__all__ = ["main"]


def _rotator(obj: dict[str, Any]) -> Rotator:
    # create=False: a mistyped embedded:PATH is an error, never a new empty store.
    store = open_store_from(obj, create=False)
    if obj["store"] == "ncp":  # NCP's chain as the engine needs it (docs/rotation.md)
        from secretclient.stores.ncp import NcpSecretManagerStore

        from .ncp import for_engine

        assert isinstance(store, NcpSecretManagerStore)
        store = for_engine(store)
    try:
        rds = None
        if obj["strategy"] == "rds":
            from .strategies.rds import rds_client

            rds = rds_client(obj["region"] or "", endpoint=obj["rds_endpoint"],
                             access_key_id=obj["access_key_id"], access_key_secret=obj["access_key_secret"])
        strategy = make_strategy(
            obj["strategy"], name_limit=obj["name_limit"], grace_seconds=obj["grace"],
            master_secret=obj["master_secret"], exclude_characters=obj["exclude_characters"],
            password_length=obj["password_length"], ca_file=obj["ca_file"],
            instance_id=obj["instance_id"], rds_client=rds, allow_accounts=obj["allow_account"],
            drain_wait=obj["drain_wait"], drain_proceed=obj["drain_proceed"], suffix=obj["suffix"],
        )
        return Rotator(store, strategy=strategy, lock_timeout=obj["lock_timeout"], lock=lock_for(strategy, store))
    except BaseException:
        store.close()  # refused options: the store opened above is not handed to anyone
        raise


def _run(ctx: click.Context, action: Any) -> None:
    try:
        rotator = _rotator(ctx.obj)
        try:
            action(rotator)
        finally:
            rotator.store.close()
    except RotationInProgress as exc:
        click.echo(f"busy: {exc}", err=True)
        ctx.exit(3)
    except SecretClientError as exc:
        # The secretclient command's format (secretclient._cli_options.typed_errors).
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group()
@store_options
@click.option("--strategy", type=click.Choice(STRATEGIES), default="alternating", show_default=True,
              help="'rds': alternating users through the ApsaraDB RDS API (needs --instance-id).")
@click.option("--instance-id", envvar="ROTATION_RDS_INSTANCE_ID", help="ApsaraDB RDS instance id (strategy rds).")
@click.option("--rds-endpoint", envvar="ROTATION_RDS_ENDPOINT",
              help="RDS endpoint: host or http(s)://host[:port] (strategy rds; default: the SDK's for --region).")
@click.option("--suffix", envvar="ROTATION_SUFFIX",
              help="Alternating users: the second account is NAME+SUFFIX (default _rt; _clone is AWS's "
                   "multi-user template's): letters, digits and _.")
@click.option("--name-limit", type=click.IntRange(1, 80), default=32, show_default=True,
              help="Longest account name: 16 RDS, 32 MySQL, 80 MariaDB (PostgreSQL: 63 bytes, always).")
@click.option("--grace", type=click.FloatRange(0), default=DEFAULT_GRACE.total_seconds(), show_default=True,
              help="Seconds during which the PREVIOUS account is not reset (consumers' cache TTL).")
@click.option("--drain-wait", type=click.FloatRange(0, 86400), default=0.0, show_default=True,
              help="Alternating users: seconds to wait for live sessions of the account to reset to end.")
@click.option("--drain-proceed", is_flag=True,
              help="Alternating users: reset the account even when it still has live sessions.")
@click.option("--allow-account", multiple=True, help="A reserved or administrative account that may be rotated "
              "through the MasterSecret / RDS API anyway (repeatable; refused by default).")
@click.option("--master-secret", help="Privileged secret (default: the secret's MasterSecret field).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
              help="CA bundle for secrets with \"SSL\": true.")
@click.option("--exclude-characters", default=MYSQL_PASSWORD_POLICY.exclude_characters, show_default=True)
@click.option("--password-length", type=click.IntRange(8, 128), default=MYSQL_PASSWORD_POLICY.length, show_default=True)
@click.option("--lock-timeout", type=click.FloatRange(0), default=0.0, help="Seconds to wait for another rotator.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("-v", "--verbose", is_flag=True, help="Log each step and audit event (never values) to stderr.")
@click.pass_context
def main(ctx: click.Context, /, **options: Any) -> None:
    """Rotate MySQL/MariaDB or PostgreSQL (or ApsaraDB RDS) credentials kept in a secret store
    (new → set → test → end). The database comes from each secret's "engine" field
    ("postgres"/"postgresql" for PostgreSQL; MySQL/MariaDB when absent)."""
    # A command line may set up logging: audit lines with -v; otherwise only our own error line
    # (without a handler, Python's last-resort one would print each failure a second time).
    verbose = options.pop("verbose")
    logging.basicConfig(level=logging.INFO if verbose else logging.CRITICAL,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = options


def _jsonable(value: Any) -> Any:
    # Stage sets print as sorted lists, datetimes and durations as strings.
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def _out(ctx: click.Context, payload: dict[str, Any], lines: list[str]) -> None:
    if ctx.obj["as_json"]:
        click.echo(json.dumps(payload, default=_jsonable, indent=2))
    else:
        click.echo("\n".join(lines))


@main.command()
@click.argument("name")
@click.pass_context
def rotate(ctx: click.Context, name: str) -> None:
    """Rotate NAME now (or finish its interrupted rotation)."""
    def action(r: Rotator) -> None:
        res = r.rotate(name)
        _out(ctx, asdict(res), [
            f"rotated {name}: {r.labels.current} is now {res.version_id}" + (" (resumed)" if res.resumed else ""),
            f"took {res.duration * 1000:.0f} ms",
        ])
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.pass_context
def plan(ctx: click.Context, name: str) -> None:
    """Show what rotating NAME would do, changing nothing; exit 1 if a check fails."""
    def action(r: Rotator) -> None:
        p = r.plan(name)
        _out(ctx, {**asdict(p), "ok": p.ok}, p.lines())
        if not p.ok:
            ctx.exit(1)
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), help="Rotation interval in hours "
              "(default: the secret's own).")
@click.pass_context
def status(ctx: click.Context, name: str, interval: float | None) -> None:
    """Show NAME's versions, stages, last and next rotation."""
    def action(r: Rotator) -> None:
        s = r.status(name, timedelta(hours=interval) if interval else None)
        _out(ctx, {**asdict(s), "in_progress": s.in_progress}, s.lines())
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.pass_context
def abort(ctx: click.Context, name: str) -> None:
    """Remove NAME's PENDING, after proving that CURRENT still logs in."""
    def action(r: Rotator) -> None:
        res = r.abort(name)
        removed = f" ({res.removed_version_id})" if res.removed_version_id else ""
        _out(ctx, asdict(res), [f"{name}: {res.reason}{removed}"])
    _run(ctx, action)


if __name__ == "__main__":  # python -m rotation.cli
    main()
