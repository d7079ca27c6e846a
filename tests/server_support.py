"""Helpers for the tests of the throwaway servers and the emulators (not a test module)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def port_refuses(port: int) -> bool:
    """Nothing accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def post_json(url: str, data: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST straight to ``url`` (no proxy from the environment); the status and the JSON answer,
    error statuses included."""
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
