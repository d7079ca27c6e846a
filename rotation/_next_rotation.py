"""Telling the store when a secret rotates next, so that clients in other processes refresh then.

KMS rotates only managed secret types itself; for a Generic secret it reports no next rotation
date, so the engine records its own (``record_next_rotation``, a tag that ``DescribeSecret``
returns) and every ``SecretClient`` learns it from the one DescribeSecret it makes per version.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from secretclient.errors import SecretClientError

log = logging.getLogger("rotation")


def record_next_rotation(store: Any, secret_name: str, when: datetime | None) -> bool:
    """Record ``when`` for ``secret_name`` if the store can keep it; False if it cannot or failed.

    A failure is logged, never raised: the rotation it follows has succeeded, and clients then
    only fall back to their TTL.
    """
    record = getattr(store, "record_next_rotation", None)
    if record is None:
        return False
    try:
        record(secret_name, when)
    except SecretClientError as exc:
        log.warning("cannot record the next rotation of %s (%s): clients refresh at their TTL",
                    secret_name, type(exc).__name__)
        return False
    return True
