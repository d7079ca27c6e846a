"""The demo and the examples, run as a user runs them: subprocesses, real MariaDB, real stores.

examples/function_compute is also driven in-process with the fixtures, step by step as CloudFlow
would, so the test can check the store and the database between executions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pymysql
import pytest

from secretclient import EmbeddedStore, SecretNotFound
from secretclient.testing.mariadb import find_mariadbd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.skipif(find_mariadbd() is None, reason="mariadbd is not installed")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=_env(), check=False)


def _passwords(store_file: Path) -> list[str]:
    """Every password of every version in an EmbeddedStore file."""
    found = []
    with EmbeddedStore(store_file) as store:
        for name in ("demo/app-db", "demo/rotator-db", "examples/pymysql"):
            try:
                versions = store.list_versions(name, include_deprecated=True)
            except SecretNotFound:
                continue  # each run creates some of these secrets only
            for v in versions:
                found.append(store.get_secret(name, version_id=v.version_id).db_credentials().account_password)
    return found


SUMMARY = re.compile(r"^(\d+) rotations, ([\d,]+) queries, ([\d,]+) failed", re.MULTILINE)


def _summary(out: str) -> tuple[int, int, int]:
    match = SUMMARY.search(out)
    assert match, out
    rotations, queries, failed = (int(g.replace(",", "")) for g in match.groups())
    return rotations, queries, failed


# -- the demo --------------------------------------------------------------------------------


def test_demo_alternating_users_embedded_store(tmp_path: Path) -> None:
    store_file = tmp_path / "secrets.db"
    result = _run([str(EXAMPLES / "demo.py"), "--duration", "8", "--interval", "1", "--workers", "4",
                   "--store-file", str(store_file), "--min-rotations", "2"], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    rotations, queries, failed = _summary(out)
    assert rotations >= 2 and queries > 0 and failed == 0
    assert "OK: no failed query" in out
    # Plain status lines (stdout is not a terminal), one per second.
    assert len(re.findall(r"q/s \|", out)) >= 4
    # The workers really moved between the two accounts.
    assert "(appuser_rt)" in out and "(appuser)" in out
    assert "database accounts: appuser, appuser_rt" in out
    passwords = _passwords(store_file)
    assert len(passwords) >= 2 + rotations
    for password in passwords:
        assert password not in out and password not in result.stderr


def test_demo_single_user_through_the_kms_sdk_without_publish(tmp_path: Path) -> None:
    store_file = tmp_path / "secrets.db"
    result = _run([str(EXAMPLES / "demo.py"), "--store", "kms", "--strategy", "single", "--no-publish",
                   "--duration", "5", "--interval", "1", "--workers", "4", "--store-file", str(store_file),
                   "--min-rotations", "2"], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "through aliyun-python-sdk-kms" in out
    rotations, _, failed = _summary(out)
    assert rotations >= 2 and failed == 0
    # Nobody told the application: its refused logins found the new versions.
    logins = re.search(r"logins \d+ \(rejected (\d+), recovered (\d+)\)", out)
    assert logins, out
    rejected, recovered = int(logins.group(1)), int(logins.group(2))
    # A stale password is refused once per process, whatever the number of connects waiting on it
    # (secretclient.db's per-process failed-login limit): one refusal serves every recovery.
    assert recovered >= 1 and 1 <= rejected <= 2 * rotations, out
    for password in _passwords(store_file):
        assert password not in out and password not in result.stderr


@pytest.mark.parametrize("strategy", ["alternating", "single"])
def test_demo_on_aws_secrets_manager(tmp_path: Path, strategy: str) -> None:
    """scripts/demo.sh --store aws: moto's server through boto3, AWS's own stage labels."""
    result = _run([str(EXAMPLES / "demo.py"), "--store", "aws", "--strategy", strategy, "--no-publish",
                   "--duration", "5", "--interval", "1", "--workers", "4", "--min-rotations", "2"], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "through boto3" in out and "AWSCURRENT -> version" in out and "ACSCurrent" not in out
    rotations, _, failed = _summary(out)
    assert rotations >= 2 and failed == 0


@pytest.mark.parametrize(("strategy", "store"), [("alternating", "embedded"), ("single", "kms")])
def test_demo_on_postgresql(tmp_path: Path, strategy: str, store: str) -> None:
    """scripts/demo.sh --db postgres: the same demo through psycopg 3 and the PostgreSQL strategies."""
    from secretclient.testing.postgresql import find_postgres

    if find_postgres() is None:
        pytest.skip("postgres is not installed")
    store_file = tmp_path / "secrets.db"
    result = _run([str(EXAMPLES / "demo.py"), "--db", "postgres", "--strategy", strategy, "--store", store,
                   "--duration", "6", "--interval", "1", "--workers", "4", "--store-file", str(store_file),
                   "--min-rotations", "2"] + (["--no-publish"] if store == "kms" else []), tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^PostgreSQL \d+", out, re.MULTILINE), out
    rotations, queries, failed = _summary(out)
    assert rotations >= 2 and queries > 0 and failed == 0
    if strategy == "alternating":  # the workers really moved between the two logins
        assert "(appuser_rt)" in out and "(appuser)" in out
        assert "database accounts: appuser, appuser_rt" in out
    else:
        assert "database accounts: appuser;" in out
    with EmbeddedStore(store_file) as backing:
        assert backing.get_secret("demo/app-db").db_credentials().extra["engine"] == "postgres"
    passwords = _passwords(store_file)
    assert len(passwords) >= 2 + rotations
    for password in passwords:
        assert password not in out and password not in result.stderr


def test_demo_fails_when_too_few_rotations_happen(tmp_path: Path) -> None:
    result = _run([str(EXAMPLES / "demo.py"), "--duration", "1.5", "--interval", "60", "--workers", "2"], tmp_path)
    assert result.returncode == 1
    assert "FAILED: only 0 rotations, expected at least 1" in result.stdout
    assert _summary(result.stdout)[0] == 0


# -- examples/pymysql_connect.py ---------------------------------------------------------------


def test_pymysql_connect_example(tmp_path: Path) -> None:
    store_file = tmp_path / "secrets.db"
    result = _run([str(EXAMPLES / "pymysql_connect.py"), "--store", str(store_file)], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    with EmbeddedStore(store_file) as store:
        current = store.get_secret("examples/pymysql")
        previous = store.get_secret("examples/pymysql", stage="ACSPrevious")
    assert f"connected with version {previous.version_id}" in out
    assert f"refused 1 time(s), re-read the secret and logged in with version {current.version_id}" in out
    assert f"ping(reconnect=True) logged in again with version {current.version_id}" in out
    assert "3 connects, 4 logins, 1 rejected, 1 recovered" in out
    for password in _passwords(store_file):
        assert password not in out and password not in result.stderr


# -- examples/webapp ---------------------------------------------------------------------------


def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_webapp_serves_through_rotations(tmp_path: Path) -> None:
    errors = (tmp_path / "stderr.txt").open("w+")  # werkzeug logs every request there: not a pipe
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / "webapp" / "app.py"), "--port", "0", "--interval", "1",
         "--duration", "6"],
        stdout=subprocess.PIPE, stderr=errors, text=True, cwd=tmp_path, env=_env(),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        out, base = [], None
        deadline = time.monotonic() + 60
        while base is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
                continue
            out.append(line)
            if m := re.search(r"serving on (http://127\.0\.0\.1:\d+)", line):
                base = m.group(1)
        assert base, "".join(out)

        statuses: list[int] = []
        accounts: set[str] = set()

        def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    statuses.append(resp.status)
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
                return None

        def client(n: int, until: float) -> None:
            while time.monotonic() < until:
                call("POST", "/items", {"name": f"item-{n}", "stock": n})
                call("GET", "/items")
                health = call("GET", "/health")
                if health:
                    accounts.add(health["account"])

        until = time.monotonic() + 4  # the server stops 6 s after it started serving
        clients = [threading.Thread(target=client, args=(n, until)) for n in range(4)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=60)
        assert proc.wait(timeout=60) == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        errors.close()
    reader.join(timeout=10)
    while not lines.empty():
        out.append(lines.get())
    text = "".join(out)

    assert statuses and set(statuses) <= {200, 201}, sorted(set(statuses))
    assert {"shop_web@%", "shop_web_rt@%"} <= accounts, accounts
    rotations = len(re.findall(r"^rotation \d+: ACSCurrent is now version", text, re.MULTILINE))
    assert rotations >= 2, text
    assert re.search(rf"served {len(statuses)} requests \(0 server errors\) through {rotations} rotations", text), text


# -- examples/function_compute -----------------------------------------------------------------


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_flow_yaml_is_the_seeds_four_steps() -> None:
    runner = _load(EXAMPLES / "function_compute" / "run_locally.py", "fc_run_locally")
    flow = runner.parse_yaml((EXAMPLES / "function_compute" / "flow.yaml").read_text())
    assert flow["type"] == "flow" and flow["version"] == "v1"
    steps = flow["steps"]
    assert [s["name"] for s in steps] == ["RotateSecretNew", "RotateSecretSet", "RotateSecretTest", "RotateSecretEnd"]
    assert [{m["target"]: m["source"] for m in s["inputMappings"]}.get("Step") for s in steps] == [
        "new", "set", "test", "end"]
    for step in steps[1:]:
        assert {"target": "VersionId", "source": "$local.VersionId"} in step["inputMappings"]
    assert all(s["resourceArn"] == "<function-arn>" for s in steps)


def test_function_compute_flow_against_kms_emulator(mariadb: Any, kms_emulator: Any, monkeypatch: Any) -> None:
    runner = _load(EXAMPLES / "function_compute" / "run_locally.py", "fc_run_locally")
    index = _load(EXAMPLES / "function_compute" / "index.py", "fc_index")
    store = kms_emulator.backing_store
    runner.provision(mariadb, store)
    monkeypatch.setenv("ROTATION_STORE", "kms")
    monkeypatch.setenv("ROTATION_KMS_ENDPOINT", kms_emulator.endpoint)
    monkeypatch.setenv("ROTATION_GRACE_SECONDS", "0")  # two rotations back to back (the default is 1 h)
    flow = runner.parse_yaml((EXAMPLES / "function_compute" / "flow.yaml").read_text())
    creds = runner.Credentials(kms_emulator.access_key_id, kms_emulator.access_key_secret, "")
    payload = {"SecretName": runner.SECRET, "RegionId": kms_emulator.region}
    reports: list[str] = []
    try:
        for expected_account in ("appuser_rt", "appuser"):
            before = store.get_secret(runner.SECRET).version_id
            local = runner.run_flow(flow, payload, index.handler, creds, reports.append)
            current = store.get_secret(runner.SECRET)
            assert current.version_id == local["VersionId"] != before
            assert store.get_secret(runner.SECRET, stage="ACSPrevious").version_id == before
            stages = {s for v in store.list_versions(runner.SECRET) for s in v.stages}
            assert "ACSPending" not in stages
            new = current.db_credentials()
            assert new.account_name == expected_account
            conn = pymysql.connect(host=new.endpoint, port=new.port, user=new.account_name,
                                   password=new.account_password, database=new.db_name, connect_timeout=5)
            with conn, conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                assert cur.fetchone()[0] == f"{expected_account}@%"
        # Every step went through the SDK to the emulator, and the VersionId was passed along.
        assert len(reports) == 8
        assert kms_emulator.calls["PutSecretValue"] == 2
        assert kms_emulator.calls["UpdateSecretVersionStage"] >= 4
    finally:
        for user in ("appuser", "appuser_rt", "privileged"):
            mariadb.drop_user(user)


def test_function_compute_run_locally_cli(tmp_path: Path) -> None:
    result = _run([str(EXAMPLES / "function_compute" / "run_locally.py")], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.findall(r"for account (\w+)", out) == ["appuser_rt", "appuser"]
    assert len(re.findall(r"RotateSecret(New|Set|Test|End): event", out)) == 8
    assert "STS credentials checked" in out


# -- examples/testing_your_code ----------------------------------------------------------------


def test_testing_your_code_example_passes(tmp_path: Path) -> None:
    env = _env()
    env["SECRETCLIENT_REQUIRE_MARIADB"] = "1"  # fail, never skip, if the fixture cannot start
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "testing_your_code")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b3 passed\b", result.stdout), result.stdout
