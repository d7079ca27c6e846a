"""Shared by the tests that run Alibaba's seed functions (tests/seed/) unchanged."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType, SimpleNamespace

SEED_DIR = Path(__file__).parent / "seed"
FC_ROLE = ("STS.fc-role", "fc-role-secret", "fc-token")  # AccessKey id, secret, STS token


def load_seed(filename: str) -> ModuleType:
    """Import a vendored seed file; the seed sets the root logger to INFO on import: keep ours."""
    root = logging.getLogger()
    level = root.level
    spec = importlib.util.spec_from_file_location(Path(filename).stem, SEED_DIR / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        root.setLevel(level)
    return module


def fc_context(request_id: str) -> SimpleNamespace:
    """What Function Compute hands the handler: a request id and the role's STS credentials."""
    ak, sk, token = FC_ROLE
    creds = SimpleNamespace(accessKeyId=ak, accessKeySecret=sk, securityToken=token)
    return SimpleNamespace(requestId=request_id, credentials=creds)
