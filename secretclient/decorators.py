"""Decorators that pass a secret's *current* value to a function, fetched at each call.

The value is read when the function is called, never when it is decorated, so a rotation
is picked up by the next call (the import-time capture of aws-secretsmanager-caching-python
issue 27 is what this avoids). Reads go through the client's cache, so a warm call costs
one dictionary lookup.

::

    @inject_secret(client, "app/api-token", arg="token")
    def call_api(url, *, token): ...

    @inject_db_credentials(client, "app/mysql")
    def connect(*, credentials): ...

With ``client=None`` the default client (:func:`~secretclient.set_default_client`)
is looked up at each call. An argument passed explicitly by the caller is left alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import wrapt

from ._default_client import get_default_client
from .errors import InvalidParameter
from .model import Stage

if TYPE_CHECKING:
    from .client import SecretClient

__all__ = ["inject_db_credentials", "inject_secret"]

F = TypeVar("F", bound=Callable[..., Any])

_READERS: dict[str, Callable[[SecretClient, str, str], Any]] = {
    "text": lambda client, name, stage: client.get_text(name, stage),
    "json": lambda client, name, stage: client.get_json(name, stage),
    "secret": lambda client, name, stage: client.get(name, stage),
    "db_credentials": lambda client, name, stage: client.get_db_credentials(name, stage),
}


def inject_secret(
    client: SecretClient | None,
    name: str,
    *,
    arg: str = "secret",
    stage: str = Stage.CURRENT,
    as_: Literal["text", "json", "secret", "db_credentials"] = "text",
) -> Callable[[F], F]:
    """Pass secret ``name`` (at ``stage``) as keyword argument ``arg`` on every call.

    ``as_`` chooses the form: ``"text"`` (``str``, the default), ``"json"`` (parsed, a new
    object per call), ``"secret"`` (the :class:`~secretclient.model.Secret`) or
    ``"db_credentials"`` (:class:`~secretclient.model.DbCredentials`).
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameter("inject_secret: the secret name must be a non-empty string")
    if not isinstance(arg, str) or not arg.isidentifier():
        raise InvalidParameter("inject_secret: arg must be a parameter name")
    if as_ not in _READERS:
        raise InvalidParameter(f"inject_secret: as_ must be one of {sorted(_READERS)}, not {as_!r}")
    read = _READERS[as_]

    @wrapt.decorator
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if arg not in kwargs:
            kwargs[arg] = read(client if client is not None else get_default_client(), name, stage)
        return wrapped(*args, **kwargs)

    def decorate(func: F) -> F:
        _require_keyword(func, arg)
        return cast(F, wrapper(func))

    return decorate


def inject_db_credentials(
    client: SecretClient | None, name: str, *, arg: str = "credentials", stage: str = Stage.CURRENT
) -> Callable[[F], F]:
    """Pass secret ``name`` parsed as :class:`~secretclient.model.DbCredentials` as keyword
    argument ``arg`` (default ``credentials``) on every call."""
    return inject_secret(client, name, arg=arg, stage=stage, as_="db_credentials")


def _require_keyword(func: Callable[..., Any], arg: str) -> None:
    """Fail at decoration time, not at the first call, if ``func`` cannot take ``arg``."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature: trust the caller
        return
    if arg in params and params[arg].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    ):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    raise InvalidParameter(
        f"{getattr(func, '__qualname__', func)!r} has no keyword parameter {arg!r} to receive the secret; "
        f"add one or pass arg=<its name>"
    )
