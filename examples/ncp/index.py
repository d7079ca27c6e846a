"""The Cloud Functions action NCP's Secret Manager trigger calls: our engine under NCP's job protocol.

Deploy this file with the ``secretclient`` package as a Python action whose entry point is
``main``. Set ``accessKey`` and ``secretKey`` as encrypted default parameters of the action (as
NCP's guide says); the trigger adds ``secretId`` and ``jobToken`` to every call.
"""

from rotation.ncp import main

__all__ = ["main"]
