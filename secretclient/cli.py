"""``secretclient``: manage secrets in a store from the shell.

Values are read from a file or standard input, never from the command line (where other
users could see them in the process list), and printed only with ``get --reveal``.

    secretclient --store embedded:secrets.db create shop/app --value-file creds.json
    secretclient --store kms --region cn-hangzhou versions shop/app
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import IO, Any

import click

from .errors import SecretClientError
from .model import PasswordPolicy, VersionInfo
from .stores.base import SecretStore
from .stores.spec import open_store

__all__ = ["main"]


def _read_value(value_file: IO[bytes] | None, binary: bool) -> str | bytes:
    data = (value_file or sys.stdin.buffer).read()
    if binary:
        return bytes(data)
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise click.UsageError("the value is not UTF-8 text; pass --binary to store it as binary") from None


@contextmanager
def _typed_errors() -> Iterator[None]:
    """Our errors become one line (type and message, never a value) and exit status 1."""
    try:
        yield
    except SecretClientError as e:
        raise click.ClickException(f"{type(e).__name__}: {e}") from None


def _run(ctx: click.Context, action: Callable[[SecretStore], Any], *, create: bool = False) -> None:
    opts = ctx.obj
    with _typed_errors():
        store = open_store(
            opts["store"],
            create=create,  # only `create` may start a new store file: a typo must not
            region=opts["region"],
            endpoint=opts["endpoint"],
            access_key_id=opts["access_key_id"],
            access_key_secret=opts["access_key_secret"],
            verify=opts["ca_file"],
        )
        try:
            action(store)
        finally:
            store.close()


def _version_line(v: VersionInfo) -> str:
    created = v.created.isoformat(timespec="seconds") if v.created else "-"
    return f"{v.version_id}  {created}  {', '.join(sorted(v.stages)) or '-'}"


@click.group()
@click.option("--store", envvar="SECRETCLIENT_STORE", default="embedded:secrets.db", show_default=True,
              help="embedded:PATH or kms (key for an encrypted file: $SECRETCLIENT_EMBEDDED_KEY).")
@click.option("--region", envvar="ALIBABA_CLOUD_REGION_ID", help="KMS region id.")
@click.option("--endpoint", help="KMS endpoint: host[:port] or http(s)://host[:port].")
@click.option("--access-key-id", envvar="ALIBABA_CLOUD_ACCESS_KEY_ID", help="KMS AccessKey id.")
@click.option("--access-key-secret", envvar="ALIBABA_CLOUD_ACCESS_KEY_SECRET",
              help="KMS AccessKey secret (prefer the environment variable).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="CA bundle for an https endpoint.")
@click.pass_context
def main(ctx: click.Context, **options: Any) -> None:
    """Manage secrets in a secret store (EmbeddedStore or Alibaba Cloud KMS)."""
    ctx.obj = options


@main.command()
@click.argument("name")
@click.option("--value-file", type=click.File("rb"), help="Read the value from this file (default: stdin).")
@click.option("--binary", is_flag=True, help="Store the value as binary data.")
@click.option("--version-id", help="VersionId of the first version (default: a random one).")
@click.option("--description", default="", help="A description.")
@click.option("--rotation-interval", type=click.FloatRange(min=0, min_open=True),
              help="Hours between automatic rotations.")
@click.pass_context
def create(ctx: click.Context, name: str, value_file: IO[bytes] | None, binary: bool, version_id: str | None,
           description: str, rotation_interval: float | None) -> None:
    """Create secret NAME; its first version becomes CURRENT."""
    data = _read_value(value_file, binary)

    def action(store: SecretStore) -> None:
        info = store.create_secret(
            name, data, version_id=version_id or uuid.uuid4().hex, description=description,
            rotation_interval=timedelta(hours=rotation_interval) if rotation_interval else None,
        )
        click.echo(f"created {info.name}")
    _run(ctx, action, create=True)


@main.command()
@click.argument("name")
@click.option("--value-file", type=click.File("rb"), help="Read the value from this file (default: stdin).")
@click.option("--binary", is_flag=True, help="Store the value as binary data.")
@click.option("--version-id", help="VersionId (default: a random one). Same id and value again is a no-op.")
@click.option("--stage", "stages", multiple=True,
              help="Stage to put on the new version (repeatable): CURRENT, PENDING, PREVIOUS or a label "
                   "of the store. Default: CURRENT.")
@click.pass_context
def put(ctx: click.Context, name: str, value_file: IO[bytes] | None, binary: bool, version_id: str | None,
        stages: tuple[str, ...]) -> None:
    """Store a new version of NAME."""
    data = _read_value(value_file, binary)

    def action(store: SecretStore) -> None:
        info = store.put_secret(name, version_id or uuid.uuid4().hex, data, stages=list(stages) or None)
        click.echo(_version_line(info))
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.option("--stage", default=None,
              help="Stage to read: CURRENT, PENDING, PREVIOUS or a label of the store (default CURRENT).")
@click.option("--version-id", help="VersionId to read.")
@click.option("--reveal", is_flag=True, help="Print the value itself (otherwise only its metadata).")
@click.pass_context
def get(ctx: click.Context, name: str, stage: str | None, version_id: str | None, reveal: bool) -> None:
    """Show one version of NAME: metadata, and the value with --reveal."""
    def action(store: SecretStore) -> None:
        secret = store.get_secret(name, stage=stage, version_id=version_id)
        if reveal:
            if isinstance(secret.data, bytes):
                sys.stdout.buffer.write(secret.data)
            else:
                click.echo(secret.data)
        else:
            click.echo(f"{secret.name}  {secret.version_id}  {', '.join(sorted(secret.stages))}  "
                       f"{secret.data_type}, {len(secret.data)} {'bytes' if secret.data_type == 'binary' else 'chars'}")
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.option("--all", "include_deprecated", is_flag=True, help="Include versions without stages.")
@click.pass_context
def versions(ctx: click.Context, name: str, include_deprecated: bool) -> None:
    """List NAME's versions and their stages, newest first."""
    def action(store: SecretStore) -> None:
        for v in store.list_versions(name, include_deprecated=include_deprecated):
            click.echo(_version_line(v))
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.pass_context
def describe(ctx: click.Context, name: str) -> None:
    """Show NAME's metadata (no value) as JSON."""
    def action(store: SecretStore) -> None:
        info = store.describe(name)
        fields = {
            "name": info.name, "secret_type": info.secret_type, "description": info.description,
            "created": info.created, "updated": info.updated, "automatic_rotation": info.automatic_rotation,
            "rotation_interval": info.rotation_interval.total_seconds() if info.rotation_interval else None,
            "last_rotation": info.last_rotation, "next_rotation": info.next_rotation, "arn": info.arn,
        }
        click.echo(json.dumps(fields, default=str, indent=2))
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.argument("stage")
@click.option("--move-to", help="Version to put STAGE on.")
@click.option("--remove-from", help="Version to take STAGE from (with --move-to: must hold it now).")
@click.pass_context
def stage(ctx: click.Context, name: str, stage: str, move_to: str | None, remove_from: str | None) -> None:
    """Move STAGE of NAME to another version, or remove it."""
    def action(store: SecretStore) -> None:
        store.update_stage(name, stage, move_to=move_to, remove_from=remove_from)
        for v in store.list_versions(name):
            click.echo(_version_line(v))
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Confirm: the secret and all its versions are deleted at once.")
@click.pass_context
def delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete NAME and all its versions."""
    if not yes:
        raise click.UsageError("deleting needs --yes")

    def action(store: SecretStore) -> None:
        store.delete_secret(name)
        click.echo(f"deleted {name}")
    _run(ctx, action)


@main.command()
@click.option("--length", type=click.IntRange(8, 128), default=32, show_default=True)
@click.option("--exclude-characters", default="", help="Characters never to use.")
@click.option("--no-punctuation", is_flag=True, help="Letters and digits only.")
@click.pass_context
def password(ctx: click.Context, length: int, exclude_characters: str, no_punctuation: bool) -> None:
    """Print a random password made by the store."""
    with _typed_errors():
        policy = PasswordPolicy(length=length, exclude_characters=exclude_characters,
                                exclude_punctuation=no_punctuation)
    if ctx.obj["store"].startswith("embedded:"):  # generated locally: no file to open
        click.echo(policy.generate())
        return
    _run(ctx, lambda store: click.echo(store.random_password(policy)))


if __name__ == "__main__":  # python -m secretclient.cli
    main()
