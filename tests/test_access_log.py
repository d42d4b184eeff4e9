"""The access-log middleware in-process: request ids, a JSON 500 for a bug, metric labels from a fixed set."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from imagesearch.http.app import AccessLog


async def broken(request: Request) -> PlainTextResponse:
    raise ZeroDivisionError("a bug")


async def fine(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def call(path: str) -> httpx.Response:
    # As in the real application: inside Starlette's outermost error middleware, around the routes.
    app = Starlette(routes=[Route("/broken", broken), Route("/fine", fine)], middleware=[Middleware(AccessLog)])

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t") as client:
            return await client.get(path)

    return asyncio.run(run())


def test_a_bug_answers_the_json_error_shape_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="imagesearch.access"):
        response = call("/broken")
    body = response.json()
    assert response.status_code == 500 and body["error"]["code"] == "InternalError"
    assert body["request_id"] == response.headers["x-request-id"] and body["request_id"] in body["error"]["message"]
    assert "ZeroDivisionError" not in response.text  # no trace for the client ...
    assert any("ZeroDivisionError" in (record.exc_text or "") for record in caplog.records)  # ... but in the log
    line = json.loads(next(record.getMessage() for record in caplog.records if record.getMessage().startswith("{")))
    assert line["status"] == 500 and line["outcome"] == "InternalError"


def test_metric_labels_never_take_raw_paths() -> None:
    path = "/" + "x" * 3000
    assert call(path).status_code == 404
    assert call("/fine").headers["x-request-id"]
    metrics = generate_latest().decode()
    assert "x" * 100 not in metrics and 'api="other"' in metrics and 'api="/fine"' in metrics


def test_disk_trouble_is_reported(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """/healthz turns "degraded" with the reason when the data directory's disk is nearly full."""
    import shutil

    from imagesearch.http import app as app_module

    assert app_module.disk_trouble(tmp_path) == [] or "free" in app_module.disk_trouble(tmp_path)[0]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(app_module.shutil, "disk_usage", lambda _: usage._replace(free=10 * 1024 * 1024))
    assert app_module.disk_trouble(tmp_path) == ["the data directory's disk has 10 MiB free"]


def test_hosts_outside_the_allow_list_are_refused() -> None:
    app = Starlette(routes=[Route("/fine", fine)], middleware=[Middleware(AccessLog, allowed_hosts=frozenset({"shop.example"}))])

    async def get(host: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/fine", headers={"Host": host})

    assert asyncio.run(get("shop.example:8000")).text == "ok"
    refused = asyncio.run(get("evil.example"))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidHost"
