"""A newcomer's first hour (issue 11, items 10 and 12), run as they would run it: the quickstart's
by-hand path verbatim, the throwaway MariaDB command for a person, examples run twice."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from secretclient import EmbeddedStore
from secretclient.testing.mariadb import find_mariadbd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

needs_mariadb = pytest.mark.skipif(find_mariadbd() is None, reason="mariadbd is not installed")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=_env(), check=False)


# -- item 10: python -m secretclient.testing.mariadb ------------------------------------------


@needs_mariadb
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_mariadb_command_serves_a_person_until_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "secretclient.testing.mariadb", "--env-file", "db.env"],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        shown = []
        for line in proc.stdout:  # bounded: the process exits (EOF) if it fails to start
            shown.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        out = "".join(shown)
        assert "is running on 127.0.0.1:" in out, out + (proc.stderr.read() if proc.poll() is not None else "")

        env = dict(re.findall(r"^(MARIADB_\w+)=(.*)$", (tmp_path / "db.env").read_text(), re.MULTILINE))
        cnf = Path(env["MARIADB_CNF"])
        options = dict(re.findall(r"^(\w+)=(.*)$", cnf.read_text(), re.MULTILINE))
        for private in (tmp_path / "db.env", cnf):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600
        # What the person is told to type works: the real client, with the option file.
        assert f"mariadb --defaults-extra-file={cnf}" in out
        whoami = subprocess.run(["mariadb", f"--defaults-extra-file={cnf}", "-N", "-e", "SELECT CURRENT_USER()"],
                                capture_output=True, text=True, timeout=30, check=False)
        assert whoami.returncode == 0 and whoami.stdout.strip() == "root@127.0.0.1", whoami.stderr
        # And so do the values in the env file, from Python.
        conn = pymysql.connect(host=env["MARIADB_HOST"], port=int(env["MARIADB_PORT"]), user="root",
                               password=options["password"], connect_timeout=5, read_timeout=30)
        conn.close()
        assert options["password"] not in out  # the root password stays in the option file

        proc.send_signal(stop)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopping" in rest and "Traceback" not in err
    assert not cnf.parent.exists() and not (tmp_path / "db.env").exists()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.settimeout(5)
        s.connect((env["MARIADB_HOST"], int(env["MARIADB_PORT"])))


@needs_mariadb
def test_quickstart_by_hand_runs_verbatim() -> None:
    """scripts/quickstart.sh follows docs/quickstart.md section 2 verbatim, pip install included."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "quickstart.sh")], capture_output=True, text=True,
                            timeout=600, cwd=ROOT, env=_env(), check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # The outputs the page shows, in order.
    first = out.index("connected as shop_app@%; 1 visit(s) so far")
    assert "rotated shop/app: ACSCurrent is now" in out[first:]
    assert out.index("connected as shop_app_rt@%; 2 visit(s) so far") > first
    assert "every step of docs/quickstart.md section 2 passed" in out


# -- item 12: examples are re-runnable; the webapp says what it needs --------------------------


DEMO = ["--duration", "2", "--interval", "1", "--workers", "2", "--min-rotations", "1", "--store-file"]


@needs_mariadb
@pytest.mark.parametrize(("example", "secret", "args"), [
    ("quickstart.py", "quickstart/app-db", ["--store"]),
    ("pymysql_connect.py", "examples/pymysql", ["--store"]),
    ("demo.py", "demo/app-db", DEMO),
], ids=["quickstart", "pymysql_connect", "demo"])
def test_example_runs_twice_with_the_same_store(tmp_path: Path, example: str, secret: str, args: list[str]) -> None:
    store_file = tmp_path / "secrets.db"
    versions = []
    for _ in range(2):
        result = _run(EXAMPLES / example, *args, store_file, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        with EmbeddedStore(store_file) as store:
            current = store.get_secret(secret)
            versions.append(len(store.list_versions(secret, include_deprecated=True)))
        # The current version is the one this run made and used (its server is the live one).
        assert current.version_id in result.stdout
    assert versions[1] > versions[0]


def test_webapp_without_flask_says_what_to_install(tmp_path: Path) -> None:
    # Flask made unimportable, as in an environment with the core dependencies only.
    code = (
        "import runpy, sys\n"
        "sys.modules['flask'] = None\n"
        f"sys.argv = [{str(EXAMPLES / 'webapp' / 'app.py')!r}]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    result = _run("-c", code, cwd=tmp_path)
    assert result.returncode == 1
    assert "needs Flask: pip install '.[examples]'" in result.stderr
    assert "Traceback" not in result.stderr


# -- issue 11 item 9: README's install commands, verbatim ----------------------------------------


def _bash_block_under(markdown: Path, heading: str) -> str:
    text = markdown.read_text()
    section = text[text.index(heading):]
    match = re.search(r"^```bash\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, f"no bash block under {heading!r} in {markdown.name}"
    return match.group(1)


_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".hypothesis",
                                     ".venv-anchors", ".mypy_cache", ".ruff_cache", "*.db", "*.db-*")


def test_readme_install_commands_run_verbatim(tmp_path: Path) -> None:
    """Each line of README's Install block, as written, with pip from a fresh virtualenv on PATH,
    in a copy of the checkout (pip fetches the dependencies from the package index)."""
    block = _bash_block_under(ROOT / "README.md", "## Install")
    assert "pip install secretclient" not in block.replace("secretclient-rotation", "")
    source = tmp_path / "checkout"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in _env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], capture_output=True, text=True, timeout=600,
                            cwd=source, env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The last line installed the built wheel with the kms and sqlalchemy extras: all of it works
    # from the virtualenv, not from the checkout.
    probe = ("import aliyunsdkkms, sqlalchemy, secretclient, rotation, secretclient.db.sqlalchemy\n"
             "from secretclient.stores.aliyun import AliyunKmsStore\n"
             "print(secretclient.__file__)\n")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(venv)), out.stdout
