"""NcpSecretManagerStore: secrets from NAVER Cloud Secret Manager, over plain HTTPS.

NCP keeps each secret as a chain of three values — ``active``, ``pending``, ``previous`` — and
no version history. This store maps the chain onto the store contract:

* ``active`` → CURRENT, ``pending`` → PENDING, ``previous`` → PREVIOUS (``stage_labels`` is
  :data:`~secretclient.model.NCP_STAGES`; roles and NCP's labels are accepted alike);
* a value's VersionId is derived from the value (an HMAC under the secret key, so it changes
  exactly when the value changes and reveals nothing about it);
* a secret is named by its secret id or its name (names are resolved once through the list API).

What NCP cannot do is refused with :class:`NcpUnsupported` (an :class:`InvalidParameter`):
labels other than the three, a VersionId chosen by the caller, binary values, deleting a
secret. The rotation-job API (``/start``, ``/generate-random-secret``, ``/pending``,
``/complete``, ``/fail``) is :meth:`NcpSecretManagerStore.job`.

One attempt per call, as every store here: retries and backoff belong to the client.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from ..errors import InvalidParameter, SecretNotFound, VersionConflict
from ..model import (
    DEFAULT_PASSWORD_POLICY,
    NCP_STAGES,
    PasswordPolicy,
    Secret,
    SecretInfo,
    Stage,
    StageLabels,
    VersionInfo,
)
from ._ncp_http import NcpTransport, sign_v2, string_to_sign
from ._store_base import StoreBase

__all__ = [
    "NCP_ENDPOINTS",
    "NcpJobChain",
    "NcpRotationJob",
    "NcpSecretManagerStore",
    "NcpUnsupported",
    "ncp_endpoint",
    "sign_v2",
    "string_to_sign",
]

#: Region -> endpoint: the public API Gateway host, and the key-isolation hosts of Korea and Japan.
NCP_ENDPOINTS: Mapping[str, str] = {
    "public": "https://secretmanager.apigw.ntruss.com",
    "kr": "https://ocapi-kr.ncloud.com",
    "jp": "https://ocapi-jp.ncloud.com",
}
ENV_ACCESS_KEY = "NCLOUD_ACCESS_KEY"
ENV_SECRET_KEY = "NCLOUD_SECRET_KEY"
ENV_ENDPOINT = "NCLOUD_SECRET_MANAGER_ENDPOINT"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,14}")  # NCP's rule for secret names
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
# Password keys, to pick a default rotationTargets when creating a JSON secret.
_PASSWORD_KEYS = ("cdbPassword", "password", "AccountPassword", "Password", "dbPassword")


class NcpUnsupported(InvalidParameter):
    """NCP Secret Manager has no way to do what was asked (a custom label, a chosen VersionId,
    a binary value, deleting a secret); the message says what to do instead."""


def ncp_endpoint(region: str | None = None) -> str:
    """The endpoint of ``region``: ``None``/``"public"`` (``secretmanager.apigw.ntruss.com``),
    ``"kr"`` or ``"jp"`` (the key-isolation hosts ``ocapi-kr``/``ocapi-jp``)."""
    key = (region or "public").lower()
    if key not in NCP_ENDPOINTS:
        raise InvalidParameter(f"NCP region must be one of {', '.join(NCP_ENDPOINTS)}")
    return NCP_ENDPOINTS[key]


def _ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


@dataclass(frozen=True, slots=True)
class NcpJobChain:
    """What ``/start`` answers: the chain (stage -> value) and the keys a rotation may change."""

    chain: Mapping[str, str] = field(repr=False)
    rotation_targets: tuple[str, ...] = ()


class NcpRotationJob:
    """One rotation job (``secretId`` + ``jobToken``) of NCP's rotation-process API.

    Every call sends the token in the path and in ``SECRET-JOB-TOKEN``.
    """

    def __init__(self, transport: NcpTransport, secret_id: str, job_token: str) -> None:
        if not secret_id or not job_token:
            raise InvalidParameter("a rotation job needs a secret id and a job token")
        self._transport = transport
        self.secret_id = secret_id
        self._token = job_token
        self._base = f"/action/v1/secrets/{quote(secret_id, safe='')}/jobs/{quote(job_token, safe='')}"

    def __repr__(self) -> str:
        return f"NcpRotationJob(secret_id={self.secret_id!r})"  # the token is a credential

    def _call(self, method: str, step: str, body: Any, what: str) -> Any:
        answer = self._transport.request(method, self._base + step, what, body, job_token=self._token)
        return answer.get("data"), answer

    def start(self) -> NcpJobChain:
        """``POST /start``: the job starts (the secret is *rotating*); returns the chain."""
        data, _ = self._call("POST", "/start", {}, "start rotation job")
        return _job_chain(data)

    def generate_random_secret(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        """``POST /generate-random-secret`` (NCP allows at most 32 characters)."""
        if policy.length > 32:
            raise InvalidParameter("NCP generates at most 32 characters: use a PasswordPolicy with length <= 32")
        body = {
            "length": policy.length,
            "excludeCharacters": policy.exclude_characters,
            "excludeLowercase": policy.exclude_lowercase,
            "excludeUppercase": policy.exclude_uppercase,
            "excludeNumbers": policy.exclude_numbers,
            "excludePunctuation": policy.exclude_punctuation,
            "requireEachIncludedType": policy.require_each_included_type,
        }
        data, answer = self._call("POST", "/generate-random-secret", body, "generate random secret")
        # Documented in data.randomString; NCP's sample action reads it at the top level.
        text = data.get("randomString") if isinstance(data, Mapping) else answer.get("randomString")
        if not isinstance(text, str) or not text:
            raise VersionConflict("NCP generate random secret: the answer has no randomString", code="BadAnswer")
        return text

    def add_pending(self) -> str:
        """``POST /pending``: NCP fills the rotation targets with random values; returns the pending value."""
        data, _ = self._call("POST", "/pending", None, "add pending stage")
        return _pending(data)

    def update_pending(self, value: str) -> None:
        """``PUT /pending``: store ``value`` as the pending stage."""
        if not isinstance(value, str) or not value:
            raise InvalidParameter("the pending value must be a non-empty string")
        self._call("PUT", "/pending", {"value": value}, "update pending stage")

    def complete(self) -> None:
        """``POST /complete``: pending becomes active, active becomes previous."""
        self._call("POST", "/complete", {}, "complete rotation job")

    def fail(self) -> None:
        """``POST /fail``: the job ends as failed; the chain is kept."""
        self._call("POST", "/fail", {}, "fail rotation job")


def _job_chain(data: Any) -> NcpJobChain:
    if not isinstance(data, Mapping) or not isinstance(data.get("decryptedSecretChain"), Mapping):
        raise VersionConflict("NCP answer has no decryptedSecretChain", code="BadAnswer")
    chain = {k: v for k, v in data["decryptedSecretChain"].items()
             if k in ("active", "pending", "previous") and isinstance(v, str) and v}
    targets = data.get("rotationTargets") or []
    return NcpJobChain(chain, tuple(str(t) for t in targets if isinstance(t, str)))


def _pending(data: Any) -> str:
    if not isinstance(data, Mapping) or not isinstance(data.get("pending"), str):
        raise VersionConflict("NCP answer has no pending value", code="BadAnswer")
    return str(data["pending"])


class NcpSecretManagerStore(StoreBase):
    """NAVER Cloud Secret Manager as a :class:`~secretclient.stores.base.SecretStore`.

    :param endpoint: ``https://host[:port]``; default ``$NCLOUD_SECRET_MANAGER_ENDPOINT``, else
        the endpoint of ``region`` (:func:`ncp_endpoint`).
    :param access_key: / :param secret_key: default ``$NCLOUD_ACCESS_KEY`` / ``$NCLOUD_SECRET_KEY``.
    :param timeout: seconds for connecting and for each read.
    :param verify: True (system CAs), False, or a CA file.
    :param proxy: ``"host:port"`` of an HTTP proxy, False for none; default: ``HTTPS_PROXY``
        unless ``NO_PROXY`` or a loopback host says otherwise.
    :param clock: seconds since the epoch for the signed requests' timestamps (injected in tests).
    """

    stage_labels: StageLabels = NCP_STAGES

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        timeout: float = 10.0,
        verify: bool | str = True,
        proxy: str | bool | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        env = os.environ if env is None else env
        access_key = access_key or env.get(ENV_ACCESS_KEY)
        secret_key = secret_key or env.get(ENV_SECRET_KEY)
        if not access_key or not secret_key:
            raise InvalidParameter(
                f"NcpSecretManagerStore needs access_key= and secret_key= (or ${ENV_ACCESS_KEY} / ${ENV_SECRET_KEY})"
            )
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidParameter("timeout must be a positive number of seconds")
        endpoint = endpoint or env.get(ENV_ENDPOINT) or ncp_endpoint(region)
        self._transport = NcpTransport(endpoint, access_key, secret_key, timeout=float(timeout), verify=verify,
                                       proxy=_proxy_for(endpoint, proxy), clock=clock)
        self._id_key = hashlib.sha256(b"secretclient-ncp-version\0" + secret_key.encode()).digest()
        self._ids: dict[str, str] = {}
        self._ids_lock = threading.Lock()

    def __repr__(self) -> str:
        t = self._transport
        return f"NcpSecretManagerStore({t.scheme}://{t.host}{':' + str(t.port) if t.port else ''})"

    def close(self) -> None:
        """Nothing to release: every request uses its own connection."""

    def server_time(self) -> datetime | None:
        """NCP's time: the ``Date`` of its last answer plus the monotonic time since (one-second
        resolution); None before any answer."""
        return self._transport.server_clock.now()

    # -- helpers ----------------------------------------------------------------------------

    def list_secrets(self) -> list[SecretInfo]:
        """Every secret (``GET /api/v1/secrets``, all pages), sorted by name: name, type, creation;
        ``arn`` is the id."""
        out: list[SecretInfo] = []
        page = 1
        while page <= 1000:  # bounded: 20 000 secrets
            data = self._data("GET", f"/api/v1/secrets?pageNo={page}", "list secrets")
            for item in data.get("secretList") or []:
                if isinstance(item, Mapping) and item.get("secretName"):
                    out.append(SecretInfo(
                        name=str(item["secretName"]), secret_type=str(item.get("secretType") or "BASIC"),
                        created=_ms(item.get("registerDate")), arn=str(item.get("secretId") or "") or None,
                    ))
            if page >= int(data.get("totalPageNo") or 1):
                break
            page += 1
        return sorted(out, key=lambda info: info.name)  # the contract's order, as the other stores

    def secret_id(self, name: str) -> str:
        """The secret id of ``name`` (a name, resolved once through the list API, or an id)."""
        if not isinstance(name, str) or not name:
            raise InvalidParameter("secret name must be a non-empty string")
        if not _NAME.fullmatch(name):
            return name  # not a valid NCP name: it can only be an id
        with self._ids_lock:
            if name in self._ids:
                return self._ids[name]
        page = 1
        while page <= 1000:  # bounded: 20 000 secrets
            data = self._data("GET", f"/api/v1/secrets?pageNo={page}", "list secrets")
            for item in data.get("secretList") or []:
                if isinstance(item, Mapping) and item.get("secretName") == name and item.get("secretId"):
                    with self._ids_lock:
                        self._ids[name] = str(item["secretId"])
                    return str(item["secretId"])
            if page >= int(data.get("totalPageNo") or 1):
                break
            page += 1
        raise SecretNotFound(f"NCP has no secret named {name!r}", code="NOT_FOUND", http_status=404)

    def _data(self, method: str, path: str, what: str, body: Any = None) -> Any:
        answer = self._transport.request(method, path, what, body)
        data = answer.get("data")
        return data if isinstance(data, Mapping) else {}

    def _path(self, name: str, suffix: str = "") -> str:
        return f"/api/v1/secrets/{quote(self.secret_id(name), safe='')}{suffix}"

    def version_id(self, secret_id: str, value: str) -> str:
        """The VersionId this store gives ``value`` in secret ``secret_id``."""
        mac = hmac.new(self._id_key, f"{secret_id}\0{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def chain(self, name: str) -> NcpJobChain:
        """The secret's chain and rotation targets (``GET /api/v1/secrets/{id}/values``)."""
        return _job_chain(self._data("GET", self._path(name, "/values"), f"get secret value of {name!r}"))

    def _stage(self, stage: str) -> str:
        """NCP's label for a role or label; :class:`NcpUnsupported` for any other label."""
        label = NCP_STAGES.label(stage)
        if label not in (NCP_STAGES.current, NCP_STAGES.pending, NCP_STAGES.previous):
            raise NcpUnsupported(
                f"NCP secrets have only the stages active, pending and previous (or the roles "
                f"{', '.join(s.value for s in Stage)}), not {str(stage)[:64]!r}"
            )
        return label

    def _versions(self, name: str) -> tuple[str, NcpJobChain, dict[str, set[str]]]:
        sid = self.secret_id(name)
        chain = self.chain(name)
        by_id: dict[str, set[str]] = {}
        for label in ("pending", "active", "previous"):
            if label in chain.chain:
                by_id.setdefault(self.version_id(sid, chain.chain[label]), set()).add(label)
        return sid, chain, by_id

    # -- the store contract -------------------------------------------------------------------

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Secret:
        """One stage's value (default ``active``), or the value whose VersionId is ``version_id``."""
        label = self._stage(stage) if stage is not None else None
        sid, chain, by_id = self._versions(name)
        if version_id is not None:
            labels = by_id.get(version_id)
            if labels is None or (label is not None and label not in labels):
                raise SecretNotFound(f"secret {name!r} has no version {version_id!r}"
                                     + (f" in stage {label}" if label else ""), code="NOT_FOUND")
        else:
            label = label or NCP_STAGES.current
            if label not in chain.chain:
                raise SecretNotFound(f"secret {name!r} has no {label} value", code="NOT_FOUND")
            version_id = self.version_id(sid, chain.chain[label])
            labels = by_id[version_id]
        return self._secret(name, chain, version_id, labels)

    def get_stages(self, name: str) -> dict[str, Secret]:
        """Every value of the chain from one request: stage label (``active``, ``pending``,
        ``previous``) -> its version. Stages the chain lacks are absent."""
        _, chain, by_id = self._versions(name)
        out: dict[str, Secret] = {}
        for version_id, labels in by_id.items():
            secret = self._secret(name, chain, version_id, labels)
            out.update(dict.fromkeys(labels, secret))
        return out

    @staticmethod
    def _secret(name: str, chain: NcpJobChain, version_id: str, labels: set[str]) -> Secret:
        value = next(chain.chain[lb] for lb in ("pending", "active", "previous") if lb in labels)
        return Secret(name=name, version_id=version_id, stages=frozenset(labels), data=value, secret_type="BASIC")

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        """The chain's values, newest first (pending, active, previous); NCP keeps no others."""
        _, _, by_id = self._versions(name)
        return [VersionInfo(vid, frozenset(labels)) for vid, labels in by_id.items()]

    def put_secret(
        self, name: str, version_id: str | None, data: str | bytes, *, stages: Sequence[str] | None = None
    ) -> VersionInfo:
        """Store ``data`` as the pending value (``stages=[PENDING]``) or as the new active one
        (no stages: active moves to previous, as NCP's rotation does).

        ``version_id`` must be None (or the VersionId this store derives for ``data``): NCP
        keeps no caller-chosen ids.
        """
        if isinstance(data, (bytes, bytearray)):
            raise NcpUnsupported("NCP secret values are text: decode or base64-encode binary data first")
        if not isinstance(data, str) or not data:
            raise InvalidParameter("secret data must be a non-empty string")
        labels = [self._stage(s) for s in stages] if stages else []
        if labels and labels != [NCP_STAGES.pending]:
            raise NcpUnsupported(
                "NCP can store a new value only as pending (stages=[PENDING]) or as active (no stages)"
            )
        sid = self.secret_id(name)
        derived = self.version_id(sid, data)
        if version_id not in (None, "", derived):
            raise NcpUnsupported("NCP keeps no caller-chosen VersionIds: pass version_id=None and use the "
                                 "VersionId returned")
        if labels:
            self._data("PUT", self._path(name, "/values/pending"), f"put pending value of {name!r}", {"value": data})
            return VersionInfo(derived, frozenset({NCP_STAGES.pending}))
        chain = self.chain(name).chain
        if chain.get("active") == data:
            return VersionInfo(derived, frozenset({NCP_STAGES.current}))
        self._data("PUT", self._path(name, "/values"), f"put active value of {name!r}",
                   {"previous": chain["active"], "active": data})
        return VersionInfo(derived, frozenset({NCP_STAGES.current}))

    def update_stage(
        self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None
    ) -> None:
        """Move a stage's value within the chain (see the contract in :mod:`.base`).

        Moving ``active`` to the pending value is NCP's rotation (pending → active → previous),
        done with one Update Secret Value request; ``remove_from`` is checked first (a
        compare-and-set against a fresh read, not atomic on NCP's side).
        """
        label = self._stage(stage)
        if move_to is None and remove_from is None:
            raise InvalidParameter("give move_to and/or remove_from")
        if move_to is None and label != NCP_STAGES.pending:
            raise InvalidParameter(f"the {label} stage can be moved but not removed")
        sid, chain, by_id = self._versions(name)
        values = {self.version_id(sid, v): v for v in chain.chain.values()}
        if remove_from is not None and label not in by_id.get(remove_from, set()):
            raise VersionConflict(f"stage {label} of {name!r} is not on version {remove_from!r}",
                                  code="INVALID_STATUS")
        if move_to is None:
            self._data("PUT", self._path(name, "/values"), f"remove pending of {name!r}", {"pending": ""})
            return
        if move_to not in values:
            raise SecretNotFound(f"secret {name!r} has no version {move_to!r}", code="NOT_FOUND")
        if label in by_id[move_to]:
            return  # already there: a retried move changes nothing
        value = values[move_to]
        if label == NCP_STAGES.current:
            body = {"previous": chain.chain["active"], "active": value}
            if chain.chain.get("pending") == value:
                body["pending"] = ""  # NCP's complete: the promoted pending leaves the chain
        else:
            body = {label: value}
        self._data("PUT", self._path(name, "/values"), f"move {label} of {name!r}", body)

    def describe(self, name: str) -> SecretInfo:
        """``GET /api/v1/secrets/{id}``; ``arn`` is the secret id."""
        data = self._data("GET", self._path(name), f"get secret detail of {name!r}")
        auto = data.get("autoRotationYN") == "Y"
        days = data.get("autoRotationPeriod")
        return SecretInfo(
            name=str(data.get("secretName") or name),
            secret_type=str(data.get("secretType") or "BASIC"),
            description=str(data.get("memo") or ""),
            created=_ms(data.get("registerDate")),
            updated=_ms(data.get("updateDate")),
            automatic_rotation=auto,
            rotation_interval=timedelta(days=days) if auto and isinstance(days, int) and days > 0 else None,
            last_rotation=_ms(data.get("lastRotationDate")),
            next_rotation=_ms(data.get("nextRotationDate")),
            arn=str(data.get("secretId") or "") or None,
        )

    def random_password(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        """Generated locally (``secrets``): NCP's generator exists only inside a rotation job
        (:meth:`NcpRotationJob.generate_random_secret`)."""
        return policy.generate()

    def create_secret(
        self,
        name: str,
        data: str | bytes,
        *,
        version_id: str | None = None,
        secret_type: str = "BASIC",
        description: str = "",
        extended_config: Mapping[str, Any] | None = None,
        rotation_interval: timedelta | None = None,
        rotation_targets: Sequence[str] | None = None,
    ) -> SecretInfo:
        """Create a secret whose active value is ``data``.

        ``rotation_targets`` default to the password key of a JSON value (``cdbPassword``,
        ``password``, …). ``rotation_interval`` (whole days, 1 to 730) turns on NCP's automatic
        rotation. ``version_id`` and ``extended_config`` have no NCP counterpart and must be
        left out; ``secret_type`` must be ``BASIC`` (or ``Generic``, taken as ``BASIC``).
        """
        if isinstance(data, (bytes, bytearray)):
            raise NcpUnsupported("NCP secret values are text: decode or base64-encode binary data first")
        if version_id:
            raise NcpUnsupported("NCP keeps no caller-chosen VersionIds: leave version_id out")
        if extended_config:
            raise NcpUnsupported("NCP secrets have no extended config: keep such fields in the value")
        if secret_type not in ("BASIC", "Generic"):
            raise NcpUnsupported("NCP has only BASIC secrets")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidParameter("NCP secret names are 3 to 15 letters, digits, '-' or '_', starting with a letter")
        targets = list(rotation_targets) if rotation_targets is not None else _default_targets(data)
        body: dict[str, Any] = {
            "secretName": name, "memo": description,
            "secretValue": {"value": data, "rotationTargets": targets},
            "secretType": "BASIC", "autoRotationYN": "N", "protectionKeyType": "DEFAULT",
        }
        if rotation_interval is not None:
            days = rotation_interval / timedelta(days=1)
            if days != int(days) or not 1 <= days <= 730:
                raise InvalidParameter("NCP rotates every 1 to 730 whole days: rotation_interval must be that")
            body.update(autoRotationYN="Y", autoRotationPeriod=int(days))
        self._data("POST", "/api/v1/secrets", f"create secret {name!r}", body)
        return self.describe(name)

    def delete_secret(self, name: str, *, recovery_window_days: int | None = 30, force: bool = False) -> None:
        """Refused: deleting an NCP secret is a scheduled, console-confirmed operation."""
        raise NcpUnsupported("this store does not delete NCP secrets: schedule the deletion in the NCP console")

    # -- rotation jobs ------------------------------------------------------------------------

    def job(self, secret_id: str, job_token: str) -> NcpRotationJob:
        """The rotation job ``job_token`` of secret ``secret_id`` (what a Cloud Functions action gets)."""
        return NcpRotationJob(self._transport, self.secret_id(secret_id), job_token)


def _default_targets(data: str) -> list[str]:
    try:
        value = json.loads(data)
    except ValueError:
        return []
    if isinstance(value, dict):
        return [k for k in _PASSWORD_KEYS if k in value][:1]
    return []


def _proxy_for(endpoint: str, proxy: str | bool | None) -> str | None:
    if proxy is False:
        return None
    if isinstance(proxy, str):
        return proxy.split("://", 1)[-1].rstrip("/")
    url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    host = url.hostname or ""
    if host in _LOOPBACK or urllib.request.proxy_bypass(host):
        return None
    found = urllib.request.getproxies_environment().get(url.scheme or "https")
    return found.split("://", 1)[-1].rstrip("/") if found else None
