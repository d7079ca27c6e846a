"""What the ``secretclient`` and ``rotation`` command lines share: the store options (one
default, one environment variable) and one way to report our errors.

    @click.group()
    @store_options
    @click.pass_context
    def main(ctx, **options): ...

    with typed_errors():
        store = open_store_from(ctx.obj, create=False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from .errors import SecretClientError
from .stores import SecretStore, open_store

__all__ = ["DEFAULT_STORE", "STORE_ENV", "open_store_from", "store_options", "typed_errors"]

#: The store both CLIs use when neither ``--store`` nor ``$SECRETCLIENT_STORE`` names one.
DEFAULT_STORE = "embedded:secrets.db"
STORE_ENV = "SECRETCLIENT_STORE"

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option("--store", envvar=STORE_ENV, default=DEFAULT_STORE, show_default=True,
                 help=f"embedded:PATH, kms, aws or ncp (or ${STORE_ENV}); the key of an encrypted "
                      "embedded file comes from $SECRETCLIENT_EMBEDDED_KEY."),
    click.option("--region", envvar="ALIBABA_CLOUD_REGION_ID",
                 help="Region of a cloud store (kms; aws and ncp also read their own environment)."),
    click.option("--endpoint", envvar="SECRETCLIENT_KMS_ENDPOINT",
                 help="Endpoint of a cloud store: https://host[:port] (host[:port] alone means HTTPS) "
                      "or http://host[:port]."),
    click.option("--access-key-id", envvar="ALIBABA_CLOUD_ACCESS_KEY_ID",
                 help="Access key id of a cloud store (default: its environment variables)."),
    click.option("--access-key-secret", envvar="ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                 help="Access key secret of a cloud store (prefer the environment variable)."),
)

#: The keys :func:`store_options` adds to a command's options.
STORE_OPTION_NAMES = ("store", "region", "endpoint", "access_key_id", "access_key_secret")


def store_options(command: F) -> F:
    """Add ``--store``, ``--region``, ``--endpoint``, ``--access-key-id`` and
    ``--access-key-secret`` to a click command or group."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def open_store_from(options: Mapping[str, Any], *, create: bool = False, **extra: Any) -> SecretStore:
    """The store the options of :func:`store_options` name. ``create=False``: a missing
    ``embedded:PATH`` file is an error, never a new empty store (a typo stays a typo)."""
    return open_store(
        options["store"], create=create, region=options["region"], endpoint=options["endpoint"],
        access_key_id=options["access_key_id"], access_key_secret=options["access_key_secret"], **extra,
    )


@contextmanager
def typed_errors() -> Iterator[None]:
    """Our errors become one line, ``Error: <Type>: <message>`` on stderr, and exit status 1
    (click's own format for usage errors: one look for every failure). Never a value: our
    messages do not carry any."""
    try:
        yield
    except SecretClientError as e:
        raise click.ClickException(f"{type(e).__name__}: {e}") from None
