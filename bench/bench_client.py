"""SecretClient against the official caching clients, every row measured in one run.

    bash bench/setup_anchors.sh        # once: bench/.venv-anchors with the anchor packages
    python bench/bench_client.py       # prints one table

The anchors run in bench/.venv-anchors (they cannot share the project's environment), each in
a subprocess that re-runs this file with ``--anchor``; the servers they talk to run here:
moto's ThreadedMotoServer for aws-secretsmanager-caching (boto3), our KmsEmulator for
aliyun-secret-manager-client (its real aliyunsdkcore path, over HTTP on 127.0.0.1).
SecretClient reads the same KmsEmulator through AliyunKmsStore, and the same moto server
through AwsSecretsManagerStore (the AWS column: same server, same run as the AWS anchor).

Only the standard library is imported at module level: the anchor side must run without
the project installed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ANCHOR_PYTHON = HERE / ".venv-anchors" / "bin" / "python"
THREADS = 64
SECRET_VALUE = '{"AccountName": "app", "AccountPassword": "bench-password-0123456789"}'


def p50_per_op(fn: Callable[[str], Any], arg: str, *, batches: int = 201, batch_seconds: float = 0.002) -> float:
    """Median over batches of the mean time per call, in seconds (one call is too short to
    time alone: the timer costs more than our hot path)."""
    for _ in range(1000):  # warm up
        fn(arg)
    n = 1
    while True:  # calibrate: a batch lasts about batch_seconds
        t0 = time.perf_counter()
        for _ in range(n):
            fn(arg)
        if time.perf_counter() - t0 >= batch_seconds:
            break
        n *= 2
    samples = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(arg)
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def cold_burst(fn: Callable[[str], Any], name: str, threads: int = THREADS) -> None:
    """``threads`` callers released together on one cold key."""
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            fn(name)
        except BaseException as exc:  # report, do not hide
            failures.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise RuntimeError(f"{len(failures)} cold callers failed: {failures[0]!r}")


# -- anchor side: runs inside bench/.venv-anchors ----------------------------------------


def anchor_main(args: argparse.Namespace) -> None:
    calls: Counter[str] = Counter()
    if args.anchor == "aws":
        import boto3
        from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

        sdk = boto3.client(
            "secretsmanager",
            endpoint_url=args.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )

        def count(event_name: str, **_: Any) -> None:
            calls[event_name.rsplit(".", 1)[-1]] += 1

        sdk.meta.events.register("before-call.secrets-manager.*", count)
        refresh_every = 1 if args.mode == "refresh" else 3600  # seconds, their default: 3600
        cache = SecretCache(SecretCacheConfig(secret_refresh_interval=refresh_every), sdk)
        get = cache.get_secret_string
        close: Callable[[], None] = lambda: None
    else:
        from alibaba_cloud_secretsmanager_client.model.region_info import RegionInfo
        from alibaba_cloud_secretsmanager_client.secret_manager_cache_client_builder import (
            SecretManagerCacheClientBuilder,
        )
        from alibaba_cloud_secretsmanager_client.service.default_secret_manager_client_builder import (
            DefaultSecretManagerClientBuilder,
        )

        # RegionInfo's endpoint goes to aliyunsdkcore's region_provider.add_endpoint("kms", ...):
        # the official client then talks to our emulator through its normal SDK path.
        inner = (
            DefaultSecretManagerClientBuilder.standard()
            .with_access_key(args.access_key_id, args.access_key_secret)
            .add_region_info(RegionInfo(args.region, endpoint=args.endpoint))
            .build()
        )
        client = SecretManagerCacheClientBuilder.new_cache_client_builder(inner).build()
        get = client.get_secret_value
        close = client.close
    out: dict[str, Any] = {}
    try:
        if args.mode == "warm":
            if get(args.name) != SECRET_VALUE:
                raise RuntimeError("anchor read a wrong value")
            out["p50"] = p50_per_op(get, args.name)
        elif args.mode == "refresh":  # AWS only: the calls of one refresh, then of one after a rotation
            get(args.name)
            for key, change in (("unchanged", None), ("rotated", SECRET_VALUE + " ")):
                if change is not None:
                    sdk.put_secret_value(SecretId=args.name, SecretString=change)
                time.sleep(1.1)  # their next refresh is due within the interval
                calls.clear()
                if get(args.name) != (change or SECRET_VALUE):
                    raise RuntimeError("anchor read a wrong value after a refresh")
                out[key] = dict(calls)
        else:
            cold_burst(get, args.name)
            out["calls"] = dict(calls)  # client-side count (AWS); the emulator counts Alibaba's
    finally:
        close()
    print(json.dumps(out))


def run_anchor(kind: str, mode: str, name: str, **endpoint: str) -> dict[str, Any]:
    cmd = [str(ANCHOR_PYTHON), str(Path(__file__).resolve()), "--anchor", kind, "--mode", mode, "--name", name]
    for key, value in endpoint.items():
        cmd += [f"--{key.replace('_', '-')}", value]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}  # SDKs ignore NO_PROXY
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"anchor {kind} {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- our side ------------------------------------------------------------------------------


def measure(outage_seconds: float, n_secrets: int) -> list[tuple[str, ...]]:
    import logging
    import tracemalloc

    from moto.server import ThreadedMotoServer
    import boto3

    from secretclient.client import SecretClient
    from secretclient.testing import ManualExecutor
    from secretclient.stores.aws import AwsSecretsManagerStore
    from secretclient.stores.embedded import EmbeddedStore
    from secretclient.testing.kms_emulator import KmsEmulator

    logging.disable(logging.WARNING)  # the outage row logs a warning per failed call
    have_anchors = ANCHOR_PYTHON.exists()
    rows: list[tuple[str, ...]] = []

    def ratio(theirs: float, ours: float) -> str:
        return f"{theirs * 1e6:.2f} ({theirs / ours:.0f}x ours)"

    def calls(c: Counter[str] | dict[str, int]) -> str:
        return " + ".join(f"{v} {k}" for k, v in sorted(c.items())) or "0"

    with KmsEmulator() as emu:
        emu.backing_store.create_secret("warm", SECRET_VALUE, version_id="v1")
        for name in ("cold-ours", "cold-aliyun"):
            emu.backing_store.create_secret(name, SECRET_VALUE, version_id="v1")
        kms = {
            "endpoint": emu.endpoint,
            "region": emu.region,
            "access_key_id": emu.access_key_id,
            "access_key_secret": emu.access_key_secret,
        }
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        try:
            host, port = moto.get_host_and_port()
            aws_endpoint = f"http://{host}:{port}"
            sm = boto3.client(
                "secretsmanager", endpoint_url=aws_endpoint, region_name="us-east-1",
                aws_access_key_id="bench", aws_secret_access_key="bench",
            )
            for name in ("warm", "cold-aws", "cold-ours", "refresh-aws", "refresh-ours"):
                sm.create_secret(Name=name, SecretString=SECRET_VALUE)
            aws_calls: Counter[str] = Counter()

            def aws_store() -> AwsSecretsManagerStore:
                store = AwsSecretsManagerStore(region="us-east-1", endpoint_url=aws_endpoint,
                                               access_key_id="bench", secret_access_key="bench")
                # botocore's documented event hook, as in the anchor: every API call counted.
                store.boto_client.meta.events.register(
                    "before-call.secrets-manager.*", lambda event_name, **_: aws_calls.update([event_name.rsplit(".", 1)[-1]]))
                return store

            # Warm get.
            with SecretClient(emu.store()) as client:
                client.get("warm")
                ours_get = p50_per_op(client.get, "warm")
                ours_text = p50_per_op(client.get_text, "warm")
            with SecretClient(aws_store()) as client:
                client.get("warm")
                aws_get = p50_per_op(client.get, "warm")
                aws_text = p50_per_op(client.get_text, "warm")
            aws = run_anchor("aws", "warm", "warm", endpoint=aws_endpoint) if have_anchors else None
            ali = run_anchor("aliyun", "warm", "warm", **kms) if have_anchors else None
            rows.append((
                "warm get p50, us/op",
                f"{ours_get * 1e6:.3f}",
                f"{aws_get * 1e6:.3f}",
                ratio(aws["p50"], aws_get) if aws else "n/a",
                ratio(ali["p50"], ours_get) if ali else "n/a",
            ))
            rows.append(("warm get_text p50, us/op (value as str, like the anchors)", f"{ours_text * 1e6:.3f}",
                         f"{aws_text * 1e6:.3f}",
                         ratio(aws["p50"], aws_text) if aws else "n/a",
                         ratio(ali["p50"], ours_text) if ali else "n/a"))

            # Cold key, 64 threads at once.
            executor = ManualExecutor()  # hold background work back to count it apart
            with SecretClient(emu.store(), executor=executor) as client:
                before = emu.calls
                cold_burst(client.get, "cold-ours")
                waited = emu.calls - before
                executor.run_pending()
                total = emu.calls - before
            executor = ManualExecutor()
            with SecretClient(aws_store(), executor=executor) as client:
                aws_calls.clear()
                cold_burst(client.get, "cold-ours")
                aws_waited = Counter(aws_calls)
                executor.run_pending()
                aws_total = Counter(aws_calls)
            aws_cold = run_anchor("aws", "cold", "cold-aws", endpoint=aws_endpoint) if have_anchors else None
            before = emu.calls
            if have_anchors:
                run_anchor("aliyun", "cold", "cold-aliyun", **kms)
            ali_cold = emu.calls - before

            rows.append((
                f"cold key, {THREADS} threads: store calls",
                f"{calls(waited)} (+ {calls(total - waited)} in background)",
                f"{calls(aws_waited)} (+ {calls(aws_total - aws_waited)} in background)",
                calls(aws_cold["calls"]) if aws_cold else "n/a",
                calls(ali_cold) if have_anchors else "n/a",
            ))

            # One refresh (TTL over), without and with a new version: store calls it makes.
            with SecretClient(aws_store(), executor=ManualExecutor()) as client:
                client.get("refresh-ours")
                ours_refresh = {}
                for key, change in (("unchanged", None), ("rotated", SECRET_VALUE + " ")):
                    if change is not None:
                        sm.put_secret_value(SecretId="refresh-ours", SecretString=change)
                    aws_calls.clear()
                    client.refresh("refresh-ours")
                    if client.get_text("refresh-ours") != (change or SECRET_VALUE):
                        raise RuntimeError("SecretClient read a wrong value after a refresh")
                    ours_refresh[key] = Counter(aws_calls)
            aws_refresh = run_anchor("aws", "refresh", "refresh-aws", endpoint=aws_endpoint) if have_anchors else None
            for key, label in (("unchanged", "same version"), ("rotated", "after a rotation")):
                rows.append((
                    f"one refresh, {label}: store calls", "not measured", calls(ours_refresh[key]),
                    calls(aws_refresh[key]) if aws_refresh else "n/a", "not measured",
                ))

            # A store outage for the whole run, reads on a key whose TTL runs out at once.
            emu.backing_store.create_secret("outage", SECRET_VALUE, version_id="v1")
            with SecretClient(emu.store(), ttl=0.2, max_stale=3600, rotation_aware=False) as client:
                client.get("outage")
                before = emu.calls["GetSecretValue"]
                reads, errors = Counter(), Counter()
                stop = time.monotonic() + outage_seconds

                def hammer(i: int) -> None:
                    while time.monotonic() < stop:
                        try:
                            client.get("outage")
                            reads[i] += 1
                        except Exception:
                            errors[i] += 1

                with emu.faults.outage():
                    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
                    for w in workers:
                        w.start()
                    for w in workers:
                        w.join()
                outage_calls = emu.calls["GetSecretValue"] - before
                stats = client.stats()
            rows.append((
                f"store outage {outage_seconds:.0f} s, 8 threads: errors to callers / reads",
                f"{sum(errors.values())} / {sum(reads.values()):,}", "not measured", "not measured", "not measured",
            ))
            rows.append((
                "  store calls during the outage (backoff 1 s doubling, cap 60 s, full jitter)",
                f"{outage_calls} (stale serves {stats.stale_serves:,})", "not measured", "not measured", "not measured",
            ))
        finally:
            moto.stop()

    # Memory per cached secret.
    store = EmbeddedStore()
    names = [f"app/secret-{i:05d}" for i in range(n_secrets)]
    for name in names:
        store.create_secret(name, SECRET_VALUE, version_id="v1")
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    client = SecretClient(store, max_size=n_secrets, rotation_aware=False)
    for name in names:
        client.get(name)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    client.close()
    rows.append((
        f"memory per cached secret ({n_secrets:,} secrets, tracemalloc)",
        f"{used / n_secrets:,.0f} B (value {len(SECRET_VALUE)} chars, Secret object included)",
        "not measured", "not measured", "not measured",
    ))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", choices=("aws", "aliyun"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("warm", "cold", "refresh"), help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    for opt in ("--endpoint", "--region", "--access-key-id", "--access-key-secret"):
        parser.add_argument(opt, help=argparse.SUPPRESS)
    parser.add_argument("--outage-seconds", type=float, default=5.0)
    parser.add_argument("--secrets", type=int, default=10_000)
    args = parser.parse_args()
    if args.anchor:
        anchor_main(args)
        return
    sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
    if not ANCHOR_PYTHON.exists():
        print("bench/.venv-anchors missing: run bash bench/setup_anchors.sh for the anchor columns\n")
    rows = measure(args.outage_seconds, args.secrets)
    header = ("measurement", "SecretClient (KMS emulator)", "SecretClient (AWS store, moto)",
              "aws-secretsmanager-caching (moto)", "aliyun-secret-manager-client (KMS emulator)")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; all rows from this run\n")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    print(f"\nthis host's floor, same loop: an empty function with get()'s signature "
          f"{_empty_call() * 1e6:.3f} us/op, a one-argument function that reads time.monotonic() "
          f"{p50_per_op(_clock, '') * 1e6:.3f} us/op (a warm get is a call, a dict lookup, a clock read, "
          "a comparison and a count)")


def _empty_call() -> float:
    def get(name: str, stage: str = "CURRENT", version_id: str | None = None) -> None:
        return None

    return p50_per_op(get, "warm")


def _clock(_: str) -> float:
    return time.monotonic()


if __name__ == "__main__":
    main()
