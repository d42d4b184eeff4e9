"""The one way the service downloads an image by URL: queries' ``image_url``, catalog imports and the admin API.

It must not become a proxy into the network it runs in (SSRF), so:

- every connection is opened by :class:`CheckedBackend`, which resolves the host
  itself, refuses it if any address is not globally routable (``is_global``:
  private, loopback, link-local, shared 100.64.0.0/10, reserved...), multicast or
  a 6to4 wrapper of such an address, and then connects to *the address it
  checked*: no second resolution, so DNS rebinding cannot swap the address
  between the check and the connection.  Redirects open new connections, so
  every hop is checked the same way;
- proxy variables of the environment are ignored (a configured ``proxy`` is
  used instead, and then the target's name is checked before each request: the
  proxy resolves it again, so a proxy should enforce its own policy too);
- the body is capped while streaming and the whole fetch (redirects and every
  chunk) has one deadline, so a server trickling a byte at a time cannot hold a
  worker;
- errors say what went wrong without the addresses or ports behind a name.

Private addresses are allowed only by an explicit setting, separately for
queries and for imports (see ``config.py``).
"""

from __future__ import annotations

import functools
import ipaddress
import random
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from .config import Settings
from .errors import ErrorCode, RequestError
from .vision.decode import check_size

MAX_REDIRECTS = 3
#: No single read may wait longer than this, whatever the whole fetch's time limit.
READ_TIMEOUT = 5.0
#: HTTP statuses worth another attempt (when retries are allowed).
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one kind of fetch (a query's ``image_url``, or a catalog import's images)."""

    max_bytes: int
    #: Seconds for the whole fetch of one URL (all redirects and reads, not each read).
    timeout: float
    allow_private: bool = False
    #: Further attempts after a connection failure or a transient HTTP status, with backoff.
    retries: int = 0
    #: An explicit proxy URL ("" for none); the environment's proxy variables are never used.
    proxy: str = ""

    @classmethod
    def for_queries(cls, settings: Settings) -> FetchPolicy:
        """A query's ``image_url``: one attempt, within the service's fetch time limit."""
        return cls(settings.max_image_bytes, settings.fetch_timeout, settings.allow_private_image_urls, 0, settings.fetch_proxy)

    @classmethod
    def for_imports(cls, settings: Settings) -> FetchPolicy:
        """Catalog images (imports, reindex, the admin API): retried, with their own private-address setting."""
        return cls(settings.max_image_bytes, settings.fetch_timeout, settings.allow_private_import_urls,
                   settings.fetch_retries, settings.fetch_proxy)


class AddressForbidden(Exception):
    """The host resolves to an address that fetches may not reach."""


class Unresolvable(Exception):
    """The host name does not resolve."""


def forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address that is not globally routable, multicast, or a 6to4 wrapper of a non-global one."""
    embedded = address.sixtofour if isinstance(address, ipaddress.IPv6Address) else None
    return not address.is_global or address.is_multicast or (embedded is not None and not embedded.is_global)


def checked_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses of ``host``, every one of them allowed, in resolver order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OverflowError, ValueError):
        raise Unresolvable(host) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private and any(forbidden(ipaddress.ip_address(address.split("%")[0])) for address in addresses):
        raise AddressForbidden(host)
    return addresses


class CheckedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, but every TCP connection goes to an address resolved and checked here."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        if not 0 < port < 65536:  # (a redirect's URL is parsed leniently; the socket layer would raise OverflowError)
            raise httpcore.ConnectError(f"port {port} is out of range")
        failure: Exception | None = None
        for address in checked_addresses(host, port, self.allow_private):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # the next address of the name may answer
                failure = exc
        raise failure or httpcore.ConnectError("no address")


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """The TLS context of every fetch: loading the CA bundle costs about 20 ms, so once per process (contexts are
    safe to share between threads)."""
    return httpx.create_ssl_context(trust_env=False)


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport with :class:`CheckedBackend` underneath (direct), or a name check before each request (proxy)."""

    def __init__(self, policy: FetchPolicy, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        super().__init__(verify=_tls(), trust_env=False, limits=limits, proxy=policy.proxy or None)
        self.policy = policy
        if not policy.proxy:
            # httpx builds its pool without a way to pass a network backend: rebuild it with ours.
            self._pool = httpcore.ConnectionPool(
                ssl_context=_tls(),
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=CheckedBackend(policy.allow_private),
            )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.policy.proxy:
            checked_addresses(request.url.host, request.url.port or 443, self.policy.allow_private)
        return super().handle_request(request)


def _client(policy: FetchPolicy, connections: int = 1) -> httpx.Client:
    return httpx.Client(
        transport=CheckedTransport(policy, connections),
        timeout=httpx.Timeout(min(policy.timeout, READ_TIMEOUT)),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,
    )


def _unreachable(param: str, reason: str) -> RequestError:
    return RequestError(ErrorCode.ImageUrlUnreachable, param, reason=reason)


class _Transient(Exception):
    """A failure another attempt may not meet (a dropped connection, 429, 503...)."""

    def __init__(self, error: RequestError) -> None:
        self.error = error


def _attempt(client: httpx.Client, url: str, policy: FetchPolicy, param: str, deadline: float) -> bytes:
    too_slow = _unreachable(param, f"it took longer than {policy.timeout:g} s")
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                error = _unreachable(param, f"it answered HTTP {response.status_code}")
                raise _Transient(error) if response.status_code in TRANSIENT_STATUSES else error
            declared = response.headers.get("content-length", "")
            check_size(int(declared) if declared.isdigit() else 0, policy.max_bytes, param)
            received = bytearray()
            for chunk in response.iter_bytes():
                received.extend(chunk)
                check_size(len(received), policy.max_bytes, param)
                if time.monotonic() > deadline:
                    raise too_slow
            return bytes(received)
    except AddressForbidden:
        raise RequestError(ErrorCode.ImageUrlForbidden, param) from None
    except Unresolvable:
        raise _unreachable(param, "its host name cannot be resolved") from None
    except httpx.TooManyRedirects:
        raise _unreachable(param, f"it redirected more than {MAX_REDIRECTS} times") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):  # a redirect to a malformed or non-http(s) address
        raise _unreachable(param, "it redirected to an address that is not an http(s) URL") from None
    except httpx.TimeoutException:
        raise too_slow from None
    except (httpx.HTTPError, httpcore.ConnectError):
        raise _Transient(_unreachable(param, "the connection failed")) from None


def _fetch_with(client: httpx.Client, url: str, policy: FetchPolicy, param: str) -> bytes:
    try:
        valid = url.lower().startswith(("http://", "https://")) and bool(httpx.URL(url).host)
    except httpx.InvalidURL:
        valid = False
    if not valid:
        raise RequestError(ErrorCode.InvalidImageUrl, param)
    deadline = time.monotonic() + policy.timeout
    for attempt in range(policy.retries + 1):
        try:
            return _attempt(client, url, policy, param, deadline)
        except _Transient as failure:
            pause = min(4.0, 0.25 * 2 ** (attempt + 1)) * (0.5 + random.random())
            if attempt == policy.retries or time.monotonic() + pause > deadline:
                raise failure.error from None
            time.sleep(pause)
    raise AssertionError("unreachable")


def fetch(url: str, policy: FetchPolicy, param: str = "image_url") -> bytes:
    """The bytes at ``url``, or a :class:`RequestError` naming ``param`` and saying why not."""
    with _client(policy) as client:
        return _fetch_with(client, url, policy, param)


def fetch_many(urls: Iterable[str], policy: FetchPolicy, concurrency: int) -> Iterator[tuple[str, bytes | RequestError]]:
    """Each distinct URL with its bytes or its error, ``concurrency`` at a time over one connection pool."""
    distinct = list(dict.fromkeys(urls))
    if not distinct:
        return
    with _client(policy, concurrency) as client, ThreadPoolExecutor(max(1, min(concurrency, len(distinct)))) as pool:

        def one(url: str) -> tuple[str, bytes | RequestError]:
            try:
                return url, _fetch_with(client, url, policy, url)
            except RequestError as error:
                return url, error

        yield from pool.map(one, distinct)
