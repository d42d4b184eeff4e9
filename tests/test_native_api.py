"""The native JSON API under /v1, over loopback against the same server process as the gateway tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
from conftest import jpeg_bytes, product_record
from test_gateway import server  # noqa: F401  (the shared server fixture)

from imagesearch.vision.synthetic import product_image

ADMIN = {"Authorization": "Bearer admin-secret"}


def test_search_with_a_file_upload(server: dict[str, Any]) -> None:  # noqa: F811
    files = {"file": ("q.jpg", jpeg_bytes(product_image(4)), "image/jpeg")}
    body = httpx.post(f"{server['base']}/v1/search", files=files, data={"currency": "EUR", "page_size": "3"}, timeout=30).json()
    top = body["products"][0]
    assert top["product_id"] == "p004" and isinstance(top["score"], float) and top["score"] > 0.99
    assert top["price"]["currency"] == "EUR" and "." in top["price"]["sale"]
    assert body["page"] == {"number": 1, "size": 3, "count": -(-body["total_count"] // 3), "has_next": True}
    assert body["request_id"] and body["next_start_row_key"]


def test_search_with_json_base64_and_cursor(server: dict[str, Any]) -> None:  # noqa: F811
    image = base64.b64encode(jpeg_bytes(product_image(2))).decode()
    first = httpx.post(f"{server['base']}/v1/search", json={"image_base64": image, "page_size": 2, "currency": "JPY"}, timeout=30).json()
    assert first["products"][0]["product_id"] == "p002" and first["products"][0]["price"]["sale"] == "174"
    second = httpx.post(f"{server['base']}/v1/search", json={"start_row_key": first["next_start_row_key"]}, timeout=30).json()
    assert second["page"]["number"] == 2 and not {p["product_id"] for p in second["products"]} & {p["product_id"] for p in first["products"]}


def test_errors_are_readable_json(server: dict[str, Any]) -> None:  # noqa: F811
    response = httpx.post(f"{server['base']}/v1/search", json={"image_base64": base64.b64encode(b"not an image").decode()}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidImage"
    response = httpx.post(f"{server['base']}/v1/search", json={"image_url": f"{server['base']}/thumbnails/1.jpg"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "ImageUrlForbidden"
    response = httpx.post(f"{server['base']}/v1/search", content=b"[1, 2", headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidRequest"


def test_product_view(server: dict[str, Any]) -> None:  # noqa: F811
    body = httpx.get(f"{server['base']}/v1/products/p000", timeout=10).json()
    assert body["titles"]["fr"] == "Produit 0" and len(body["images"]) == 2
    assert body["category_names"]["first_level"]["fr"] == "Maison et jardin"
    assert httpx.get(f"{server['base']}/v1/products/nope", timeout=10).status_code == 404


def test_live_catalog_changes_need_the_admin_token(server: dict[str, Any]) -> None:  # noqa: F811
    record = product_record(40, [f"{server['base']}/thumbnails/1.jpg"])
    assert httpx.put(f"{server['base']}/v1/products/p040", json=record, timeout=30).status_code == 401
    created = httpx.put(f"{server['base']}/v1/products/p040", json=record, headers=ADMIN, timeout=60)
    assert created.status_code == 200, created.text
    assert created.json()["products_written"] == 1
    assert httpx.get(f"{server['base']}/v1/products/p040", timeout=10).json()["titles"]["en"] == "Product 40"
    bad = httpx.put(f"{server['base']}/v1/products/p041", json={**record, "product_id": "p041", "shop_id": -1}, headers=ADMIN, timeout=30)
    assert bad.status_code == 422 and "shop_id" in bad.json()["error"]["message"]
    assert httpx.delete(f"{server['base']}/v1/products/p040", headers=ADMIN, timeout=30).json()["deleted"] is True
    assert httpx.delete(f"{server['base']}/v1/products/p040", headers=ADMIN, timeout=30).status_code == 404


def test_metrics_health_and_docs(server: dict[str, Any]) -> None:  # noqa: F811
    httpx.post(f"{server['base']}/v1/search", json={}, timeout=30)
    metrics = httpx.get(f"{server['base']}/metrics", timeout=10).text
    assert "imagesearch_requests_total" in metrics and "imagesearch_request_seconds_bucket" in metrics
    assert httpx.get(f"{server['base']}/healthz", timeout=10).json()["status"] == "ok"
    assert "/v1/search" in json.dumps(httpx.get(f"{server['base']}/openapi.json", timeout=10).json()["paths"])
    docs = httpx.get(f"{server['base']}/docs", timeout=10)
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert httpx.get(f"{server['base']}/docs-assets/swagger-ui-bundle.js", timeout=10).status_code == 200


def test_catalog_overview_and_per_image_match(server: dict[str, Any]) -> None:  # noqa: F811
    overview = httpx.get(f"{server['base']}/v1/catalog", timeout=10).json()
    assert overview["products"] >= 11 and overview["index"]["kind"] == "flat" and "USD" in overview["rates"]["currencies"]
    files = {"file": ("q.jpg", jpeg_bytes(product_image(10_000)), "image/jpeg")}  # p000's second image
    match = httpx.post(f"{server['base']}/v1/products/p000/match", files=files, timeout=30).json()
    scores = [image["score"] for image in match["images"]]
    assert len(scores) == 2 and scores[1] > 0.99 > scores[0]
    missing = httpx.post(f"{server['base']}/v1/products/p000/match", data={"x": "1"}, timeout=30)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingImage"


def test_two_workers(tmp_path: Path, model_cache: Path) -> None:
    """Two server processes both answer, and both see a catalog change."""
    from conftest import running_server, write_catalog
    from test_gateway import cli

    cli(tmp_path / "data", model_cache, "import", str(write_catalog(tmp_path, 6)))
    files = {"file": ("q.jpg", jpeg_bytes(product_image(3)), "image/jpeg")}
    with running_server(tmp_path / "data", model_cache, workers=2) as (base, _):
        with httpx.Client(timeout=30) as client:
            for _ in range(4):  # warm both workers up
                client.post(f"{base}/v1/search", files=files)
            for _ in range(6):
                assert client.post(f"{base}/v1/search", files=files).json()["products"][0]["product_id"] == "p003"
        cli(tmp_path / "data", model_cache, "delete", "p003")
        for _ in range(6):  # new connections land on either worker
            ids = [p["product_id"] for p in httpx.post(f"{base}/v1/search", files=files, timeout=30).json()["products"]]
            assert "p003" not in ids


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
