"""image_url fetching refuses every address that is not globally routable, with a stubbed resolver (no traffic leaves)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from imagesearch.errors import RequestError
from imagesearch.http import remote


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.9", "172.16.5.5", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fd00::1",
     "fe80::1", "::ffff:127.0.0.1", "2002:a00:1::1", "224.0.0.1"],
)
def test_non_global_addresses_are_refused_before_any_connection(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def resolve(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        return [(family, socket.SOCK_STREAM, 6, "", (address, 80))]

    def no_connection(*_: Any, **__: Any) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(remote.socket, "getaddrinfo", resolve)
    monkeypatch.setattr(remote.httpx.Client, "stream", no_connection)
    with pytest.raises(RequestError) as error:
        remote.fetch_image("http://images.shop.example/a.jpg", 1000, 1.0, allow_private=False)
    assert error.value.code == "ImageUrlForbidden" and address not in error.value.message


def test_product_id_is_matched_whole() -> None:
    from imagesearch.catalog.records import validate_record

    record = {"shop_id": 1, "title": "t", "price": {"sale": "1", "currency": "USD"}, "images": ["a.jpg"]}
    assert validate_record({**record, "product_id": "abc-1"}, "en").product_id == "abc-1"
    with pytest.raises(ValueError, match="product_id"):
        validate_record({**record, "product_id": "abc-1\n"}, "en")


def test_a_trickling_server_cannot_hold_a_fetch_past_its_time_limit() -> None:
    """The limit bounds the whole download, not each read (a byte every 0.2 s would otherwise never time out)."""
    import http.server
    import threading
    import time

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
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

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(RequestError) as error:
            remote.fetch_image(f"http://127.0.0.1:{server.server_address[1]}/slow.jpg", 1_000_000, 1.0, allow_private=True)
    finally:
        server.shutdown()
    assert error.value.code == "ImageUrlUnreachable" and "longer than 1 s" in error.value.message
    assert time.monotonic() - started < 3
