"""An optional, explicit process-wide default client (the only global state we keep).

Nothing sets it implicitly: an application that wants decorators without passing a client
calls :func:`set_default_client` once at start-up.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .errors import InvalidParameter, NoDefaultClient

if TYPE_CHECKING:
    from .client import SecretClient

__all__ = ["NoDefaultClient", "get_default_client", "set_default_client"]


_lock = threading.Lock()
_default: SecretClient | None = None


def set_default_client(client: SecretClient | None) -> SecretClient | None:
    """Make ``client`` the default (``None`` clears it); returns the previous default.

    The caller keeps ownership: closing the client stays its job.
    """
    from .client import SecretClient

    if client is not None and not isinstance(client, SecretClient):
        raise InvalidParameter(f"set_default_client() takes a SecretClient or None, not {type(client).__name__}")
    global _default
    with _lock:
        previous, _default = _default, client
    return previous


def get_default_client() -> SecretClient:
    """The default client; :class:`NoDefaultClient` if none was set."""
    client = _default
    if client is None:
        raise NoDefaultClient(
            "no default SecretClient: call secretclient.set_default_client(client) first, or pass client="
        )
    return client
