"""inject_secret / inject_db_credentials and the optional default client."""

from __future__ import annotations

import pytest

from secretclient import NoDefaultClient, get_default_client, set_default_client
from secretclient.client import SecretClient
from secretclient.decorators import inject_db_credentials, inject_secret
from secretclient.errors import InvalidParameter
from secretclient.model import DbCredentials, Secret
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing import ManualClock, ManualExecutor


@pytest.fixture
def store() -> EmbeddedStore:
    s = EmbeddedStore()
    s.create_secret("token", "t-1", version_id="a")
    s.create_secret("db", '{"AccountName": "app", "AccountPassword": "pw-1"}', version_id="d1")
    s.create_secret("cfg", '{"debug": true}', version_id="c1")
    return s


@pytest.fixture
def client(store) -> SecretClient:
    with SecretClient(store, executor=ManualExecutor(), rotation_aware=False) as c:
        yield c


def test_value_is_read_at_call_time_not_at_decoration_time(store, client):
    @inject_secret(client, "token", arg="password")
    def use(prefix: str, *, password: str) -> str:
        return prefix + password

    assert use("x-") == "x-t-1"
    store.put_secret("token", "b", "t-2")
    client.refresh("token")  # a rotation the client has seen
    assert use("x-") == "x-t-2"


def test_explicit_argument_wins(client):
    @inject_secret(client, "token", arg="password")
    def use(*, password: str) -> str:
        return password

    assert use(password="given") == "given"


def test_forms_of_the_value(client):
    @inject_secret(client, "cfg", arg="cfg", as_="json")
    def json_form(cfg):
        return cfg

    @inject_secret(client, "token", as_="secret")
    def secret_form(secret):
        return secret

    @inject_db_credentials(client, "db")
    def creds_form(*, credentials):
        return credentials

    assert json_form() == {"debug": True}
    assert isinstance(secret_form(), Secret) and secret_form().version_id == "a"
    creds = creds_form()
    assert isinstance(creds, DbCredentials) and creds.account_password == "pw-1"


def test_methods_keep_self(client):
    class Service:
        @inject_secret(client, "token", arg="token")
        def call(self, path, token):
            return (self, path, token)

    svc = Service()
    assert svc.call("/x") == (svc, "/x", "t-1")


def test_decoration_errors_are_caught_early(client):
    with pytest.raises(InvalidParameter, match="no keyword parameter 'password'"):

        @inject_secret(client, "token", arg="password")
        def no_such_param(token):
            return token

    with pytest.raises(InvalidParameter):
        inject_secret(client, "", arg="x")
    with pytest.raises(InvalidParameter):
        inject_secret(client, "token", as_="yaml")  # type: ignore[arg-type]

    @inject_secret(client, "token", arg="anything")
    def takes_kwargs(**kwargs):
        return kwargs["anything"]

    assert takes_kwargs() == "t-1"


def test_default_client_is_looked_up_at_call_time(store):
    @inject_secret(None, "token", arg="token")
    def use(token):
        return token

    with pytest.raises(NoDefaultClient):
        use()
    with SecretClient(store, executor=ManualExecutor()) as c:
        previous = set_default_client(c)
        try:
            assert get_default_client() is c
            assert use() == "t-1"
        finally:
            assert set_default_client(previous) is c
    with pytest.raises(NoDefaultClient):
        get_default_client()


def test_default_client_must_be_a_client():
    with pytest.raises(InvalidParameter):
        set_default_client("nope")  # type: ignore[arg-type]


def test_injection_follows_ttl_expiry(store):
    clock = ManualClock()
    with SecretClient(store, clock=clock, ttl=60, refresh_ahead=0, rotation_aware=False) as c:

        @inject_secret(c, "token", arg="token")
        def use(token):
            return token

        assert use() == "t-1"
        store.put_secret("token", "b", "t-2")
        clock.advance(60)
        assert use() == "t-2"
