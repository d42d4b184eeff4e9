"""The /sync gateway, over loopback, against a real server process.

The judge of protocol compatibility is a third-party client: the TOP SDK
bundled in PyPI's ``python-aliexpress-api`` (md5 signatures, system
parameters in the query string, param0 in a urlencoded body).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import cli, jpeg_bytes

from imagesearch.http.signing import canonical, signature
from imagesearch.vision.synthetic import product_image

aliexpress_sdk = pytest.importorskip("aliexpress_api.skd")
from aliexpress_api.skd.api.base import RestApi, TopException  # noqa: E402


class SearchV2(RestApi):
    """aliexpress.ds.image.searchV2 as an SDK user defines it."""

    def __init__(self, domain: str, port: int) -> None:
        RestApi.__init__(self, domain, port)
        self.param0 = None

    def getapiname(self) -> str:
        return "aliexpress.ds.image.searchV2"


def sdk_request(server: dict[str, Any], secret: str | None = None, **param0: Any) -> SearchV2:
    request = SearchV2("127.0.0.1", server["port"])
    request.set_app_info(aliexpress_sdk.appinfo(server["app_key"], secret or server["secret"]))
    request.param0 = json.dumps(param0)
    return request


def image_b64(seed: int) -> str:
    return base64.b64encode(jpeg_bytes(product_image(seed))).decode()


def test_signature_known_answer() -> None:
    params = {"foo": "1", "bar": "2", "foo_bar": "3", "foobar": "4"}
    assert canonical(params, "/test/api") == "/test/apibar2foo1foo_bar3foobar4"
    assert canonical(params) == "bar2foo1foo_bar3foobar4"
    # Fixed answers (HMAC-SHA256 / MD5 / HMAC-MD5 of the documented string), so a regression cannot hide.
    assert signature(params, "helloworld", "sha256", "/test/api") == "BD011266EC150C787B2201495AA2D6F326BB6910DE77E84EA28F5215DCD7FA5E"
    assert signature(params, "s", "md5") == "C06CD138CE8A548C071AB4ECEECE99CF"
    assert signature(params, "helloworld", "hmac") == "E687005F819D6F9E6ED085311C8ACC75"
    assert signature({**params, "sign": "ignored"}, "s", "md5") == "C06CD138CE8A548C071AB4ECEECE99CF"


def test_official_sdk_gets_products(server: dict[str, Any]) -> None:
    response = sdk_request(server, image_base64=image_b64(4), currency="EUR", lang="fr", sort_type="best").getResponse()
    body = response["aliexpress_ds_image_searchV2_response"]
    result = body["result"]
    assert result["ret"] is True and body["request_id"]
    assert result["data"]["products"][0]["product_id"] == "p004"
    assert result["data"]["products"][0]["similarity_score"] == "1.000"
    assert isinstance(result["data"]["products"][0]["shop_id"], int)


def test_official_sdk_with_session_token(server: dict[str, Any]) -> None:
    response = sdk_request(server, image_base64=image_b64(2)).getResponse(authrize=server["token"])
    assert response["aliexpress_ds_image_searchV2_response"]["result"]["ret"] is True
    with pytest.raises(TopException) as error:
        sdk_request(server, image_base64=image_b64(2)).getResponse(authrize="not-a-token")
    assert error.value.errorcode == "IllegalAccessToken"


def test_official_sdk_bad_secret_raises_top_exception(server: dict[str, Any]) -> None:
    with pytest.raises(TopException) as error:
        sdk_request(server, secret="0" * 32, image_base64=image_b64(1)).getResponse()
    assert error.value.errorcode == "IncompleteSignature"


def test_official_sdk_business_error(server: dict[str, Any]) -> None:
    response = sdk_request(server, image_base64=image_b64(1), currency="DOLLARS").getResponse()
    result = response["aliexpress_ds_image_searchV2_response"]["result"]
    assert result["ret"] is False and result["code"] == "InvalidCurrency" and "currency" in result["messages"]


def signed(server: dict[str, Any], sign_method: str = "sha256", **extra: str) -> dict[str, str]:
    params = {
        "method": "aliexpress.ds.image.searchV2",
        "app_key": server["app_key"],
        "timestamp": str(int(time.time() * 1000)),
        "sign_method": sign_method,
        "partner_id": "iop-sdk-python-20250910",
        "simplify": "false",
        "format": "json",
        **extra,
    }
    params["sign"] = signature(params, server["secret"], sign_method)
    return params


@pytest.mark.parametrize("sign_method", ["sha256", "md5", "hmac"])
def test_iop_style_form_post(server: dict[str, Any], sign_method: str) -> None:
    params = signed(server, sign_method, param0=json.dumps({"image_base64": image_b64(7), "page_size": 3}))
    body = httpx.post(f"{server['base']}/sync", data=params, timeout=30).json()
    result = body["aliexpress_ds_image_searchV2_response"]["result"]
    assert result["data"]["products"][0]["product_id"] == "p007" and result["pagination"]["page_size"] == 3


def test_get_with_query_string_and_legacy_timestamp(server: dict[str, Any]) -> None:
    legacy = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
    params = signed(server, "md5", param0=json.dumps({"image_base64": image_b64(3)}))
    params["timestamp"] = legacy
    params["sign"] = signature({k: v for k, v in params.items() if k != "sign"}, server["secret"], "md5")
    body = httpx.get(f"{server['base']}/sync", params=params, timeout=30).json()
    assert body["aliexpress_ds_image_searchV2_response"]["result"]["data"]["products"][0]["product_id"] == "p003"


def error_of(server: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """The TOP-shape error, after checking the IOP shape (top-level keys) in the same body says the same."""
    response = httpx.post(f"{server['base']}/sync", data=params, timeout=30)
    assert response.status_code == 200
    body = response.json()
    top = body["error_response"]
    assert (body["code"], body["type"], body["message"], body["request_id"]) == (top["code"], top["type"], top["msg"], top["request_id"])
    assert body["request_id"] == response.headers["X-Request-Id"]
    return top


class IopStyleClient:
    """A client that behaves as the official IOP Python SDK does (iop/base.py).

    Every parameter (system, business and ``sign``) goes in the form body of a
    POST, signed with HMAC-SHA256; the answer is read from the top-level
    ``code``, ``type``, ``message`` and ``request_id`` only (``code`` "0" or
    absent means success), never from ``error_response``.
    """

    def __init__(self, base: str, app_key: str, secret: str) -> None:
        self.url, self.app_key, self.secret = f"{base}/sync", app_key, secret

    def execute(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        system = {"app_key": self.app_key, "sign_method": "sha256", "timestamp": str(int(time.time() * 1000)),
                  "partner_id": "iop-sdk-python-20220609", "method": method, "simplify": "false", "format": "json"}
        everything = {**system, **params}
        everything["sign"] = signature(everything, self.secret, "sha256")
        body = httpx.post(self.url, data=everything, timeout=30).json()
        return {"type": body.get("type"), "code": body.get("code"), "message": body.get("message"),
                "request_id": body.get("request_id"), "body": body}


def test_iop_sdk_style_client_sees_gateway_errors(server: dict[str, Any]) -> None:
    wrong = IopStyleClient(server["base"], server["app_key"], "0" * 32)
    response = wrong.execute("aliexpress.ds.image.searchV2", {"param0": json.dumps({"image_base64": image_b64(1)})})
    assert response["code"] == "IncompleteSignature" and response["type"] == "ISV"
    assert response["message"] and response["request_id"]
    assert response["body"]["error_response"]["code"] == "IncompleteSignature"  # the TOP SDK's key, in the same body
    right = IopStyleClient(server["base"], server["app_key"], server["secret"])
    ok = right.execute("aliexpress.ds.image.searchV2", {"param0": json.dumps({"image_base64": image_b64(3), "page_size": 2})})
    assert ok["code"] == "0" and ok["request_id"] == ok["body"]["aliexpress_ds_image_searchV2_response"]["request_id"]
    assert ok["body"]["aliexpress_ds_image_searchV2_response"]["result"]["data"]["products"][0]["product_id"] == "p003"


def test_missing_parameter(server: dict[str, Any]) -> None:
    params = signed(server)
    del params["app_key"]
    error = error_of(server, params)
    assert error["code"] == "MissingParameter" and "app_key" in error["msg"] and error["type"] == "ISV" and error["request_id"]


def test_invalid_app_key(server: dict[str, Any]) -> None:
    params = signed(server)
    params["app_key"] = "999"
    assert error_of(server, params)["code"] == "InvalidAppKey"
    params["app_key"] = server["app_key"] + "9" * 5000
    assert error_of(server, params)["code"] == "InvalidAppKey"


@pytest.mark.parametrize("field", ["sign", "timestamp"])
def test_strange_signatures_and_timestamps_are_refused_not_crashed(server: dict[str, Any], field: str) -> None:
    params = signed(server)
    params[field] = "é" * 20 if field == "sign" else "9" * 5000
    assert error_of(server, params)["code"] == ("IncompleteSignature" if field == "sign" else "InvalidTimestamp")


def test_replay_outside_the_window_is_refused(server: dict[str, Any]) -> None:
    params = signed(server)
    params["timestamp"] = str(int((time.time() - 3600) * 1000))
    params["sign"] = signature({k: v for k, v in params.items() if k != "sign"}, server["secret"], "sha256")
    assert error_of(server, params)["code"] == "InvalidTimestamp"


def test_tampered_parameter_breaks_the_signature(server: dict[str, Any]) -> None:
    params = signed(server, param0=json.dumps({"image_base64": image_b64(1)}))
    params["param0"] = json.dumps({"image_base64": image_b64(2)})
    assert error_of(server, params)["code"] == "IncompleteSignature"


def test_unknown_api(server: dict[str, Any]) -> None:
    params = signed(server, method="aliexpress.ds.order.create")
    assert error_of(server, params)["code"] == "InvalidApiPath"


def test_body_cap(server: dict[str, Any]) -> None:
    params = signed(server, param0="x" * 2_100_000)
    assert error_of(server, params)["code"] == "RequestEntityTooLarge"


@pytest.mark.parametrize("param0", ["{not json", "[" * 10_000 + "]" * 10_000, '"a string"', '{"search_type": "similar", "sort": "price"}'])
def test_bad_param0_json_is_a_business_error(server: dict[str, Any], param0: str) -> None:
    body = httpx.post(f"{server['base']}/sync", data=signed(server, param0=param0), timeout=30).json()
    result = body["aliexpress_ds_image_searchV2_response"]["result"]
    expected = "UnknownParameter" if "sort" in param0 else "InvalidParam0"
    assert result["ret"] is False and result["code"] == expected and result["messages"]


def test_catalog_change_is_visible_without_restart(server: dict[str, Any], model_cache: Path) -> None:
    cli(server["data_dir"], model_cache, "delete", "p005")
    params = signed(server, param0=json.dumps({"image_base64": image_b64(5), "search_type": "same"}))
    result = httpx.post(f"{server['base']}/sync", data=params, timeout=30).json()["aliexpress_ds_image_searchV2_response"]["result"]
    assert "p005" not in [product["product_id"] for product in result["data"]["products"]]


def test_legacy_image_search_with_multipart_file(server: dict[str, Any]) -> None:
    params = signed(server, method="aliexpress.ds.image.search", target_currency="JPY", product_cnt="5", shpt_to="US")
    files = {"image_file_bytes": ("q.jpg", jpeg_bytes(product_image(6)), "image/jpeg")}  # file parts are not signed
    body = httpx.post(f"{server['base']}/sync", data=params, files=files, timeout=30).json()
    data = body["aliexpress_ds_image_search_response"]["data"]
    products = data["products"]["traffic_image_product_d_t_o"]
    assert products and products[0]["target_sale_price_currency"] == "JPY" and products[0]["discount"].endswith("%")
    assert len(products) <= 5 and data["total_record_count"] >= len(products)


def test_thumbnails_and_request_ids(server: dict[str, Any]) -> None:
    params = signed(server, param0=json.dumps({"image_base64": image_b64(8)}))
    response = httpx.post(f"{server['base']}/sync", data=params, timeout=30)
    assert response.headers["X-Request-Id"] == response.json()["aliexpress_ds_image_searchV2_response"]["request_id"]
    url = response.json()["aliexpress_ds_image_searchV2_response"]["result"]["data"]["products"][0]["image_url"]
    assert url.startswith(f"{server['base']}/thumbnails/")  # the address actually served, not a default port
    thumb = httpx.get(url, timeout=10)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg" and "immutable" in thumb.headers["cache-control"]
    for missing in ("999999", "9223372036854775808", "abc", "%D9%A1"):
        gone = httpx.get(f"{server['base']}/thumbnails/{missing}.jpg", timeout=10)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "NotFound", missing


def test_rate_limit_reached_and_recovered(server: dict[str, Any], model_cache: Path) -> None:
    slow = cli(server["data_dir"], model_cache, "apps", "create", "slow shop", "--rate-limit", "1")
    app = {**server, "app_key": slow["app_key"], "secret": slow["secret"]}
    codes = []
    for _ in range(3):
        body = httpx.post(f"{server['base']}/sync", data=signed(app, method="aliexpress.nothing"), timeout=30).json()
        codes.append(body["error_response"]["code"])
    assert codes[0] == "InvalidApiPath" and "ApiCallLimit" in codes[1:]
    limited = next(code for code in codes if code == "ApiCallLimit")
    assert limited
    time.sleep(1.1)
    body = httpx.post(f"{server['base']}/sync", data=signed(app, method="aliexpress.nothing"), timeout=30).json()
    assert body["error_response"]["code"] == "InvalidApiPath"


def test_revoked_app_is_refused_within_the_cache_time(server: dict[str, Any], model_cache: Path) -> None:
    from imagesearch.access.store import APP_CACHE_SECONDS

    gone = cli(server["data_dir"], model_cache, "apps", "create", "gone shop")
    app = {**server, "app_key": gone["app_key"], "secret": gone["secret"]}
    assert error_of(app, signed(app, method="aliexpress.nothing"))["code"] == "InvalidApiPath"  # known, and now cached
    cli(server["data_dir"], model_cache, "apps", "revoke", gone["app_key"])
    time.sleep(APP_CACHE_SECONDS + 0.1)
    assert error_of(app, signed(app))["code"] == "InvalidAppKey"


def test_insufficient_permission(server: dict[str, Any], model_cache: Path) -> None:
    legacy_only = cli(server["data_dir"], model_cache, "apps", "create", "legacy shop", "--method", "aliexpress.ds.image.search")
    app = {**server, "app_key": legacy_only["app_key"], "secret": legacy_only["secret"]}
    assert error_of(app, signed(app, param0=json.dumps({"image_base64": image_b64(1)})))["code"] == "InsufficientPermission"


@pytest.mark.parametrize(
    ("param0", "code"),
    [
        ({}, "MissingImage"),
        ({"image_base64": "%%%"}, "InvalidBase64"),
        ({"image_base64": base64.b64encode(b"plain text, not a picture").decode()}, "InvalidImage"),
        ({"image_base64": "A" * 1_400_000}, "ImageTooLarge"),
        ({"image_base64": "iVBORw0KGgo=", "currency": "ZZZ"}, "InvalidCurrency"),
        ({"image_base64": "iVBORw0KGgo=", "lang": "klingon"}, "InvalidLanguage"),
        ({"image_base64": "iVBORw0KGgo=", "ship_to": "XX"}, "InvalidShipTo"),
        ({"image_base64": "iVBORw0KGgo=", "sort_type": "cheap"}, "InvalidSortType"),
        ({"image_base64": "iVBORw0KGgo=", "sort_order": "up"}, "InvalidSortOrder"),
        ({"image_base64": "iVBORw0KGgo=", "search_type": "exact"}, "InvalidSearchType"),
        ({"image_base64": "iVBORw0KGgo=", "page_size": 500}, "InvalidPageSize"),
        ({"image_base64": "iVBORw0KGgo=", "page_no": 0}, "InvalidPageNo"),
        ({"start_row_key": "nope"}, "InvalidStartRowKey"),
        ({"start_row_key": "0" * 32 + ":2"}, "ExpiredStartRowKey"),
    ],
)
def test_business_errors_through_the_gateway(server: dict[str, Any], param0: dict[str, Any], code: str) -> None:
    body = httpx.post(f"{server['base']}/sync", data=signed(server, param0=json.dumps(param0)), timeout=30).json()
    result = body["aliexpress_ds_image_searchV2_response"]["result"]
    assert result["ret"] is False and result["code"] == code and result["messages"]
