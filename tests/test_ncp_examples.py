"""examples/ncp runs as a user would run it: a subprocess, a real MariaDB, the NCP emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from secretclient.testing.mariadb import find_mariadbd

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(find_mariadbd() is None, reason="mariadbd is not installed")
def test_run_locally(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "ncp" / "run_locally.py"), "--rotations", "2"],
                            capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count('{"done": true, "resumed": false}; job COMPLETED; chain: active, previous') == 2
    assert "0 failed" in out
    assert "cdbPassword" not in out and "cdbPassword" not in result.stderr
