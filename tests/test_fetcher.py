"""The one image fetcher: every address checked, connections go to the address checked, whole-fetch limits.

Names are resolved by a stubbed resolver and every connection lands on a
loopback server (or is refused before it is made): no traffic leaves.
"""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagesearch import fetcher
from imagesearch.config import load_settings
from imagesearch.errors import RequestError
from imagesearch.fetcher import FetchPolicy, fetch
from imagesearch.ingest.sources import fetch_all


class _Images(http.server.BaseHTTPRequestHandler):
    """/ok answers bytes; /to?<url> redirects there; /slow trickles a byte every 0.2 s."""

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", self.path[4:])
            self.end_headers()
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            body = f"image for {self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


class Resolver:
    """A stub for ``socket.getaddrinfo``: names map to address lists (successive answers for rebinding)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: Any, *_: Any, **__: Any) -> list[tuple[Any, ...]]:
        try:  # a numeric address stands for itself (socket.create_connection asks for those too)
            return [(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, 6, "", (str(ipaddress.ip_address(host)), port))]
        except ValueError:
            self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror("no such name")
        answers = self.answers[host]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address a connection is opened to; only loopback ones are really opened."""
    opened: list[tuple[str, int]] = []
    real = socket.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError("the test lets only loopback connections through")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return opened


POLICY = FetchPolicy(max_bytes=100_000, timeout=2.0)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.9", "172.16.5.5", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fd00::1",
     "fe80::1", "::ffff:127.0.0.1", "2002:a00:1::1", "224.0.0.1"],
)
def test_non_global_addresses_are_refused_before_any_connection(
    monkeypatch: pytest.MonkeyPatch, connections: list[tuple[str, int]], address: str
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({"images.shop.example": [[address]]}))
    with pytest.raises(RequestError) as error:
        fetch("http://images.shop.example/a.jpg", POLICY)
    assert error.value.code == "ImageUrlForbidden" and address not in error.value.message
    assert connections == []


def test_one_non_global_address_among_several_refuses_the_name(monkeypatch: pytest.MonkeyPatch, connections: list[Any]) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({"cdn.example": [["8.8.8.8", "10.0.0.7"]]}))
    with pytest.raises(RequestError, match="non-public"):
        fetch("http://cdn.example/a.jpg", POLICY)
    assert connections == []


def test_the_connection_goes_to_the_address_checked(monkeypatch: pytest.MonkeyPatch, connections: list[Any], server: int) -> None:
    """DNS rebinding: the name answers a public address first and loopback afterwards; only the first is ever used."""
    resolver = Resolver({"rebind.example": [["8.8.8.8"], ["127.0.0.1"]]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(RequestError) as error:
        fetch(f"http://rebind.example:{server}/ok", POLICY)
    assert error.value.code == "ImageUrlUnreachable" and "8.8.8.8" not in error.value.message
    assert connections == [("8.8.8.8", server)] and resolver.asked == ["rebind.example"]


def test_an_allowed_private_name_is_fetched_with_its_own_host_header(
    monkeypatch: pytest.MonkeyPatch, connections: list[Any], server: int
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({"intranet.example": [["127.0.0.1"]]}))
    data = fetch(f"http://intranet.example:{server}/ok", FetchPolicy(100_000, 2.0, allow_private=True))
    assert data == f"image for intranet.example:{server}".encode()
    assert connections == [("127.0.0.1", server)]


def test_every_redirect_is_checked(monkeypatch: pytest.MonkeyPatch, connections: list[Any], server: int) -> None:
    """A public name that redirects to an internal one is refused at the hop, before connecting to it."""
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({"public.example": [["127.0.0.1"]], "internal.example": [["127.0.0.2"]]}))
    monkeypatch.setattr(fetcher, "forbidden", lambda address: str(address) != "127.0.0.1")  # 127.0.0.1 plays a public host
    assert fetch(f"http://public.example:{server}/ok", POLICY).startswith(b"image for")
    with pytest.raises(RequestError) as error:
        fetch(f"http://public.example:{server}/to?http://internal.example:{server}/ok", POLICY)
    assert error.value.code == "ImageUrlForbidden"
    assert all(address == "127.0.0.1" for address, _ in connections)


def test_redirect_loops_stop(monkeypatch: pytest.MonkeyPatch, connections: list[Any], server: int) -> None:
    target = f"http://127.0.0.1:{server}/ok"
    for _ in range(5):
        target = f"http://127.0.0.1:{server}/to?{target}"
    with pytest.raises(RequestError, match="redirected more than 3 times"):
        fetch(target, FetchPolicy(100_000, 2.0, allow_private=True))


def test_proxy_variables_of_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch, server: int) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there: using it would fail
    assert fetch(f"http://127.0.0.1:{server}/ok", FetchPolicy(100_000, 2.0, allow_private=True)).startswith(b"image for")


def test_errors_do_not_reveal_addresses_or_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({"db.internal": [["127.0.0.1"]]}))
    with pytest.raises(RequestError) as error:
        fetch("http://db.internal:9/", FetchPolicy(1000, 2.0, allow_private=True))  # nothing listens on port 9
    assert error.value.message == "image_url could not be fetched: the connection failed"


@pytest.mark.parametrize("url", ["ftp://a.example/x.jpg", "http:///x.jpg", "http://[::1/x", "/etc/passwd", "file:///etc/passwd"])
def test_only_absolute_http_urls(url: str) -> None:
    with pytest.raises(RequestError) as error:
        fetch(url, POLICY)
    assert error.value.code == "InvalidImageUrl"


def test_a_trickling_server_cannot_hold_a_fetch_past_its_time_limit(server: int) -> None:
    """The limit bounds the whole download, not each read (a byte every 0.2 s would otherwise never time out)."""
    started = time.monotonic()
    with pytest.raises(RequestError) as error:
        fetch(f"http://127.0.0.1:{server}/slow", FetchPolicy(1_000_000, 1.0, allow_private=True))
    assert error.value.code == "ImageUrlUnreachable" and "longer than 1 s" in error.value.message
    assert time.monotonic() - started < 3


def test_imports_have_their_own_private_address_setting(tmp_path: Path, server: int) -> None:
    url = f"http://127.0.0.1:{server}/ok"
    closed = load_settings(tmp_path, environ={"IMAGESEARCH_ALLOW_PRIVATE_IMAGE_URLS": "true"})
    assert "non-public" in str(fetch_all([url], tmp_path, closed)[url])
    opened = load_settings(tmp_path, environ={"IMAGESEARCH_ALLOW_PRIVATE_IMPORT_URLS": "true"})
    assert fetch_all([url], tmp_path, opened)[url] == f"image for 127.0.0.1:{server}".encode()
    with pytest.raises(RequestError, match="non-public"):
        fetch(url, FetchPolicy.for_queries(opened))



def test_a_configured_proxy_is_used_and_the_target_name_still_checked(monkeypatch: pytest.MonkeyPatch, server: int) -> None:
    """The loopback server plays the proxy (it answers absolute-URI requests); the proxy's own address may be private."""
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({"public.example": [["8.8.8.8"]], "internal.example": [["10.0.0.1"]]}))
    policy = FetchPolicy(100_000, 2.0, proxy=f"http://127.0.0.1:{server}")
    assert fetch("http://public.example/ok", policy) == b"image for public.example"
    with pytest.raises(RequestError) as error:
        fetch("http://internal.example/ok", policy)
    assert error.value.code == "ImageUrlForbidden"


@pytest.mark.parametrize("location", ["http://:99999/x", "file:///etc/passwd", "ftp://files.example/a.jpg", "http://[bad/"])
def test_a_redirect_to_a_bad_address_is_refused_not_crashed(monkeypatch: pytest.MonkeyPatch, server: int, location: str) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({}))  # no name resolves: nothing is looked up for real
    with pytest.raises(RequestError) as error:
        fetch(f"http://127.0.0.1:{server}/to?{location}", FetchPolicy(100_000, 2.0, allow_private=True))
    assert error.value.code == "ImageUrlUnreachable"


def test_any_url_text_is_fetched_or_refused_with_a_code(monkeypatch: pytest.MonkeyPatch, connections: list[Any]) -> None:
    """Property-based: whatever the text, the fetcher answers a RequestError (no name resolves here, and a
    connection to any address but loopback is refused before it is made), never another exception."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    monkeypatch.setattr(socket, "getaddrinfo", Resolver({}))
    policy = FetchPolicy(1000, 0.5)
    hosts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
    urls = st.builds(lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
                     st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "http:/"]), hosts,
                     st.sampled_from(["", ":0", ":80", ":99999", ":-1", ":x", ":443"]), st.text(max_size=20))

    @settings(max_examples=200, deadline=None)
    @given(urls)
    def refused_with_a_code(url: str) -> None:
        with pytest.raises(RequestError) as error:
            fetch(url, policy)
        assert error.value.code in ("InvalidImageUrl", "ImageUrlUnreachable", "ImageUrlForbidden")

    refused_with_a_code()
