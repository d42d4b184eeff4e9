"""Fetching a query image by URL for ``/v1/search``, without becoming a proxy into the network.

The host is resolved first and refused if any address is not globally
routable (``ipaddress``'s ``is_global``: private, loopback, link-local, shared
100.64.0.0/10, reserved...), multicast, or a 6to4 wrapper of such an address
(unless explicitly allowed);
redirects are followed by hand, each hop checked the same way; the body is
capped while streaming and the whole fetch has a timeout.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

import httpx

from ..errors import ErrorCode, RequestError
from ..vision.decode import check_size

MAX_REDIRECTS = 3


def _is_6to4_of_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A 6to4 (2002::/16) address wrapping an IPv4 address that is not global."""
    embedded = address.sixtofour if isinstance(address, ipaddress.IPv6Address) else None
    return embedded is not None and not embedded.is_global


def _check_host(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestError(ErrorCode.InvalidImageUrl, "image_url")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise RequestError(ErrorCode.ImageUrlUnreachable, "image_url", reason="its host name cannot be resolved") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast or _is_6to4_of_private(address):
            raise RequestError(ErrorCode.ImageUrlForbidden, "image_url")


#: No single read may wait longer than this, whatever the whole fetch's time limit.
READ_TIMEOUT = 5.0


def fetch_image(url: str, max_bytes: int, timeout: float, allow_private: bool) -> bytes:
    """The bytes at ``url``, or a :class:`RequestError` saying why not.

    ``timeout`` bounds the *whole* fetch (redirects and every chunk): a server
    trickling a byte at a time cannot hold a worker for longer.  Proxy
    settings of the environment are ignored: the address checked is the one used.
    """
    deadline = time.monotonic() + timeout
    too_slow = RequestError(ErrorCode.ImageUrlUnreachable, "image_url", reason=f"it took longer than {timeout:g} s")
    try:
        with httpx.Client(timeout=httpx.Timeout(min(timeout, READ_TIMEOUT)), follow_redirects=False, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                _check_host(url, allow_private)
                with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise RequestError(ErrorCode.ImageUrlUnreachable, "image_url", reason=f"it answered HTTP {response.status_code}")
                    received = bytearray()
                    for chunk in response.iter_bytes():
                        received.extend(chunk)
                        check_size(len(received), max_bytes, "image_url")
                        if time.monotonic() > deadline:
                            raise too_slow
                    return bytes(received)
                if time.monotonic() > deadline:
                    raise too_slow
    except httpx.HTTPError as exc:
        raise RequestError(ErrorCode.ImageUrlUnreachable, "image_url", reason=f"the connection failed ({type(exc).__name__})") from None
    raise RequestError(ErrorCode.ImageUrlUnreachable, "image_url", reason=f"it redirected more than {MAX_REDIRECTS} times")
