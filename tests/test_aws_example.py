"""examples/aws/run_locally.py runs as documented: two rotations by the Lambda, 0 failed queries."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_run_locally(mariadb):  # the fixture only ensures mariadbd is there (the script starts its own)
    pytest.importorskip("moto.server")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("AWS_")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "aws" / "run_locally.py")],
                          capture_output=True, text=True, env=env, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "rotation 1: AWSCURRENT" in out and "(username shopapp_clone)" in out
    assert "rotation 2: AWSCURRENT" in out and "(username shopapp)" in out
    assert "AWSPENDING" not in out.split("rotation 2: AWSCURRENT")[1]
    assert ", 0 failed" in out
