"""Function Compute entry point for the seed's CloudFlow rotation flow (flow.yaml).

Set the function's handler to ``index.handler``. The flow calls it four times per rotation
(Step new, set, test, end) with ``{"SecretName", "RegionId", "Step", "VersionId"?}`` and passes
the returned ``{"VersionId": ...}`` along; :func:`rotation.fc.handler` runs our engine for each
step (resumable, locked, fenced). It is configured by environment variables, listed in
README.md and in :mod:`rotation.fc`.
"""

from rotation.fc import handler

__all__ = ["handler"]
