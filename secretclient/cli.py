"""``secretclient``: manage secrets in a store from the shell.

Values are read from a file, standard input or a prompt without echo, never from the command
line (where other users could see them in the process list), and printed only with
``get --reveal``.

    secretclient --store embedded:secrets.db create shop/app --value-file creds.json
    secretclient --store kms --region cn-hangzhou versions shop/app
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import IO, Any

import click

from ._cli_options import open_store_from, store_options, typed_errors
from .errors import StoreError
from .model import PasswordPolicy, VersionInfo
from .stores.base import LifecycleStore, SecretStore

__all__ = ["main"]

_DEFAULT_WINDOW = 30  # days, the store contract's default for delete_secret


def _read_value(value_file: IO[bytes] | None, binary: bool) -> str | bytes:
    """The value from ``--value-file``, else standard input, else (on a terminal) a prompt
    that does not echo. An empty value is refused: it is almost always a mistake."""
    if value_file is None and sys.stdin.isatty():
        if binary:
            raise click.UsageError("a binary value cannot be typed: give --value-file or pipe it in")
        data: bytes = click.prompt("Value (not shown)", hide_input=True, confirmation_prompt=True,
                                   show_default=False).encode("utf-8")
    else:
        data = bytes((value_file or sys.stdin.buffer).read())
    if not data:
        raise click.UsageError("the value is empty: give it with --value-file, on standard input, "
                               "or type it at the prompt")
    if binary:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.UsageError("the value is not UTF-8 text; pass --binary to store it as binary") from None


def _run(ctx: click.Context, action: Callable[[SecretStore], Any], *, create: bool = False) -> None:
    with typed_errors():
        # Only `create` may start a new store file: a mistyped path must not.
        store = open_store_from(ctx.obj, create=create, verify=ctx.obj["ca_file"])
        try:
            action(store)
        finally:
            store.close()


def _lifecycle(store: SecretStore) -> LifecycleStore:
    if not isinstance(store, LifecycleStore):
        raise StoreError(f"{type(store).__name__} cannot list or restore secrets", code="UnsupportedOperation")
    return store


def _version_line(v: VersionInfo) -> str:
    created = v.created.isoformat(timespec="seconds") if v.created else "-"
    return f"{v.version_id}  {created}  {', '.join(sorted(v.stages)) or '-'}"


@click.group()
@store_options
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="CA bundle for an https endpoint.")
@click.pass_context
def main(ctx: click.Context, /, **options: Any) -> None:
    """Manage secrets in a secret store: embedded, Alibaba Cloud KMS, AWS Secrets Manager or NCP."""
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
            # Our own VersionId: AliyunKmsStore.create_secret does not generate one yet.
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
@click.option("--yes", is_flag=True, help="Confirm the deletion.")
@click.option("--recovery-window-days", type=int, default=_DEFAULT_WINDOW, show_default=True,
              help="Days (7-30) during which `restore` can bring the secret back.")
@click.option("--force", is_flag=True, help="Delete the secret and all its versions at once, without recovery.")
@click.pass_context
def delete(ctx: click.Context, name: str, yes: bool, recovery_window_days: int, force: bool) -> None:
    """Schedule NAME for deletion (or, with --force, delete it at once)."""
    if not yes:
        raise click.UsageError("deleting needs --yes")

    def action(store: SecretStore) -> None:
        # Only what the user chose: the default window is every store's default, and a store
        # that cannot delete at all (NCP) then answers its own typed refusal.
        if force or recovery_window_days != _DEFAULT_WINDOW:
            store.delete_secret(name, recovery_window_days=recovery_window_days, force=force)
        else:
            store.delete_secret(name)
        if force:
            click.echo(f"deleted {name}")
        else:
            click.echo(f"{name} will be deleted in {recovery_window_days} days; "
                       f"`secretclient restore {name}` brings it back until then")
    _run(ctx, action)


@main.command()
@click.argument("name")
@click.pass_context
def restore(ctx: click.Context, name: str) -> None:
    """Cancel the scheduled deletion of NAME."""
    def action(store: SecretStore) -> None:
        _lifecycle(store).restore_secret(name)
        click.echo(f"restored {name}")
    _run(ctx, action)


@main.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List the secrets: names and metadata, no values."""
    def action(store: SecretStore) -> None:
        for info in _lifecycle(store).list_secrets():
            created = info.created.isoformat(timespec="seconds") if info.created else "-"
            line = f"{info.name}  {info.secret_type}  {created}"
            if info.planned_deletion is not None:
                line += f"  deletion planned {info.planned_deletion.isoformat(timespec='seconds')}"
            click.echo(line)
    _run(ctx, action)


@main.command()
@click.option("--length", type=click.IntRange(8, 128), default=32, show_default=True)
@click.option("--exclude-characters", default="", help="Characters never to use.")
@click.option("--no-punctuation", is_flag=True, help="Letters and digits only.")
@click.pass_context
def password(ctx: click.Context, length: int, exclude_characters: str, no_punctuation: bool) -> None:
    """Print a random password made by the store."""
    with typed_errors():
        policy = PasswordPolicy(length=length, exclude_characters=exclude_characters,
                                exclude_punctuation=no_punctuation)
    if ctx.obj["store"].startswith("embedded:"):  # generated locally: no file to open
        click.echo(policy.generate())
        return
    _run(ctx, lambda store: click.echo(store.random_password(policy)))


if __name__ == "__main__":  # python -m secretclient.cli
    main()
