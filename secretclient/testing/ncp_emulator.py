"""A local NAVER Cloud Secret Manager: a real HTTP(S) server speaking its REST API and its
rotation-job API.

It checks API Gateway signature v2 and the timestamp (5 minutes, as NCP), keeps each secret as
NCP does — a chain of ``active`` / ``pending`` / ``previous`` values plus ``rotationTargets`` —
and runs rotation jobs the way the service drives a Cloud Functions action: the service issues a
job token (:meth:`NcpEmulator.start_rotation`), the action calls ``/start``, stores ``/pending``,
and ends with ``/complete`` (pending → active → previous) or ``/fail`` (the chain is kept).
Answers and errors have NCP's shapes (``{"code": "SUCCESS", "data": …}``,
``{"error": {"errorCode", "message", "details"}}``).

    with NcpEmulator() as ncp:
        sid = ncp.create_secret("app-db", '{"cdbUser": "app", "cdbPassword": "…"}',
                                rotation_targets=["cdbPassword"])
        token = ncp.start_rotation(sid)      # what the service does before it calls the action
        store = ncp.store()                  # an NcpSecretManagerStore pointed at it
        ncp.faults.set_latency(0.05)

Proxy mode: as ``HTTPS_PROXY`` (``ncp.proxy_url``) it answers ``CONNECT`` to NCP's hosts itself,
so unmodified code that insists on ``https://secretmanager.apigw.ntruss.com`` reaches it (trust
:attr:`NcpEmulator.ca_file`, e.g. ``REQUESTS_CA_BUNDLE``).

From a shell: ``python -m secretclient.testing.ncp_emulator --port 8200 [--https]``.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets as _secrets
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from secretclient.errors import InvalidParameter
from secretclient.stores._ncp_http import (
    ACCESS_KEY_HEADER,
    JOB_TOKEN_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign_v2,
)
from secretclient.testing._cli import emulator_parser, serve_until_signalled
from secretclient.testing._http import HttpService
from secretclient.testing._ncp_server import NCP_HOSTS, NcpHandler
from secretclient.testing.rpc_server import Faults

__all__ = ["NCP_HOSTS", "NcpEmulator", "NcpError", "main"]

_SKEW_MS = 5 * 60 * 1000
_PAGE_SIZE = 20
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,14}")
_STAGES = ("previous", "active", "pending")

# errorCode -> (HTTP status, message): Secret Manager's table, then the API Gateway's codes.
_ERRORS: dict[str, tuple[int, str]] = {
    "INVALID_REQUEST": (400, "Invalid request"),
    "UNAUTHORIZED": (401, "Unauthorized"),
    "FORBIDDEN": (403, "Forbidden"),
    "NOT_FOUND": (404, "Not found"),
    "UNPROCESSABLE_ENTITY": (422, "Invalid status"),
    "INVALID_STATUS": (422, "Invalid status"),
    "INTERNAL_SERVER_ERROR": (500, "Server internal error"),
    "SERVICE_UNAVAILABLE": (503, "Service unavailable"),
    "200": (401, "Authentication Failed"),
    "400": (429, "Quota Exceeded"),
}


class NcpError(Exception):
    """An error answer: ``errorCode``, HTTP status, message and details."""

    table: ClassVar[Mapping[str, tuple[int, str]]] = _ERRORS

    def __init__(self, code: str, details: str = "", status: int | None = None, message: str | None = None) -> None:
        known = _ERRORS.get(code, (400, code))
        super().__init__(code)
        self.code = code
        self.status = status if status is not None else known[0]
        self.message = message if message is not None else known[1]
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"errorCode": self.code, "message": self.message, "details": self.details}}


@dataclass
class _Job:
    token: str
    state: str = "CREATED"  # CREATED -> STARTED -> COMPLETED | FAILED | SUPERSEDED


@dataclass
class _Secret:
    secret_id: str
    name: str
    chain: dict[str, str]
    rotation_targets: list[str]
    memo: str
    created: int
    updated: int
    auto_rotation: bool = False
    period_days: int = 0
    status: str = "ENABLE"
    job: _Job | None = None
    last_rotation: int | None = None
    last_result: str | None = None
    jobs: list[_Job] = field(default_factory=list)


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


class NcpEmulator(HttpService):
    """A local Secret Manager endpoint on ``host:port`` (``port=0`` picks a free one).

    :param access_keys: ``{access_key: secret_key}`` accepted; default one random pair.
    :param https: serve HTTPS with a throwaway CA (:attr:`ca_file`).
    :param clock: seconds since the epoch (timestamp checks, dates in answers).
    """

    #: The codes the fault injector answers with.
    internal_code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    unavailable_code: ClassVar[str] = "SERVICE_UNAVAILABLE"
    throttling_code: ClassVar[str] = "400"
    error_class: ClassVar[type[NcpError]] = NcpError
    handler_class = NcpHandler

    def __init__(
        self,
        access_keys: Mapping[str, str] | None = None,
        *,
        https: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "KR",
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        faults: Faults | None = None,
    ) -> None:
        if access_keys is None:
            access_keys = {"ncp_iam_" + _secrets.token_hex(8).upper(): _secrets.token_urlsafe(30)}
        if not access_keys:
            raise InvalidParameter("NcpEmulator needs at least one access key")
        super().__init__(host, port)
        self._keys = dict(access_keys)
        self.https = https
        self.region = region
        self._clock = clock
        self.faults = faults if faults is not None else Faults(seed=seed)
        self._secrets: dict[str, _Secret] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def route(self, hostname: str) -> NcpEmulator | None:
        """Proxy mode serves NCP's hosts only."""
        return self if hostname.lower() in NCP_HOSTS else None

    def tls_hostnames(self) -> tuple[str, ...]:
        return NCP_HOSTS

    def __repr__(self) -> str:
        return f"NcpEmulator({self.endpoint if self._server else 'stopped'})"

    # -- addresses and credentials ----------------------------------------------------------

    @property
    def access_key(self) -> str:
        return next(iter(self._keys))

    @property
    def secret_key(self) -> str:
        return self._keys[self.access_key]

    def add_access_key(self, access_key: str, secret_key: str) -> None:
        """Accept another key pair."""
        with self._lock:
            self._keys[access_key] = secret_key

    @property
    def calls(self) -> Counter[str]:
        """Requests received per API (``ncp.calls["CompleteRotationJob"]``)."""
        return self.faults.calls

    def server_timestamp(self) -> float:
        """The service's time (POSIX seconds): every answer's ``Date``, and the dates it records."""
        return float(self._clock())

    def store(self, **kw: Any) -> Any:
        """An :class:`~secretclient.stores.ncp.NcpSecretManagerStore` pointed at this emulator."""
        from secretclient.stores.ncp import NcpSecretManagerStore

        options: dict[str, Any] = {"endpoint": self.endpoint, "access_key": self.access_key,
                                   "secret_key": self.secret_key}
        if self.https:
            options["verify"] = str(self.ca_file)
        options.update(kw)
        return NcpSecretManagerStore(**options)

    # -- what the console and the service do -------------------------------------------------

    def create_secret(
        self,
        name: str,
        value: str,
        rotation_targets: list[str] | tuple[str, ...] = (),
        *,
        memo: str = "",
        auto_rotation_days: int | None = None,
    ) -> str:
        """Create a secret whose ``active`` value is ``value``; returns its secret id."""
        body: dict[str, Any] = {"secretName": name, "memo": memo,
                "secretValue": {"value": value, "rotationTargets": list(rotation_targets)},
                "secretType": "BASIC", "autoRotationYN": "Y" if auto_rotation_days else "N",
                "protectionKeyType": "DEFAULT"}
        if auto_rotation_days:
            body["autoRotationPeriod"] = auto_rotation_days
        return str(self._create(body)["secretId"])

    def start_rotation(self, secret_id: str) -> str:
        """Issue a rotation job for the secret, as the service does before calling the action.

        A job still open is superseded (the service gave up on it): its token stops working.
        """
        with self._lock:
            secret = self._secret(secret_id)
            if secret.job is not None and secret.job.state in ("CREATED", "STARTED"):
                secret.job.state = "SUPERSEDED"
            job = _Job(token=_secrets.token_hex(20))
            secret.job = job
            secret.jobs.append(job)
            return job.token

    def chain(self, secret_id: str) -> dict[str, str]:
        """The secret's chain right now (stage -> value)."""
        with self._lock:
            return dict(self._secret(secret_id).chain)

    def job_state(self, secret_id: str, token: str) -> str:
        """``CREATED``, ``STARTED``, ``COMPLETED``, ``FAILED`` or ``SUPERSEDED``."""
        with self._lock:
            for job in self._secret(secret_id).jobs:
                if job.token == token:
                    return job.state
        raise InvalidParameter("no such job token for this secret")

    def secret_id(self, name: str) -> str:
        """The id of the secret named ``name``."""
        with self._lock:
            for secret in self._secrets.values():
                if secret.name == name:
                    return secret.secret_id
        raise InvalidParameter(f"no secret named {name!r}")

    # -- used by the fault injector ------------------------------------------------------------

    def error(self, code: str, message: str | None = None, status: int | None = None) -> NcpError:
        return NcpError(code, "injected fault", status, message)

    # -- request handling ----------------------------------------------------------------------

    def _track(self, conn: Any, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _authenticate(self, method: str, target: str, headers: Mapping[str, str]) -> None:
        stamp, key, signature = (headers.get(h) for h in (TIMESTAMP_HEADER, ACCESS_KEY_HEADER, SIGNATURE_HEADER))
        if not stamp or not key or not signature:
            raise NcpError("200", "Required authentication headers are missing.")
        with self._lock:
            secret_key = self._keys.get(key)
        if secret_key is None:
            raise NcpError("200", "Invalid access key.")
        if not stamp.isdigit() or abs(_now_ms(self._clock) - int(stamp)) > _SKEW_MS:
            raise NcpError("200", "Request timestamp is invalid or expired.")
        if not hmac.compare_digest(sign_v2(method, target, stamp, key, secret_key), signature):
            raise NcpError("200", "Signature mismatch.")

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., Any], tuple[str, ...]]:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"] and parts[2:3] == ["secrets"]:
            rest = parts[3:]
            table: dict[tuple[str, int], tuple[str, Callable[..., Any]]] = {
                ("GET", 0): ("GetSecretList", self._list),
                ("POST", 0): ("CreateSecret", self._create_api),
                ("GET", 1): ("GetSecretDetail", self._detail),
                ("GET", 2): ("GetSecretValue", self._values),
                ("PUT", 2): ("UpdateSecretValue", self._update_values),
                ("PUT", 3): ("UpdateSecretStageValue", self._update_stage_value),
            }
            if len(rest) >= 2 and rest[1] != "values":
                raise NcpError("NOT_FOUND", "No such API.")
            found = table.get((method, len(rest)))
            if found:
                return found[0], found[1], tuple(rest[:1] + rest[2:])
        if parts[:2] == ["action", "v1"] and len(parts) == 7 and parts[2] == "secrets" and parts[4] == "jobs":
            jobs: dict[tuple[str, str], tuple[str, Callable[..., Any]]] = {
                ("POST", "start"): ("StartRotationJob", self._job_start),
                ("POST", "generate-random-secret"): ("GenerateRandomSecret", self._job_random),
                ("POST", "pending"): ("AddPendingStage", self._job_add_pending),
                ("PUT", "pending"): ("UpdatePendingStage", self._job_put_pending),
                ("POST", "complete"): ("CompleteRotationJob", self._job_complete),
                ("POST", "fail"): ("FailRotationJob", self._job_fail),
            }
            found = jobs.get((method, parts[6]))
            if found:
                return found[0], found[1], (parts[3], parts[5])
        raise NcpError("NOT_FOUND", "No such API.")

    def _secret(self, secret_id: str) -> _Secret:
        secret = self._secrets.get(secret_id)
        if secret is None:
            raise NcpError("NOT_FOUND", "The secret does not exist.")
        return secret

    def _info(self, s: _Secret) -> dict[str, Any]:
        out: dict[str, Any] = {
            "secretId": s.secret_id, "secretName": s.name, "secretStatus": s.status, "secretType": "BASIC",
            "memo": s.memo, "region": self.region, "registerDate": s.created, "updateDate": s.updated,
            "autoRotationYN": "Y" if s.auto_rotation else "N",
            "rotationPhase": "ROTATING" if s.status == "ROTATING" else "NONE",
            "protectionKey": {"type": "DEFAULT"},
        }
        if s.auto_rotation:
            out["autoRotationPeriod"] = s.period_days
            base = s.last_rotation or s.created
            out["nextRotationDate"] = base + s.period_days * 86_400_000
        if s.last_rotation is not None:
            out["lastRotationDate"] = s.last_rotation
            out["lastRotationResult"] = s.last_result
        return out

    # Secret Manager API -------------------------------------------------------------------

    def _list(self, query: Mapping[str, str], body: Any) -> Any:
        raw = query.get("pageNo") or "1"
        if not raw.isdigit():
            raise NcpError("INVALID_REQUEST", "pageNo must be a number.")
        page = max(int(raw), 1)
        with self._lock:
            items = sorted(self._secrets.values(), key=lambda s: s.created)
            chunk = items[(page - 1) * _PAGE_SIZE: page * _PAGE_SIZE]
            total = len(items)
            listed = [{k: v for k, v in self._info(s).items()
                       if k in ("secretId", "secretName", "secretStatus", "secretType", "region", "registerDate")}
                      for s in chunk]
        return {"totalPageNo": max(1, -(-total // _PAGE_SIZE)), "currentPageNo": page, "totalCount": total,
                "secretList": listed}

    def _create_api(self, query: Mapping[str, str], body: Any) -> Any:
        return self._create(body)

    def _create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise NcpError("INVALID_REQUEST", "The request body must be a JSON object.")
        name = body.get("secretName")
        value_obj = body.get("secretValue")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise NcpError("INVALID_REQUEST",
                           "secretName: 3 to 15 letters, digits, '-' or '_', starting with a letter.")
        if not isinstance(value_obj, Mapping) or not isinstance(value_obj.get("value"), str) or not value_obj["value"]:
            raise NcpError("INVALID_REQUEST", "secretValue.value is required.")
        targets = value_obj.get("rotationTargets")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise NcpError("INVALID_REQUEST", "secretValue.rotationTargets must be a list of strings.")
        auto = body.get("autoRotationYN", "N")
        if auto not in ("Y", "N"):
            raise NcpError("INVALID_REQUEST", "autoRotationYN must be Y or N.")
        period = body.get("autoRotationPeriod", 90)
        if auto == "Y" and (not isinstance(period, int) or not 1 <= period <= 730):
            raise NcpError("INVALID_REQUEST", "autoRotationPeriod must be 1 to 730 days.")
        memo = body.get("memo") or ""
        now = _now_ms(self._clock)
        with self._lock:
            if any(s.name == name for s in self._secrets.values()):
                raise NcpError("INVALID_STATUS", "A secret with this name already exists.")
            sid = _secrets.token_hex(32)
            secret = _Secret(sid, name, {"active": value_obj["value"]}, list(targets), str(memo), now, now,
                             auto_rotation=auto == "Y", period_days=period if auto == "Y" else 0)
            self._secrets[sid] = secret
            return self._info(secret)

    def _detail(self, query: Mapping[str, str], body: Any, sid: str) -> Any:
        with self._lock:
            return self._info(self._secret(sid))

    def _chain_answer(self, s: _Secret) -> dict[str, Any]:
        return {"decryptedSecretChain": {k: s.chain[k] for k in _STAGES if k in s.chain},
                "rotationTargets": list(s.rotation_targets)}

    def _values(self, query: Mapping[str, str], body: Any, sid: str) -> Any:
        with self._lock:
            return self._chain_answer(self._secret(sid))

    @staticmethod
    def _value(body: Any, key: str = "value") -> str:
        if not isinstance(body, Mapping) or not isinstance(body.get(key), str):
            raise NcpError("INVALID_REQUEST", f"{key} is required and must be a string.")
        return str(body[key])

    def _update_values(self, query: Mapping[str, str], body: Any, sid: str) -> Any:
        if not isinstance(body, Mapping) or not any(k in body for k in _STAGES):
            raise NcpError("INVALID_REQUEST", "Give at least one of previous, active, pending.")
        for k in _STAGES:
            if k in body and not isinstance(body[k], (str, type(None))):
                raise NcpError("INVALID_REQUEST", f"{k} must be a string.")
        with self._lock:
            s = self._secret(sid)
            self._writable(s)
            if "active" in body and not body["active"]:
                raise NcpError("INVALID_REQUEST", "The active value cannot be deleted.")
            for k in _STAGES:
                if k in body:
                    if body[k]:
                        s.chain[k] = body[k]
                    else:  # an empty value deletes the stage
                        s.chain.pop(k, None)
            s.updated = _now_ms(self._clock)
            return self._chain_answer(s)

    def _update_stage_value(self, query: Mapping[str, str], body: Any, sid: str, stage: str) -> Any:
        if stage not in _STAGES:
            raise NcpError("INVALID_REQUEST", "The stage must be previous, active or pending.")
        value = self._value(body)
        if not value:
            raise NcpError("INVALID_REQUEST", "value must not be empty.")
        with self._lock:
            s = self._secret(sid)
            self._writable(s)
            s.chain[stage] = value
            s.updated = _now_ms(self._clock)
            return {"encryptedSecretValue": {"value": "ncpkms:v1:" + uuid.uuid4().hex, "valueStage": stage}}

    @staticmethod
    def _writable(s: _Secret) -> None:
        if s.status == "ROTATING":
            raise NcpError("INVALID_STATUS", "The secret is being rotated.")

    # rotation-job API -----------------------------------------------------------------------

    def _job(self, sid: str, token: str, header_token: str | None, *, states: tuple[str, ...]) -> _Secret:
        """The secret, after checking that ``token`` is its job's, in one of ``states``."""
        if header_token is not None and not hmac.compare_digest(header_token, token):
            raise NcpError("FORBIDDEN", "The SECRET-JOB-TOKEN header does not match the job token.")
        s = self._secret(sid)
        job = s.job
        if job is None or not hmac.compare_digest(job.token, token):
            known = any(hmac.compare_digest(j.token, token) for j in s.jobs)
            if known:
                raise NcpError("INVALID_STATUS", "The rotation job has ended.")
            raise NcpError("FORBIDDEN", "Invalid job token.")
        if job.state not in states:
            raise NcpError("INVALID_STATUS", f"The rotation job is {job.state}.")
        return s

    def _move_job(self, sid: str, token: str, header: str | None, states: tuple[str, ...], to: str) -> _Secret:
        """(Lock held.) The secret whose job ``token`` is in one of ``states``, that job moved to ``to``."""
        s = self._job(sid, token, header, states=states)
        assert s.job is not None
        s.job.state = to
        return s

    def _job_start(self, query: Mapping[str, str], body: Any, sid: str, token: str, header: str | None) -> Any:
        with self._lock:
            s = self._move_job(sid, token, header, ("CREATED", "STARTED"), "STARTED")
            s.status = "ROTATING"
            return self._chain_answer(s)

    def _job_random(self, query: Mapping[str, str], body: Any, sid: str, token: str, header: str | None) -> Any:
        with self._lock:
            self._job(sid, token, header, states=("STARTED",))
        text = _random_string(body)
        # The documented answer has data.randomString; NCP's own sample action reads a top-level
        # randomString, so both are given (docs/emulator.md).
        return {"randomString": text}, {"randomString": text}

    def _job_add_pending(self, query: Mapping[str, str], body: Any, sid: str, token: str, header: str | None) -> Any:
        with self._lock:
            s = self._job(sid, token, header, states=("STARTED",))
            try:
                value = json.loads(s.chain["active"])
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise NcpError("INVALID_STATUS", "The active value is not a JSON object.")
            for target in s.rotation_targets:
                value[target] = _random_string({"length": 32, "excludeCharacters": "\"'\\`"})
            s.chain["pending"] = json.dumps(value)
            return {"pending": s.chain["pending"]}

    def _job_put_pending(self, query: Mapping[str, str], body: Any, sid: str, token: str, header: str | None) -> Any:
        value = self._value(body)
        if not value:
            raise NcpError("INVALID_REQUEST", "value must not be empty.")
        with self._lock:
            s = self._job(sid, token, header, states=("STARTED",))
            s.chain["pending"] = value
            return {"pending": value}

    def _job_complete(self, query: Mapping[str, str], body: Any, sid: str, token: str, header: str | None) -> Any:
        with self._lock:
            s = self._job(sid, token, header, states=("STARTED",))
            assert s.job is not None
            if "pending" not in s.chain:
                raise NcpError("INVALID_STATUS", "There is no pending value to promote.")
            s.chain = {"previous": s.chain["active"], "active": s.chain["pending"]}
            s.job.state = "COMPLETED"
            s.status = "ENABLE"
            s.last_rotation = s.updated = _now_ms(self._clock)
            s.last_result = "SUCCESS"
            return None

    def _job_fail(self, query: Mapping[str, str], body: Any, sid: str, token: str, header: str | None) -> Any:
        with self._lock:
            s = self._move_job(sid, token, header, ("CREATED", "STARTED"), "FAILED")
            s.status = "ENABLE"
            s.last_rotation = _now_ms(self._clock)
            s.last_result = "FAIL"
            return None

    def _handle(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(target)
        try:
            api, handler, args = self._route(method, url.path)
        except NcpError as err:
            return err.status, err.body()
        # Faults is the KMS emulator's; this class is a FaultTarget (error() and the codes).
        drop, injected, delay = self.faults._admit(api, self)
        if delay:
            time.sleep(delay)
        if drop:
            raise ConnectionAbortedError
        try:
            if injected is not None:
                raise injected
            self._authenticate(method, target, headers)
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise NcpError("INVALID_REQUEST", "The request body is not JSON.") from None
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            if url.path.startswith("/action/"):
                result = handler(query, body, *args, headers.get(JOB_TOKEN_HEADER))
            else:
                result = handler(query, body, *args)
        except NcpError as err:
            return err.status, err.body()
        if isinstance(result, tuple):
            data, top = result
            return 200, {"code": "SUCCESS", "data": data, **top}
        return 200, {"code": "SUCCESS", "data": result}


def _random_string(body: Any) -> str:
    """A random string per the generate-random-secret body (length up to 32, as NCP documents)."""
    if not isinstance(body, Mapping):
        raise NcpError("INVALID_REQUEST", "The request body must be a JSON object.")
    length = body.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= 32:
        raise NcpError("INVALID_REQUEST", "length must be 1 to 32.")
    excluded = body.get("excludeCharacters") or ""
    if not isinstance(excluded, str):
        raise NcpError("INVALID_REQUEST", "excludeCharacters must be a string.")
    classes = []
    for flag, chars in (("excludeLowercase", string.ascii_lowercase), ("excludeUppercase", string.ascii_uppercase),
                        ("excludeNumbers", string.digits), ("excludePunctuation", string.punctuation)):
        if not body.get(flag):
            kept = "".join(c for c in chars if c not in excluded)
            if kept:
                classes.append(kept)
    if body.get("includeSpace"):
        classes.append(" ")
    if not classes:
        raise NcpError("INVALID_REQUEST", "Every character is excluded.")
    alphabet = "".join(classes)
    while True:
        text = "".join(_secrets.choice(alphabet) for _ in range(length))
        if not body.get("requireEachIncludedType") or length < len(classes):
            return text
        if all(any(c in group for c in text) for group in classes):
            return text


def main(argv: list[str] | None = None) -> int:
    """Command line: run an emulator until Ctrl-C or SIGTERM."""
    parser = emulator_parser("secretclient.testing.ncp_emulator", __doc__, port=8200,
                             error_code="INTERNAL_SERVER_ERROR", throttled="429 (errorCode 400)")
    parser.add_argument("--access-key", action="append", default=[], metavar="ACCESS:SECRET",
                        help="an accepted key pair (repeatable)")
    args = parser.parse_args(argv)
    keys: dict[str, str] = {}
    for item in args.access_key:
        access, _, secret = item.partition(":")
        if not access or not secret:
            parser.error("--access-key must be ACCESS:SECRET")
        keys[access] = secret

    def describe(emu: NcpEmulator) -> list[str]:
        lines = [f"NCP Secret Manager emulator listening on {emu.endpoint}", f"access key: {emu.access_key}"]
        if not keys:  # a generated throwaway key: the user cannot know it otherwise
            lines.append(f"secret key: {emu.secret_key}")
        if args.https:
            lines.append(f"CA file: {emu.ca_file}")
        return lines

    serve_until_signalled(
        parser, args, lambda: NcpEmulator(keys or None, https=args.https, host=args.host, port=args.port), describe
    )
    print("NCP emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
