"""The IOP/TOP gateway's response envelopes.

A gateway error (credentials, signature, limits...) comes back with HTTP 200
in *both* shapes at once, since the two SDK families read different keys: the
IOP SDKs read top-level ``type``, ``code``, ``message`` and ``request_id``; the
TOP SDKs raise on ``error_response`` (with ``msg``, ``sub_code``, ``sub_msg``).
Neither is disturbed by the other's keys.  A success carries the method's
``<method>_response`` and, for the IOP SDKs, a top-level ``code`` "0" and
``request_id``.  Business failures of a method come back inside its own
``<method>_response`` as ``result.ret = false``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ErrorCode, RequestError


def error_body(error: RequestError, request_id: str) -> dict[str, Any]:
    """The gateway's error document for ``error``, readable by both SDK families."""
    error_type = "ISP" if error.code == ErrorCode.InternalError else "ISV"
    return {
        "type": error_type,
        "code": error.code.value,
        "message": error.message,
        "request_id": request_id,
        "error_response": {
            "type": error_type,
            "code": error.code.value,
            "msg": error.message,
            "sub_code": error.sub_code,
            "sub_msg": "",
            "request_id": request_id,
        },
    }


def response_key(method: str) -> str:
    """``aliexpress.ds.image.searchV2`` -> ``aliexpress_ds_image_searchV2_response``."""
    return method.replace(".", "_").replace("/", "_").strip("_") + "_response"
