"""The examples run as a user would run them: a subprocess, real MariaDB, real store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from secretclient import EmbeddedStore
from secretclient.testing.mariadb import find_mariadbd

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(find_mariadbd() is None, reason="mariadbd is not installed")
def test_quickstart(tmp_path: Path) -> None:
    store_file = tmp_path / "secrets.db"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--store", str(store_file)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1 visit(s) so far" in out and "2 visit(s) so far" in out

    with EmbeddedStore(store_file) as store:
        current = store.get_secret("quickstart/app-db", stage="ACSCurrent")
        previous = store.get_secret("quickstart/app-db", stage="ACSPrevious")
    # The second query ran with the rotated version, and the output shows both stages.
    assert f"with version {current.version_id}: 2 visit(s)" in out
    assert f"{previous.version_id}: ACSPrevious" in out
    for secret in (current, previous):
        password = json.loads(secret.text)["AccountPassword"]
        assert password not in out and password not in result.stderr
    # The throwaway server's directory is gone.
    datadir = next(line for line in out.splitlines() if "(data in " in line).split("(data in ")[1].rstrip(")")
    assert not Path(datadir).exists()
