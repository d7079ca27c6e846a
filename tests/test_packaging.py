"""The distribution as a user gets it: sdist and wheel built from a copy of the checkout, the
wheel installed into fresh virtualenvs (no extras, then every extra), used from there.

This catches files missing from the sdist or wheel (``py.typed``, a sub-package), dependencies
a module imports without declaring them, broken console scripts and a pytest plugin that does not
register. It needs ``uv`` (scripts/setup-env.sh installs it into .venv) and installs from uv's
cache only (``--offline``): the packages are those setup-env.sh already installed.
"""

from __future__ import annotations

import ast
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = "secretclient-rotation"
PACKAGES = ("secretclient", "rotation")
# Extras for people working on the project, not for users of the library.
NOT_FOR_USERS = {"dev"}
# bench/bench_client.py runs these in bench/.venv-anchors (bench/setup_anchors.sh), never beside us.
ANCHOR_ONLY = {"alibaba_cloud_secretsmanager_client", "aws_secretsmanager_caching"}

pytestmark = pytest.mark.packaging


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (scripts/setup-env.sh installs it into .venv)")
    return found


def _env() -> dict[str, str]:
    # Outside the checkout: nothing may come from the source tree or our .venv.
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(*args: str | Path, cwd: Path, timeout: float = 240) -> str:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=_env(),
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout}\n{result.stderr}"
    return result.stdout


_SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".hypothesis",
                               ".venv-anchors", ".pytest_cache", "*.db", "*.db-*")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(sdist, wheel); the wheel is built from the unpacked sdist, as ``uv build`` does."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_SKIP)
    _run(_uv(), "build", "--offline", "--quiet", "--out-dir", work / "dist", source, cwd=work)
    (sdist,) = (work / "dist").glob("*.tar.gz")
    (wheel,) = (work / "dist").glob("*.whl")
    yield sdist, wheel


def _venv(tmp: Path, wheel: Path, extras: list[str]) -> Path:
    uv = _uv()
    venv = tmp / "venv"
    _run(uv, "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp)
    python = venv / "bin" / "python"
    target = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    _run(uv, "pip", "install", "--offline", "--quiet", "--python", python, target, cwd=tmp)
    return python


def _imported_top_levels(files: list[Path]) -> set[str]:
    """Top-level modules the files import, less the standard library and the files' own folders."""
    found: set[str] = set()
    local = {f.stem for f in files}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - local - {"__future__"}


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_names_sdist_and_wheel_contents(built: tuple[Path, Path]) -> None:
    sdist, wheel = built
    meta = _metadata(wheel)
    assert meta["Name"] == DIST
    assert sdist.name.startswith("secretclient_rotation-") and wheel.name.startswith("secretclient_rotation-")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    with tarfile.open(sdist) as tf:
        in_sdist = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for package in PACKAGES:
        # Every tracked module of the package is in both (the wheel came from the sdist).
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            assert rel in names, f"{rel} missing from the wheel"
            assert rel in in_sdist, f"{rel} missing from the sdist"
        assert f"{package}/py.typed" in names
    assert {"README.md", "pyproject.toml"} <= in_sdist
    # Tests, examples and benches are not installed as top-level packages.
    assert not {n.split("/")[0] for n in names} & {"tests", "examples", "bench", "docs", "scripts"}


def test_wheel_without_extras(built: tuple[Path, Path], tmp_path: Path) -> None:
    """The core promise of README's install table: store, cache, PyMySQL connections, rotation
    and both CLIs work with the declared dependencies alone."""
    _, wheel = built
    python = _venv(tmp_path, wheel, [])
    bindir = python.parent
    code = (
        "import importlib.metadata as m, secretclient, secretclient.db, rotation, rotation.cli, secretclient.cli\n"
        "from secretclient import EmbeddedStore, SecretClient\n"
        f"assert m.version({DIST!r}) == secretclient.__version__, 'pyproject.toml and __version__ differ'\n"
        "try: m.distribution('secretclient')\n"  # the placeholder on the package index
        "except m.PackageNotFoundError: pass\n"
        "else: raise SystemExit('a distribution named secretclient is installed')\n"
        "print(secretclient.__file__)\n"
    )
    out = _run(python, "-c", code, cwd=tmp_path)
    assert str(tmp_path / "venv") in out, out  # imported from the venv, not from the checkout

    value = tmp_path / "value.json"
    value.write_text('{"AccountName": "app", "AccountPassword": "pw-not-shown"}')
    store = f"embedded:{tmp_path / 'secrets.db'}"
    _run(bindir / "secretclient", "--store", store, "create", "app/db", "--value-file", value, cwd=tmp_path)
    out = _run(bindir / "secretclient", "--store", store, "versions", "app/db", cwd=tmp_path)
    assert "ACSCurrent" in out and "pw-not-shown" not in out
    out = _run(bindir / "rotation", "--store", store, "status", "app/db", cwd=tmp_path)
    assert "app/db" in out and "pw-not-shown" not in out


def test_wheel_with_every_extra(built: tuple[Path, Path], tmp_path: Path) -> None:
    """With every user-facing extra, every module imports (an import of an undeclared dependency
    fails here), and the pytest plugin registers its fixtures."""
    _, wheel = built
    extras = sorted(set(_metadata(wheel).get_all("Provides-Extra") or []) - NOT_FOR_USERS)
    assert {"kms", "sqlalchemy", "async", "rds", "crypto", "testing", "bench", "examples"} <= set(extras)
    python = _venv(tmp_path, wheel, extras)
    code = (
        "import importlib, pkgutil\n"
        f"for top in {PACKAGES!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print('imported')\n"
    )
    assert "imported" in _run(python, "-c", code, cwd=tmp_path)

    # bench/ and examples/ run with the bench and examples extras: every module they import is there.
    needed = _imported_top_levels([*(ROOT / "bench").glob("*.py"), *(ROOT / "examples").rglob("*.py")]) - ANCHOR_ONLY
    code = (
        "import importlib.util, sys\n"
        f"missing = [m for m in {sorted(needed)!r} if importlib.util.find_spec(m) is None]\n"
        "print('missing:', missing)\n"
    )
    assert "missing: []" in _run(python, "-c", code, cwd=tmp_path)

    (tmp_path / "test_plugin.py").write_text(
        "def test_fixture(embedded_store):\n"
        "    embedded_store.create_secret('a', 'b', version_id='v1')\n"
        "    assert embedded_store.get_secret('a').text == 'b'\n"
    )
    out = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plugin.py", cwd=tmp_path)
    assert "1 passed" in out, out


# `secretclient[kms]` or `pip install secretclient` would install the placeholder on the index.
_PLACEHOLDER = re.compile(r"(?<![\w./-])secretclient\[|pip install '?secretclient(?![\w.-])")


def _placeholder_mentions(*folders: str) -> list[str]:
    hits = []
    for folder in folders:
        base = ROOT / folder
        files = [base] if base.is_file() else [p for p in base.rglob("*") if p.suffix in {".md", ".py", ".sh", ".toml"}]
        for path in files:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _PLACEHOLDER.search(line) and "not `pip install secretclient`" not in line.lower():  # warnings
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return hits


def test_docs_and_scripts_never_install_the_placeholder() -> None:
    assert _placeholder_mentions("README.md", "docs", "examples", "scripts", "bench", "pyproject.toml") == []


def test_library_messages_never_install_the_placeholder() -> None:
    assert _placeholder_mentions("secretclient", "rotation") == []
