"""The IOP/TOP gateway's error vocabulary and response envelopes.

Gateway errors come back with HTTP 200 as ``{"error_response": {...}}``, as the
SDKs expect (the TOP SDK raises ``TopException`` from it); business failures
of a method come back inside its own ``<method>_response`` as
``result.ret = false`` with ``code`` and ``messages``.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """A request refused by the gateway itself (credentials, signature, limits...)."""

    def __init__(self, code: str, msg: str, error_type: str = "ISV", sub_code: str = "", sub_msg: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.error_type = error_type
        self.sub_code = sub_code
        self.sub_msg = sub_msg

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "error_response": {
                "type": self.error_type,
                "code": self.code,
                "msg": self.msg,
                "sub_code": self.sub_code,
                "sub_msg": self.sub_msg,
                "request_id": request_id,
            }
        }


def response_key(method: str) -> str:
    """``aliexpress.ds.image.searchV2`` -> ``aliexpress_ds_image_searchV2_response``."""
    return method.replace(".", "_").replace("/", "_").strip("_") + "_response"


def missing(name: str) -> GatewayError:
    return GatewayError("MissingParameter", f"The request is missing the required parameter {name}", sub_code=f"missing-{name}")
