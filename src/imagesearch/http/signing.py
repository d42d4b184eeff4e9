"""Request signatures as the AliExpress IOP and TOP SDKs compute them.

All parameters except ``sign`` (and file parts) are sorted by key and
concatenated as ``key1value1key2value2...``.  Then, by ``sign_method``:

* ``sha256`` (IOP SDKs): HMAC-SHA256 keyed with the app secret; when the API
  name is a path (contains ``/``), the path is put in front.
* ``md5`` (TOP SDK): MD5 of ``secret + concatenation + secret``.
* ``hmac`` (legacy TOP): HMAC-MD5 keyed with the secret.

The result is upper-case hex; comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

SIGN_METHODS = ("sha256", "md5", "hmac")


def canonical(params: Mapping[str, str], api_path: str | None = None) -> str:
    """The string that is signed."""
    body = "".join(f"{key}{params[key]}" for key in sorted(params) if key != "sign")
    return f"{api_path}{body}" if api_path and "/" in api_path else body


def signature(params: Mapping[str, str], secret: str, sign_method: str, api_path: str | None = None) -> str:
    """The ``sign`` value for ``params``; raises ValueError for an unknown method."""
    text = canonical(params, api_path).encode("utf-8")
    key = secret.encode("utf-8")
    if sign_method == "sha256":
        return hmac.new(key, text, hashlib.sha256).hexdigest().upper()
    if sign_method == "md5":
        return hashlib.md5(key + text + key).hexdigest().upper()
    if sign_method == "hmac":
        return hmac.new(key, text, hashlib.md5).hexdigest().upper()
    raise ValueError(f"unknown sign_method {sign_method!r}")


def verify(params: Mapping[str, str], secret: str, sign_method: str, given: str, api_path: str | None = None) -> bool:
    """Whether ``given`` is the right signature (constant-time); a non-hex ``given`` is simply wrong."""
    expected = signature(params, secret, sign_method, api_path).encode("ascii")
    return hmac.compare_digest(expected, given.strip().upper().encode("utf-8"))
