"""The rotation function's code: set the Lambda handler to ``lambda_function.lambda_handler``
(the name AWS's own templates use), or directly to ``rotation.aws_lambda.lambda_handler``.

Configuration comes from the function's environment (see docs/rotation.md): for example
``EXCLUDE_CHARACTERS``, ``SECRETS_MANAGER_ENDPOINT`` and ``ROTATION_GRACE_SECONDS``.
"""

from rotation.aws_lambda import lambda_handler

__all__ = ["lambda_handler"]
