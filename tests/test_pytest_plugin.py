"""The pytest plugin as a user's test suite sees it: registered by entry point, fixtures work,
and a missing mariadbd skips (or fails, when required) with a clear reason."""

from __future__ import annotations

import pytest

from secretclient.stores.embedded import EmbeddedStore

pytest_plugins = ["pytester"]

# The inner runs skip hypothesis's plugin: its end-of-run summary imports all of hypothesis.
INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
USES_MARIADB = """
def test_uses_mariadb(mariadb):
    assert mariadb.port
"""


def test_plugin_is_registered_by_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("secretclient")
    assert plugin is not None and plugin.__name__ == "secretclient.testing.pytest_plugin"


def test_missing_mariadbd_skips_with_a_reason(pytester: pytest.Pytester, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SECRETCLIENT_MARIADBD", str(tmp_path / "none"))
    monkeypatch.delenv("SECRETCLIENT_REQUIRE_MARIADB", raising=False)
    pytester.makepyfile(USES_MARIADB)
    result = pytester.runpytest_inprocess("-rs", *INNER)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*mariadbd is not installed (apt-get install mariadb-server)*"])


def test_missing_mariadbd_fails_when_required(pytester: pytest.Pytester, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SECRETCLIENT_MARIADBD", str(tmp_path / "none"))
    monkeypatch.setenv("SECRETCLIENT_REQUIRE_MARIADB", "1")
    pytester.makepyfile(USES_MARIADB)
    result = pytester.runpytest_inprocess(*INNER)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*SECRETCLIENT_REQUIRE_MARIADB is set*"])


def test_embedded_store_fixture_is_fresh_and_in_memory(embedded_store: EmbeddedStore) -> None:
    assert embedded_store.path == ":memory:"
    embedded_store.create_secret("plugin/one", "v1", version_id="a")
    assert embedded_store.get_secret("plugin/one").text == "v1"


def test_embedded_store_fixture_does_not_leak_between_tests(embedded_store: EmbeddedStore) -> None:
    embedded_store.create_secret("plugin/one", "v2", version_id="b")  # no conflict with the test above
    assert embedded_store.get_secret("plugin/one").version_id == "b"


def test_kms_emulator_fixture_serves_its_backing_store_over_http(kms_emulator) -> None:
    assert kms_emulator.endpoint.startswith("http://127.0.0.1:")
    kms_emulator.backing_store.create_secret("plugin/kms", "over-the-wire", version_id="v1")
    secret = kms_emulator.store().get_secret("plugin/kms")  # through the aliyun SDK, signed
    assert (secret.text, secret.version_id) == ("over-the-wire", "v1")
