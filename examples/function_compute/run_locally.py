"""Run flow.yaml as CloudFlow would, against a local KMS emulator and a throwaway MariaDB.

    python examples/function_compute/run_locally.py [--rotations 2]

Nothing here is Function Compute: it is what the cloud does for you, played locally so the
deployment can be checked end to end before it is uploaded. For each rotation it reads the
steps of flow.yaml, builds each step's event from its ``inputMappings`` (``$input.payload.X``
from the schedule's payload, ``$local.VersionId`` from the previous step's output, literals as
they are) and calls ``index.handler(event_bytes, context)`` with an FC-like context carrying
STS credentials, which the emulator checks. The secrets are created as in the guide's
Step 2: a privileged account's secret and the rotated account's secret naming it in
``MasterSecret``. Passwords are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # index.py, as FC loads it from the code directory

import index

from secretclient.testing import KmsEmulator, MariaDB, MariaDBNotInstalled

FLOW = HERE / "flow.yaml"
SECRET = "app-db"
MASTER_SECRET = "app-db-master"


# -- the part of YAML the flow uses: block mappings, block sequences, plain scalars --------

def parse_yaml(text: str) -> Any:
    """Parse the YAML subset flow definitions are written in (no flow style, no anchors)."""
    lines = []
    for raw in text.splitlines():
        content = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if content.strip():
            lines.append([len(content) - len(content.lstrip()), content.strip()])
    value, end = _block(lines, 0, lines[0][0] if lines else 0)
    if end != len(lines):
        raise ValueError(f"unexpected indentation in line {lines[end][1]!r}")
    return value


def _block(lines: list[list[Any]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            lines[i] = [indent + 2, lines[i][1][2:].lstrip()]  # "- k: v" opens a mapping item
            item, i = _block(lines, i, indent + 2)
            items.append(item)
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, sep, rest = lines[i][1].partition(":")
        if not sep:
            raise ValueError(f"expected 'key: value', got {lines[i][1]!r}")
        rest = rest.strip()
        i += 1
        if rest:
            mapping[key.strip()] = rest.strip("'\"")
        elif i < len(lines) and (lines[i][0] > indent or lines[i][1].startswith("- ")):
            mapping[key.strip()], i = _block(lines, i, lines[i][0])
        else:
            mapping[key.strip()] = None
    return mapping, i


# -- CloudFlow, as far as this flow needs it -------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """What FC puts in ``context.credentials``: the function role's STS token."""

    accessKeyId: str
    accessKeySecret: str
    securityToken: str


@dataclass(frozen=True)
class Context:
    requestId: str
    credentials: Credentials


def resolve(source: str, payload: dict[str, Any], local: dict[str, Any]) -> Any:
    if source.startswith("$input.payload."):
        return payload[source[len("$input.payload."):]]
    if source.startswith("$local."):
        return local[source[len("$local."):]]
    return source


def run_flow(flow: dict[str, Any], payload: dict[str, Any], invoke: Callable[[bytes, Context], dict[str, Any]],
             credentials: Credentials, report: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the flow's task steps in order; each step's output joins ``$local``. Returns ``$local``."""
    local: dict[str, Any] = {}
    for step in flow["steps"]:
        if step.get("type") != "task":
            raise ValueError(f"this runner only knows task steps, not {step.get('type')!r}")
        event = {m["target"]: resolve(m["source"], payload, local) for m in step.get("inputMappings") or []}
        output = invoke(json.dumps(event).encode(), Context(str(uuid.uuid4()), credentials))
        report(f"  {step['name']}: event {json.dumps(event)} -> {json.dumps(output)}")
        local.update(output)
    return local


# -- the set-up of the guide's Step 2, locally ------------------------------------------------

def provision(db: MariaDB, store: Any) -> None:
    database = db.create_database("app")
    app_pw, master_pw = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    db.create_user("appuser", app_pw, grants=(f"SELECT, INSERT ON {db.quote_ident(database)}.*",))
    # PROCESS: the rotation looks for live sessions of the account it is about to reset.
    db.create_user("privileged", master_pw, grants=("CREATE USER, PROCESS ON *.*", "SELECT ON mysql.*"))
    db.execute(f"GRANT SELECT, INSERT ON {db.quote_ident(database)}.* TO %s@%s WITH GRANT OPTION", ("privileged", "%"))
    store.create_secret(MASTER_SECRET, json.dumps({
        "Endpoint": db.host, "Port": db.port, "AccountName": "privileged", "AccountPassword": master_pw, "SSL": False,
    }), version_id=uuid.uuid4().hex)
    store.create_secret(SECRET, json.dumps({
        "Endpoint": db.host, "Port": db.port, "AccountName": "appuser", "AccountPassword": app_pw,
        "DBName": database, "MasterSecret": MASTER_SECRET, "SSL": False,
    }), version_id=uuid.uuid4().hex)


def configure_function(emulator: KmsEmulator) -> None:
    """The FC function's environment variables, pointed at the emulator instead of kms-vpc."""
    os.environ["ROTATION_STORE"] = "kms"
    os.environ["ROTATION_KMS_ENDPOINT"] = emulator.endpoint
    os.environ["ROTATION_GRACE_SECONDS"] = "0"  # two rotations back to back: no grace (the default is 1 h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rotations", type=int, default=2, help="flow executions to run (default 2)")
    args = parser.parse_args(argv)

    role = Credentials("STS." + secrets.token_hex(8), secrets.token_urlsafe(24), secrets.token_urlsafe(32))
    try:
        db = MariaDB(audit=False).start()
    except MariaDBNotInstalled as exc:
        print(f"run_locally: {exc}", file=sys.stderr)
        return 1
    emulator = KmsEmulator(access_keys={role.accessKeyId: role.accessKeySecret},
                           security_tokens={role.accessKeyId: role.securityToken})
    with db, emulator:
        store = emulator.backing_store
        provision(db, store)
        configure_function(emulator)
        flow = parse_yaml(FLOW.read_text())
        payload = {"SecretName": SECRET, "RegionId": emulator.region}
        print(f"MariaDB on {db.host}:{db.port}; KMS emulator at {emulator.endpoint} (STS credentials checked)")
        for n in range(1, args.rotations + 1):
            print(f"execution {n} of {FLOW.name} with payload {json.dumps(payload)}")
            local = run_flow(flow, payload, index.handler, role)
            current = store.get_secret(SECRET)
            account = current.db_credentials().account_name
            if current.version_id != local["VersionId"]:
                print(f"FAILED: ACSCurrent is {current.version_id}, the flow ended with {local['VersionId']}")
                return 1
            print(f"  ACSCurrent is version {current.version_id} for account {account}")
        print("versions now:")
        for info in store.list_versions(SECRET):
            print(f"  {info.version_id}: {', '.join(sorted(info.stages)) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
