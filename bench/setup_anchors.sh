#!/usr/bin/env bash
# Make bench/.venv-anchors: the official caching clients that bench/bench_client.py compares
# SecretClient with. They live apart from the project's environment on purpose:
# aliyun-secret-manager-client pins an old pyOpenSSL that breaks aliyunsdkcore beside a new
# cryptography. The project itself is not installed there: the servers the anchors talk to
# (moto, our KMS emulator) run in the project's environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-anchors"
python="${PYTHON:-python3}"

if command -v uv >/dev/null 2>&1; then
    uv venv --quiet --python "$python" "$venv"
    uv pip install --quiet --python "$venv/bin/python" \
        aws-secretsmanager-caching boto3 aliyun-secret-manager-client
else
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet aws-secretsmanager-caching boto3 aliyun-secret-manager-client
fi
"$venv/bin/python" - <<'PY'
import aws_secretsmanager_caching, alibaba_cloud_secretsmanager_client  # noqa: F401
from importlib.metadata import version
for dist in ("aws-secretsmanager-caching", "boto3", "aliyun-secret-manager-client", "aliyun-python-sdk-core"):
    print(f"{dist} {version(dist)}")
PY
echo "anchors ready in $venv"
