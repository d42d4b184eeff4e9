"""The native JSON API under /v1, over loopback against the same server process as the gateway tests."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import cli, jpeg_bytes, product_record, running_server, write_catalog

from imagesearch.vision.synthetic import product_image

ADMIN = {"Authorization": "Bearer admin-secret"}


def test_search_with_a_file_upload(server: dict[str, Any]) -> None:
    files = {"file": ("q.jpg", jpeg_bytes(product_image(4)), "image/jpeg")}
    body = httpx.post(f"{server['base']}/v1/search", files=files, data={"currency": "EUR", "page_size": "3"}, timeout=30).json()
    top = body["products"][0]
    assert top["product_id"] == "p004" and isinstance(top["score"], float) and top["score"] > 0.99
    assert top["price"]["currency"] == "EUR" and "." in top["price"]["sale"]
    assert body["page"] == {"number": 1, "size": 3, "count": 3, "pages": -(-body["total_count"] // 3), "has_next": True}
    assert top["matched_thumbnail_url"].startswith(server["base"]) and top["image_url"].startswith(server["base"])
    assert body["request_id"] and body["next_start_row_key"]


def test_search_with_json_base64_and_cursor(server: dict[str, Any]) -> None:
    image = base64.b64encode(jpeg_bytes(product_image(2))).decode()
    first = httpx.post(f"{server['base']}/v1/search", json={"image_base64": image, "page_size": 2, "currency": "JPY"}, timeout=30).json()
    assert first["products"][0]["product_id"] == "p002" and first["products"][0]["price"]["sale"] == "174"
    second = httpx.post(f"{server['base']}/v1/search", json={"start_row_key": first["next_start_row_key"]}, timeout=30).json()
    assert second["page"]["number"] == 2 and not {p["product_id"] for p in second["products"]} & {p["product_id"] for p in first["products"]}


def test_errors_are_readable_json(server: dict[str, Any]) -> None:
    response = httpx.post(f"{server['base']}/v1/search", json={"image_base64": base64.b64encode(b"not an image").decode()}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidImage"
    response = httpx.post(f"{server['base']}/v1/search", json={"image_url": f"{server['base']}/thumbnails/1.jpg"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "ImageUrlForbidden"
    response = httpx.post(f"{server['base']}/v1/search", content=b"[1, 2", headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidRequest"
    response = httpx.post(f"{server['base']}/v1/search", content=b"[" * 100_000, headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidRequest"


def v1_error(server: dict[str, Any], **request: Any) -> tuple[int, dict[str, Any]]:
    response = httpx.post(f"{server['base']}/v1/search", timeout=30, **request)
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()["error"]


def test_json_bodies_are_validated_like_every_entry_point(server: dict[str, Any]) -> None:
    image = base64.b64encode(jpeg_bytes(product_image(1))).decode()
    status, error = v1_error(server, json={"image_base64": image, "page_size": 0})
    assert (status, error["code"], error["param"]) == (400, "InvalidPageSize", "page_size")
    assert "pydantic" not in error["message"] and "page_size must be a whole number from 1 to 50" in error["message"]
    status, error = v1_error(server, json={"image_base64": image, "sort": "price"})
    assert (status, error["code"], error["param"]) == (400, "UnknownParameter", "sort") and "sort_type" in error["message"]
    status, error = v1_error(server, json={"image_base64": image, "image_url": "https://shop.example/a.jpg"})
    assert error["code"] == "AmbiguousImage"
    status, error = v1_error(server, files={"file": ("q.jpg", b"", "image/jpeg")})
    assert (status, error["code"], error["param"]) == (400, "EmptyImage", "file")
    status, error = v1_error(server, json={"image_base64": ""})
    assert error["code"] == "EmptyImage"
    status, error = v1_error(server, json={})
    assert error["code"] == "MissingImage" and "file or image_base64 or image_url" in error["message"]
    status, error = v1_error(server, files={"file": ("q.jpg", b"\xff" * 1_000_001, "image/jpeg")})
    assert (status, error["code"]) == (413, "ImageTooLarge") and "976.6 KiB" in error["message"]
    status, error = v1_error(server, content=b"x" * 2_000_001, headers={"content-type": "application/json"})
    assert (status, error["code"]) == (413, "RequestEntityTooLarge")


@pytest.mark.parametrize(
    ("options", "code"),
    [({"page_size": "0"}, "InvalidPageSize"), ({"currency": "DOLLAR"}, "InvalidCurrency"), ({"sort_type": "cheap"}, "InvalidSortType"),
     ({"lang": "klingon"}, "InvalidLanguage"), ({"ship_to": "XX"}, "InvalidShipTo"), ({"colour": "red"}, "UnknownParameter")],
)
def test_same_mistake_same_answer_on_every_entry_point(server: dict[str, Any], options: dict[str, str], code: str, tmp_path: Path) -> None:
    """/sync (param0), /v1 JSON, /v1 multipart and the CLI answer a bad value with one code and one message."""
    from test_gateway import signed

    photo = jpeg_bytes(product_image(2))
    image = base64.b64encode(photo).decode()
    sync = httpx.post(f"{server['base']}/sync", data=signed(server, param0=json.dumps({"image_base64": image, **options})), timeout=30).json()
    answers = {"sync": (sync["aliexpress_ds_image_searchV2_response"]["result"]["code"],
                        sync["aliexpress_ds_image_searchV2_response"]["result"]["messages"])}
    error = v1_error(server, json={"image_base64": image, **options})[1]
    answers["json"] = (error["code"], error["message"])
    error = v1_error(server, files={"file": ("q.jpg", photo, "image/jpeg")}, data=options)[1]
    answers["multipart"] = (error["code"], error["message"])
    if code not in ("UnknownParameter", "InvalidSortType"):  # the CLI's flags are its own; click checks --sort
        (tmp_path / "q.jpg").write_bytes(photo)
        flags = [arg for name, value in options.items() for arg in (f"--{name.replace('_', '-').replace('sort-type', 'sort')}", value)]
        run = subprocess.run([sys.executable, "-m", "imagesearch.cli", "--data-dir", str(server["data_dir"]), "search", str(tmp_path / "q.jpg"), *flags],
                             capture_output=True, text=True, env=dict(os.environ, IMAGESEARCH_MODEL_CACHE_DIR=str(server["model_cache"])))
        assert run.returncode == 1, run.stderr
        result = json.loads(run.stdout)["aliexpress_ds_image_searchV2_response"]["result"]
        answers["cli"] = (result["code"], result["messages"])
    assert {answer[0] for answer in answers.values()} == {code}, answers
    # The message is the same; an unknown name's list of known ones is each entry point's own.
    assert len({answer[1].split("; known:")[0] for answer in answers.values()}) == 1, answers


def test_product_view(server: dict[str, Any]) -> None:
    body = httpx.get(f"{server['base']}/v1/products/p000", timeout=10).json()
    assert body["titles"]["fr"] == "Produit 0" and len(body["images"]) == 2
    assert body["category_names"]["first_level"]["fr"] == "Maison et jardin"
    assert body["images"][0]["thumbnail_url"].startswith(server["base"] + "/thumbnails/")
    french = httpx.get(f"{server['base']}/v1/products/p000", params={"lang": "fr-FR", "currency": "jpy"}, timeout=10).json()
    assert french["title"] == "Produit 0" and french["category"]["first_level"]["name"] == "Maison et jardin"
    assert french["price"]["currency"] == "JPY" and french["price"]["converted"] is True
    for query, code in (({"currency": "XAU"}, "UnsupportedCurrency"), ({"lang": "klingon"}, "InvalidLanguage")):
        refused = httpx.get(f"{server['base']}/v1/products/p000", params=query, timeout=10)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == code
    missing = httpx.get(f"{server['base']}/v1/products/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ProductNotFound"
    unknown_route = httpx.get(f"{server['base']}/v1/nothing-here", timeout=10)
    assert unknown_route.status_code == 404 and unknown_route.json()["error"]["code"] == "NotFound"
    wrong_method = httpx.patch(f"{server['base']}/v1/search", timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "MethodNotAllowed"


def test_live_catalog_changes_need_the_admin_token(server: dict[str, Any]) -> None:
    record = product_record(40, [f"{server['base']}/thumbnails/1.jpg"])
    assert httpx.put(f"{server['base']}/v1/products/p040", json=record, timeout=30).status_code == 401
    for wrong in ("admin-secret", "Basic admin-secret", "Bearer admin-secre"):  # the scheme is required, the token exact
        refused = httpx.put(f"{server['base']}/v1/products/p040", json=record, headers={"Authorization": wrong}, timeout=30)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "Unauthorized"
    created = httpx.put(f"{server['base']}/v1/products/p040", json=record, headers=ADMIN, timeout=60)
    assert created.status_code == 200, created.text
    assert created.json()["products_written"] == 1
    assert httpx.get(f"{server['base']}/v1/products/p040", timeout=10).json()["titles"]["en"] == "Product 40"
    bad = httpx.put(f"{server['base']}/v1/products/p041", json={**record, "product_id": "p041", "shop_id": -1}, headers=ADMIN, timeout=30)
    assert bad.status_code == 422 and "shop_id" in bad.json()["error"]["message"]
    assert httpx.delete(f"{server['base']}/v1/products/p040", headers=ADMIN, timeout=30).json()["deleted"] is True
    assert httpx.delete(f"{server['base']}/v1/products/p040", headers=ADMIN, timeout=30).status_code == 404


def test_metrics_health_and_docs(server: dict[str, Any]) -> None:
    httpx.post(f"{server['base']}/v1/search", json={}, timeout=30)
    metrics = httpx.get(f"{server['base']}/metrics", timeout=10).text
    assert "imagesearch_requests_total" in metrics and "imagesearch_request_seconds_bucket" in metrics
    assert httpx.get(f"{server['base']}/healthz", timeout=10).json()["status"] == "ok"
    assert "/v1/search" in json.dumps(httpx.get(f"{server['base']}/openapi.json", timeout=10).json()["paths"])
    for path in ("/", "/docs", "/healthz", "/v1/nothing"):
        headers = httpx.get(f"{server['base']}{path}", timeout=10).headers
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY", path
        assert headers["content-security-policy"] == "frame-ancestors 'none'" and headers["x-request-id"], path
    docs = httpx.get(f"{server['base']}/docs", timeout=10)
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert httpx.get(f"{server['base']}/docs-assets/swagger-ui-bundle.js", timeout=10).status_code == 200


def test_catalog_overview_and_per_image_match(server: dict[str, Any]) -> None:
    overview = httpx.get(f"{server['base']}/v1/catalog", timeout=10).json()
    assert overview["products"] >= 11 and overview["index"]["kind"].startswith("flat") and "USD" in overview["rates"]["currencies"]
    files = {"file": ("q.jpg", jpeg_bytes(product_image(10_000)), "image/jpeg")}  # p000's second image
    match = httpx.post(f"{server['base']}/v1/products/p000/match", files=files, timeout=30).json()
    scores = [image["score"] for image in match["images"]]
    assert len(scores) == 2 and scores[1] > 0.99 > scores[0]
    missing = httpx.post(f"{server['base']}/v1/products/p000/match", data={"x": "1"}, timeout=30)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingImage"


def test_phone_photos_search_and_preview(server: dict[str, Any]) -> None:
    """A HEIC photo (an iPhone's) and an AVIF one search like their JPEG; ``/v1/preview`` sends a photo back upright
    as a JPEG, with the upright size that regions and boxes are measured in (a HEIC stored sideways: 1600 x 1200
    upright, the preview 1024 x 768)."""
    import io

    from PIL import Image

    def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    base = server["base"]
    for fmt, mime in (("HEIF", "image/heic"), ("AVIF", "image/avif")):
        files = {"file": (f"q.{fmt.lower()}", encoded(product_image(4), fmt, quality=90), mime)}
        body = httpx.post(f"{base}/v1/search", files=files, timeout=30).json()
        assert body["products"][0]["product_id"] == "p004" and body["products"][0]["score"] > 0.97, (fmt, body)
    upright = product_image(6, (1600, 1200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    stored = encoded(upright.transpose(Image.Transpose.ROTATE_90), "HEIF", exif=exif.tobytes())
    answer = httpx.post(f"{base}/v1/preview", files={"file": ("q.heic", stored, "image/heic")}, timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert (answer.headers["x-image-width"], answer.headers["x-image-height"]) == ("1600", "1200")
    shown = Image.open(io.BytesIO(answer.content))
    assert shown.size == (1024, 768)
    difference = np.abs(np.asarray(shown, np.int16) - np.asarray(upright.resize((1024, 768)), np.int16)).mean()
    assert difference < 12  # the photo itself, the right way up
    for request, code in (({"data": {"x": "1"}}, "MissingImage"), ({"files": {"file": ("q.txt", b"not an image", "text/plain")}}, "InvalidImage"),
                          ({"files": {"file": ("q.tif", encoded(Image.new("RGB", (20, 20)), "TIFF"), "image/tiff")}}, "UnsupportedImageFormat")):
        refused = httpx.post(f"{base}/v1/preview", timeout=30, **request)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == code
    assert "/v1/preview" in httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]


def test_two_workers(tmp_path: Path, model_cache: Path) -> None:
    """Two server processes both answer (told apart by /healthz's pid), both see a catalog change, and /metrics
    on either counts both's requests."""
    searches = 0
    cli(tmp_path / "data", model_cache, "import", str(write_catalog(tmp_path, 6)))
    files = {"file": ("q.jpg", jpeg_bytes(product_image(3)), "image/jpeg")}

    def by_worker(attempts: int) -> dict[int, list[list[str]]]:
        """Searches on fresh connections, grouped by the process that answered (one connection, one worker)."""
        answers: dict[int, list[list[str]]] = {}
        for attempt in range(attempts):
            if attempt >= 20:  # a worker still starting (a loaded machine) accepts nothing yet: give it time
                time.sleep(0.1)
            with httpx.Client(timeout=30) as client:
                pid = client.get(f"{base}/healthz").json()["pid"]
                products = client.post(f"{base}/v1/search", files=files).json()["products"]
                nonlocal searches
                searches += 1
                answers.setdefault(pid, []).append([product["product_id"] for product in products])
            if len(answers) == 2:
                break
        return answers

    with running_server(tmp_path / "data", model_cache, workers=2) as (base, _):
        before = by_worker(200)
        assert len(before) == 2, "only one worker process answered"
        assert all(ids[0] == "p003" for answers in before.values() for ids in answers)
        cli(tmp_path / "data", model_cache, "delete", "p003")
        after = by_worker(200)
        assert all("p003" not in ids for answers in after.values() for ids in answers)
        assert len(after) == 2
        for _ in range(4):  # whichever worker answers
            text = httpx.get(f"{base}/metrics", timeout=10).text
            counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                          if line.startswith('imagesearch_requests_total{api="/v1/search"'))
            assert counted == searches


def test_multi_worker_listener_keeps_tcp_nodelay() -> None:
    """Connections accepted on serve's own multi-worker listener get TCP_NODELAY (uvicorn #3149)."""
    import asyncio
    import socket

    from imagesearch.cli import _listening_socket

    listener = _listening_socket("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP

    async def accepted_nodelay() -> int:
        seen: dict[str, int] = {}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen["nodelay"] = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()

        listening = await asyncio.start_server(handle, sock=listener)
        _, writer = await asyncio.open_connection("127.0.0.1", listener.getsockname()[1])
        for _ in range(50):
            if "nodelay" in seen:
                break
            await asyncio.sleep(0.02)
        writer.close()
        listening.close()
        return seen["nodelay"]

    assert asyncio.run(accepted_nodelay()) == 1


def test_overload_is_turned_away_at_once(tmp_path: Path, model_cache: Path) -> None:
    """With one search slot, concurrent searches beyond it get the documented overload answers, never a 5xx else."""
    from concurrent.futures import ThreadPoolExecutor

    from test_gateway import signed

    cli(tmp_path / "data", model_cache, "import", str(write_catalog(tmp_path, 6)))
    app = cli(tmp_path / "data", model_cache, "apps", "create", "busy shop", "--rate-limit", "1000")
    photo = jpeg_bytes(product_image(3))
    with running_server(tmp_path / "data", model_cache, {"IMAGESEARCH_MAX_PENDING_SEARCHES": "1"}) as (base, port):
        server = {"base": base, "port": port, "app_key": app["app_key"], "secret": app["secret"]}

        def v1(_: int) -> httpx.Response:
            return httpx.post(f"{base}/v1/search", files={"file": ("q.jpg", photo, "image/jpeg")}, timeout=30)

        def sync(_: int) -> dict[str, Any]:
            param0 = json.dumps({"image_base64": base64.b64encode(photo).decode()})
            return httpx.post(f"{base}/sync", data=signed(server, param0=param0), timeout=30).json()

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(v1, range(24)))
            gateway = list(pool.map(sync, range(24)))
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert busy.headers["Retry-After"] == "1" and busy.json()["error"]["code"] == "Overloaded"
    codes = [body.get("code") for body in gateway]
    assert set(codes) <= {"0", "ApiCallLimit"} and "0" in codes and "ApiCallLimit" in codes, codes
    limited = next(body for body in gateway if body.get("code") == "ApiCallLimit")
    assert limited["error_response"]["msg"].endswith("this ban will last 1 seconds")


def test_app_keys_can_be_required_on_v1(tmp_path: Path, model_cache: Path) -> None:
    """v1_requires_app_key: /v1/search needs a known app's key and secret, and keeps to the app's rate limit."""
    cli(tmp_path / "data", model_cache, "import", str(write_catalog(tmp_path, 4)))
    app = cli(tmp_path / "data", model_cache, "apps", "create", "web shop", "--rate-limit", "1")
    files = {"file": ("q.jpg", jpeg_bytes(product_image(2)), "image/jpeg")}
    with running_server(tmp_path / "data", model_cache, {"IMAGESEARCH_V1_REQUIRES_APP_KEY": "true"}) as (base, _):
        anonymous = httpx.post(f"{base}/v1/search", files=files, timeout=30)
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "AppKeyRequired"
        wrong = httpx.post(f"{base}/v1/search", files=files, headers={"X-App-Key": app["app_key"], "X-App-Secret": "0" * 32}, timeout=30)
        assert wrong.status_code == 401
        keys = {"X-App-Key": app["app_key"], "X-App-Secret": app["secret"]}
        answers = [httpx.post(f"{base}/v1/search", files=files, headers=keys, timeout=30) for _ in range(3)]
        assert answers[0].status_code == 200 and answers[0].json()["products"][0]["product_id"] == "p002"
        limited = next(answer for answer in answers if answer.status_code == 429)
        assert limited.json()["error"]["code"] == "RateLimited" and int(limited.headers["Retry-After"]) >= 1
        assert httpx.get(f"{base}/v1/catalog", timeout=10).status_code == 200  # the overview stays open


def test_writes_past_the_threshold_compact_in_the_background(tmp_path: Path, model_cache: Path) -> None:
    """Live writes fetch private addresses only when allow_private_import_urls says so; a PUT that leaves more
    delta segments than compact_max_deltas starts a compaction in its own process; searches and writes go on,
    and /v1/catalog shows one segment once it is done."""
    data_dir = tmp_path / "data"
    cli(data_dir, model_cache, "import", str(write_catalog(tmp_path, 4)))
    extra = {"IMAGESEARCH_ADMIN_TOKEN": "admin-secret", "IMAGESEARCH_COMPACT_MAX_DELTAS": "1"}
    with running_server(data_dir, model_cache, extra) as (base, _):
        record = product_record(40, [f"{base}/thumbnails/1.jpg"])
        refused = httpx.put(f"{base}/v1/products/p040", json=record, headers=ADMIN, timeout=60)  # a loopback URL
        assert refused.status_code == 422 and "non-public address" in refused.json()["error"]["message"]
    extra["IMAGESEARCH_ALLOW_PRIVATE_IMPORT_URLS"] = "true"
    with running_server(data_dir, model_cache, extra) as (base, _):
        for number in (40, 41):
            record = product_record(number, [f"{base}/thumbnails/{number - 39}.jpg"])
            assert httpx.put(f"{base}/v1/products/p{number:03d}", json=record, headers=ADMIN, timeout=60).status_code == 200
        deadline = time.time() + 60
        while (index := httpx.get(f"{base}/v1/catalog", timeout=10).json()["index"])["segments"] != 1:
            assert time.time() < deadline, index
            time.sleep(0.2)
        assert index["vectors"] == 7 and index["tombstones"] == 0  # 4 products (one with two images) + 2
        files = {"file": ("q.jpg", jpeg_bytes(product_image(2)), "image/jpeg")}
        assert httpx.post(f"{base}/v1/search", files=files, timeout=30).json()["products"][0]["product_id"] == "p002"


def test_a_request_head_that_trickles_in_is_cut_off(tmp_path: Path, model_cache: Path) -> None:
    """A client sending its headers a byte at a time (slowloris) loses the connection after header_timeout;
    one whose head arrives in time is answered."""
    import socket

    data_dir = tmp_path / "data"
    cli(data_dir, model_cache, "import", str(write_catalog(tmp_path, 2)))
    with running_server(data_dir, model_cache, {"IMAGESEARCH_HEADER_TIMEOUT": "1"}) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            started = time.time()
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            closed = False
            while time.time() - started < 8:
                try:
                    slow.sendall(b"X-Slow: 1\r\n")  # one more header line every half second: never complete
                except OSError:
                    closed = True
                    break
                slow.settimeout(0.5)
                try:
                    if slow.recv(1024) == b"":
                        closed = True
                        break
                except TimeoutError:
                    pass
            assert closed and time.time() - started < 4
        with socket.create_connection(("127.0.0.1", port), timeout=10) as prompt:
            prompt.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert prompt.recv(1024).startswith(b"HTTP/1.1 200")


def test_concurrent_live_writes_queue_instead_of_conflicting(server: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def put(number: int) -> int:
        record = product_record(number, [f"{server['base']}/thumbnails/{number % 5 + 1}.jpg"])
        return httpx.put(f"{server['base']}/v1/products/p{number:03d}", json=record, headers=ADMIN, timeout=120).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(put, range(60, 64))) == [200] * 4
    for number in range(60, 64):
        assert httpx.delete(f"{server['base']}/v1/products/p{number:03d}", headers=ADMIN, timeout=60).status_code == 200
