"""The ``secretclient`` command line, against an embedded file and the KMS emulator."""

import json

import click
import pytest
from click.testing import CliRunner

from secretclient import EmbeddedStore
from secretclient.cli import main

VALUE = json.dumps({"AccountName": "app", "AccountPassword": "cli-Secret-Value-42"})


@pytest.fixture
def run(tmp_path):
    store = f"embedded:{tmp_path / 's.db'}"

    def invoke(*args, input=None, env=None):
        return CliRunner().invoke(main, ["--store", store, *args], input=input, env=env)
    return invoke


def test_create_get_put_stage_versions_delete(run):
    res = run("create", "shop/app", "--version-id", "v1", input=VALUE)
    assert res.exit_code == 0, res.output
    res = run("get", "shop/app")
    assert res.exit_code == 0 and "v1" in res.output and "ACSCurrent" in res.output
    assert "cli-Secret-Value-42" not in res.output  # metadata only without --reveal
    assert run("get", "shop/app", "--reveal").output.strip() == VALUE

    res = run("put", "shop/app", "--version-id", "v2", "--stage", "ACSPending", input="new")
    assert res.exit_code == 0 and "ACSPending" in res.output
    res = run("stage", "shop/app", "ACSCurrent", "--move-to", "v2", "--remove-from", "v1")
    assert res.exit_code == 0, res.output
    lines = run("versions", "shop/app").output.splitlines()
    assert lines[0].startswith("v2") and "ACSCurrent" in lines[0] and "ACSPending" in lines[0]
    assert lines[1].startswith("v1") and "ACSPrevious" in lines[1]

    info = json.loads(run("describe", "shop/app").output)
    assert info["name"] == "shop/app" and "cli-Secret-Value-42" not in json.dumps(info)

    assert run("delete", "shop/app").exit_code != 0  # needs --yes
    assert run("delete", "shop/app", "--yes").exit_code == 0
    res = run("get", "shop/app")
    assert res.exit_code == 1 and "SecretNotFound" in res.output


def test_errors_are_typed_and_change_nothing(run):
    run("create", "db", "--version-id", "v1", input="one")
    res = run("put", "db", "--version-id", "v1", input="other")
    assert res.exit_code == 1 and "VersionConflict" in res.output
    res = run("stage", "db", "ACSCurrent", "--remove-from", "v1")
    assert res.exit_code == 1 and "InvalidParameter" in res.output
    assert run("get", "db", "--reveal").output.strip() == "one"


def test_password_follows_policy(run):
    res = run("password", "--length", "20", "--no-punctuation")
    pw = res.output.strip()
    assert res.exit_code == 0 and len(pw) == 20 and pw.isalnum()
    res = run("password", "--exclude-characters", "".join(chr(c) for c in range(33, 127)))
    assert res.exit_code == 1 and "InvalidParameter" in res.output


def test_encrypted_embedded_store_key_from_environment(tmp_path):
    key = EmbeddedStore.generate_key()
    spec = f"embedded:{tmp_path / 'enc.db'}"
    env = {"SECRETCLIENT_EMBEDDED_KEY": key.hex()}
    r = CliRunner()
    assert r.invoke(main, ["--store", spec, "create", "x"], input="sealed", env=env).exit_code == 0
    assert r.invoke(main, ["--store", spec, "get", "x", "--reveal"], env=env).output.strip() == "sealed"
    res = r.invoke(main, ["--store", spec, "get", "x"], env={"SECRETCLIENT_EMBEDDED_KEY": ""})
    assert res.exit_code == 1 and "EncryptionKeyError" in res.output


def test_kms_store_through_the_sdk(kms_emulator):
    base = ["--store", "kms", "--region", kms_emulator.region, "--endpoint", kms_emulator.endpoint,
            "--access-key-id", kms_emulator.access_key_id, "--access-key-secret", kms_emulator.access_key_secret]
    r = CliRunner()
    assert r.invoke(main, [*base, "create", "k"], input=VALUE).exit_code == 0
    assert r.invoke(main, [*base, "get", "k", "--reveal"]).output.strip() == VALUE
    assert kms_emulator.calls["GetSecretValue"] >= 1
    bad = [*base[:-1], "wrong-secret"]
    res = r.invoke(main, [*bad, "get", "k"])
    assert res.exit_code == 1 and "AccessDenied" in res.output


def test_open_store_spec_and_key(tmp_path):
    import base64

    from secretclient import InvalidParameter, open_store
    from secretclient.stores.embedded import EncryptionKeyError

    key = EmbeddedStore.generate_key()
    spec = f"embedded:{tmp_path / 'k.db'}"
    with open_store(spec, env={"SECRETCLIENT_EMBEDDED_KEY": base64.b64encode(key).decode()}) as store:
        store.create_secret("x", "v", version_id="v1")
    with open_store(spec, env={"SECRETCLIENT_EMBEDDED_KEY": key.hex()}) as store:
        assert store.get_secret("x").data == "v"
    with pytest.raises(EncryptionKeyError):
        open_store(spec, env={})
    with pytest.raises(InvalidParameter):
        open_store(spec, env={"SECRETCLIENT_EMBEDDED_KEY": "not a key"})
    with pytest.raises(InvalidParameter):
        open_store("sqlite:x", env={})


def test_reads_do_not_create_a_store_file(tmp_path):
    path = tmp_path / "typo.db"
    res = CliRunner().invoke(main, ["--store", f"embedded:{path}", "versions", "x"])
    assert res.exit_code == 1 and "no store file" in res.output
    assert not path.exists()
    res = CliRunner().invoke(main, ["--store", f"embedded:{path}", "password", "--length", "12"])
    assert res.exit_code == 0 and len(res.output.strip()) == 12 and not path.exists()


def test_stage_roles_work_and_help_names_no_store_label(run):
    run("create", "db", "--version-id", "v1", input="one")
    assert run("put", "db", "--version-id", "v2", "--stage", "PENDING", input="two").exit_code == 0
    assert "v2" in run("get", "db", "--stage", "PENDING").output
    assert run("stage", "db", "CURRENT", "--move-to", "v2", "--remove-from", "v1").exit_code == 0
    assert run("get", "db", "--stage", "PREVIOUS").output.split()[1] == "v1"
    for command in ("create", "put", "get"):
        assert "ACS" not in CliRunner().invoke(main, [command, "--help"]).output


def test_an_empty_value_is_refused_and_creates_nothing(run, tmp_path):
    for args in (("create", "db"), ("create", "db", "--binary")):
        res = run(*args, input="")
        assert res.exit_code == 2 and "Error: the value is empty" in res.output
    assert not (tmp_path / "s.db").exists()  # refused before the store was even opened
    run("create", "db", "--version-id", "v1", input="one")
    res = run("put", "db", input="")
    assert res.exit_code == 2 and "empty" in res.output
    assert [line.split()[0] for line in run("versions", "db").output.splitlines()] == ["v1"]


def test_list_delete_restore_and_force(run):
    run("create", "app/db", input="one")
    run("create", "app/token", input="t")
    assert [line.split()[0] for line in run("list").output.splitlines()] == ["app/db", "app/token"]
    res = run("delete", "app/db", "--yes", "--recovery-window-days", "7")
    assert res.exit_code == 0 and "restore app/db" in res.output
    assert "deletion planned" in run("list").output.splitlines()[0]
    res = run("get", "app/db")
    assert res.exit_code == 1 and "Rejected.ResourceInDeleteWindow" in res.output
    res = run("create", "app/db", input="again")
    assert res.exit_code == 1 and "ResourceInDeleteWindow" in res.output
    assert run("restore", "app/db").exit_code == 0
    assert run("get", "app/db", "--reveal").output.strip() == "one"
    res = run("delete", "app/db", "--yes", "--recovery-window-days", "3")
    assert res.exit_code == 1 and res.output.startswith("Error: InvalidParameter") and "7 to 30" in res.output
    assert run("delete", "app/db", "--yes", "--force").exit_code == 0
    assert run("create", "app/db", input="new").exit_code == 0


def test_both_clis_share_the_store_option_and_its_default():
    from secretclient._cli_options import DEFAULT_STORE, STORE_OPTION_NAMES, store_options

    @click.command()
    @store_options
    def probe(**options):
        click.echo(json.dumps(options, sort_keys=True))

    got = json.loads(CliRunner().invoke(probe, [], env={"SECRETCLIENT_STORE": None}).output)
    assert got["store"] == DEFAULT_STORE and sorted(got) == sorted(STORE_OPTION_NAMES)
    assert f"[default: {DEFAULT_STORE}]" in CliRunner().invoke(main, ["--help"]).output


def test_a_terminal_gets_a_prompt_without_echo(tmp_path):
    """``create NAME`` on a terminal asks twice without echoing; the value never appears."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    path = tmp_path / "s.db"

    def controlling_tty() -> None:
        import fcntl
        import termios

        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "secretclient.cli", "--store", f"embedded:{path}", "create", "db"],
                            stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_tty, close_fds=True)
    os.close(slave)
    seen = b""
    answers = [b"typed-Secret-42\n", b"typed-Secret-42\n"]
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                seen += os.read(master, 1024)
            except OSError:
                break
        if answers and seen.count(b": ") > 2 - len(answers):
            os.write(master, answers.pop(0))
    if proc.poll() is None:  # still waiting for input it should have prompted for
        proc.kill()
    proc.wait(10)
    os.close(master)
    assert proc.returncode == 0, seen
    assert b"Value" in seen and b"typed-Secret-42" not in seen
    assert EmbeddedStore(path).get_secret("db").data == "typed-Secret-42"


def test_list_on_a_store_without_it_is_a_typed_error(kms_emulator):
    from secretclient.stores import EmbeddedStore, LifecycleStore

    assert isinstance(EmbeddedStore(), LifecycleStore)
    base = ["--store", "kms", "--region", kms_emulator.region, "--endpoint", kms_emulator.endpoint,
            "--access-key-id", kms_emulator.access_key_id, "--access-key-secret", kms_emulator.access_key_secret]
    res = CliRunner().invoke(main, [*base, "list"])
    if res.exit_code == 0:  # AliyunKmsStore has list_secrets now
        return
    assert res.exit_code == 1 and "UnsupportedOperation" in res.output and res.exception.__class__ is SystemExit
