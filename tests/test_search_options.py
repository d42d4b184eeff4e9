"""The anchors' search options: category and score filters, a caller's region, the located main subject and
per-product groups, "more like this product"."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import CATALOG_SIZE, jpeg_bytes
from PIL import Image

from imagesearch.errors import RequestError
from imagesearch.search.engine import SearchEngine
from imagesearch.search.params import SIMILAR_FIELDS, V1_FIELDS, parse_params, parse_region
from imagesearch.search.presentation import present_page
from imagesearch.search.searchv2 import render
from imagesearch.vision.synthetic import product_image


def params(engine: SearchEngine, image: Image.Image | None = None, **fields: Any) -> Any:
    raw = {**({"image_base64": base64.b64encode(jpeg_bytes(image)).decode()} if image is not None else {}), **fields}
    return parse_params(raw, engine.rates(), "USD", 10_000_000, fields=V1_FIELDS)


def product_ids(engine: SearchEngine, page: Any) -> list[str]:
    return [item.product.product_id for item in page.items]


def scene(product: Image.Image, at: tuple[int, int], size: tuple[int, int] = (900, 700), seed: int = 1) -> Image.Image:
    """``product`` pasted into a larger picture full of other things (clutter: other products)."""
    canvas = Image.new("RGB", size, (120, 110, 100))
    rng = np.random.default_rng(seed)
    for index in range(6):
        other = product_image(5000 + seed * 10 + index, (260, 260))
        canvas.paste(other, (int(rng.integers(0, size[0] - 260)), int(rng.integers(0, size[1] - 260))))
    canvas.paste(product, at)
    return canvas


@pytest.mark.parametrize(("value", "expected"), [
    ([10, 20, 300, 200], (10.0, 20.0, 300.0, 200.0)),
    ("0.1,0.2,0.5,0.5", (0.1, 0.2, 0.5, 0.5)),
    ([0, 0, 1, 1], (0.0, 0.0, 1.0, 1.0)),
])
def test_regions_are_pixels_or_fractions(value: Any, expected: tuple[float, ...]) -> None:
    assert parse_region(value) == expected


@pytest.mark.parametrize("value", [[1, 2, 3], "a,b,c,d", [0, 0, 0, 10], [-1, 0, 10, 10], {"x": 1}, [True, 0, 1, 1]])
def test_bad_regions_are_refused(value: Any) -> None:
    with pytest.raises(RequestError) as error:
        parse_region(value)
    assert error.value.code == "InvalidRegion"


@pytest.mark.parametrize(("fields", "code"), [
    ({"min_score": 1.5}, "InvalidMinScore"), ({"min_score": "high"}, "InvalidMinScore"), ({"min_score": "nan"}, "InvalidMinScore"),
    ({"min_score": True}, "InvalidMinScore"), ({"category_id": "a b"}, "InvalidCategoryId"), ({"category_id": ["15"]}, "InvalidCategoryId"),
    ({"category_id": "x" * 65}, "InvalidCategoryId"),
])
def test_bad_filters_get_their_own_codes(engine: SearchEngine, fields: dict[str, Any], code: str) -> None:
    with pytest.raises(RequestError) as error:
        params(engine, product_image(1), **fields)
    assert error.value.code == code


def test_the_category_filter_is_applied_inside_the_search(engine: SearchEngine) -> None:
    """Products are in second-level category 100 + index % 3: a query of product 4 (category 101) filtered to 102
    gets only category-102 products; the first-level id matches them all."""
    query = product_image(4)
    assert product_ids(engine, engine.search(params(engine, query)))[0] == "p004"
    only = engine.search(params(engine, query, category_id="102", page_size=50))
    assert only.items and {item.product.second_category.id for item in only.items if item.product.second_category} == {"102"}
    assert all(int(product_id[1:]) % 3 == 2 for product_id in product_ids(engine, only))
    everything = engine.search(params(engine, query, category_id=15, page_size=50))
    assert product_ids(engine, everything)[0] == "p004" and everything.total_count == engine.search(params(engine, query)).total_count
    assert engine.search(params(engine, query, category_id="no-such-category")).total_count == 0


def test_min_score_replaces_the_floor(engine: SearchEngine) -> None:
    query = product_image(4)
    strict = engine.search(params(engine, query, min_score=0.97, page_size=50))
    assert product_ids(engine, strict) == ["p004"] and strict.items[0].score >= 0.97
    loose = engine.search(params(engine, query, min_score=0, page_size=50))
    assert loose.total_count >= engine.search(params(engine, query)).total_count
    same = engine.search(params(engine, query, search_type="same", min_score=0.999))
    assert all(item.score >= 0.999 for item in same.items)


def test_a_region_finds_the_product_in_a_cluttered_photo(engine: SearchEngine) -> None:
    product = product_image(9)
    photo = scene(product, (420, 240))
    box = [420, 240, product.width, product.height]
    found = engine.search(params(engine, photo, region=box))
    assert product_ids(engine, found)[0] == "p009" and found.region == (420, 240, 320, 320)
    fractions = [420 / 900, 240 / 700, 320 / 900, 320 / 700]
    assert product_ids(engine, engine.search(params(engine, photo, region=fractions)))[0] == "p009"
    clipped = engine.search(params(engine, photo, region=[420, 240, 5000, 5000]))  # clipped to the photo
    assert clipped.region == (420, 240, 480, 460)
    assert engine.search(params(engine, photo, region=[0.5, 0.5, 0.8, 0.8])).region == (450, 350, 450, 350)
    with pytest.raises(RequestError, match="outside the photo"):
        engine.search(params(engine, photo, region=[1000, 10, 50, 50]))
    with pytest.raises(RequestError, match="at least 8 pixels"):
        engine.search(params(engine, photo, region=[10, 10, 4, 4]))


def test_a_region_of_a_photo_stored_sideways_is_a_box_of_the_upright_photo(engine: SearchEngine) -> None:
    """Phones store portrait photos sideways with an EXIF orientation: the caller's box (drawn on the photo as
    shown, upright) is cut from the upright photo, and the boxes answered are in its pixels."""
    import io

    product = product_image(9)
    photo = scene(product, (300, 520), size=(700, 900))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    stored = io.BytesIO()
    photo.transpose(Image.Transpose.ROTATE_90).save(stored, format="JPEG", quality=92, exif=exif)
    raw = {"image_base64": base64.b64encode(stored.getvalue()).decode(), "region": [300, 520, 320, 320]}
    found = engine.search(parse_params(raw, engine.rates(), "USD", 10_000_000, fields=V1_FIELDS))
    assert product_ids(engine, found)[0] == "p009" and found.region == (300, 520, 320, 320)
    raw["region"] = [0.5, 0.5, 0.8, 0.8]
    assert engine.search(parse_params(raw, engine.rates(), "USD", 10_000_000, fields=V1_FIELDS)).region == (350, 450, 350, 450)


def test_more_like_this_product_leaves_the_product_out(engine: SearchEngine) -> None:
    view = engine.parts.catalog.product_by_id("p004")
    assert view is not None
    page = engine.similar_to(view, parse_params({"page_size": "50"}, engine.rates(), "USD", 10_000_000, fields=SIMILAR_FIELDS))
    found = product_ids(engine, page)
    assert "p004" not in found and len(found) == page.total_count <= CATALOG_SIZE - 1
    filtered = engine.similar_to(view, parse_params({"category_id": "102"}, engine.rates(), "USD", 10_000_000, fields=SIMILAR_FIELDS))
    assert all(int(product_id[1:]) % 3 == 2 for product_id in product_ids(engine, filtered))


def test_options_over_http(server: dict[str, Any]) -> None:
    base = server["base"]
    photo = scene(product_image(3), (100, 300))
    files = {"file": ("scene.jpg", jpeg_bytes(photo), "image/jpeg")}
    body = httpx.post(f"{base}/v1/search", files=files, data={"region": "100,300,320,320", "category_id": "15"}, timeout=30).json()
    assert body["products"][0]["product_id"] == "p003" and body["region"] == {"x": 100, "y": 300, "width": 320, "height": 320}
    refused = httpx.post(f"{base}/v1/search", json={"image_base64": base64.b64encode(jpeg_bytes(photo)).decode(), "min_score": 2}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidMinScore"
    similar = httpx.get(f"{base}/v1/products/p003/similar", params={"page_size": "5", "currency": "EUR"}, timeout=30).json()
    assert similar["products"] and all(item["product_id"] != "p003" for item in similar["products"])
    assert all(item["price"]["currency"] == "EUR" for item in similar["products"])
    for query, code, status in (({"search_type": "same"}, "UnknownParameter", 400), ({"min_score": "x"}, "InvalidMinScore", 400)):
        answer = httpx.get(f"{base}/v1/products/p003/similar", params=query, timeout=30)
        assert answer.status_code == status and answer.json()["error"]["code"] == code
    assert httpx.get(f"{base}/v1/products/nope/similar", timeout=30).json()["error"]["code"] == "ProductNotFound"
    schema = httpx.get(f"{base}/openapi.json", timeout=10).json()
    search_fields = schema["paths"]["/v1/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"region", "category_id", "min_score", "crop", "groups"} <= set(search_fields)
    assert "/v1/products/{product_id}/similar" in schema["paths"]


def test_without_the_region_the_clutter_wins(engine: SearchEngine) -> None:
    """The check above is not trivial: the whole cluttered photo does not find the product first."""
    photo = scene(product_image(9), (420, 240))
    assert product_ids(engine, engine.search(params(engine, photo)))[:1] != ["p009"]


def test_collapse_shows_one_item_sold_by_several_shops_with_its_offers(tmp_path: Any, make_settings: Any) -> None:
    """Three shops sell one item (the supplier's photo, once re-encoded smaller); collapsed, it is one result shown as its
    cheapest listing with every listing as an offer, cheapest first; not collapsed, three results."""
    import json

    from conftest import product_record

    from imagesearch.http.native import page_json
    from imagesearch.ingest.importer import import_file
    from imagesearch.search.presentation import present_page
    from imagesearch.search.searchv2 import render
    from imagesearch.workspace import Workspace

    photo = product_image(50)
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(photo))
    (tmp_path / "a-small.jpg").write_bytes(jpeg_bytes(photo.resize((280, 280)), quality=75))
    for seed in (51, 52, 53):
        (tmp_path / f"{seed}.jpg").write_bytes(jpeg_bytes(product_image(seed)))
    usd = {"currency": "USD"}
    rows = [
        product_record(1, ["a.jpg"], shop_id=11, price={"sale": "10.00", **usd}),
        product_record(2, ["a.jpg"], shop_id=12, price={"sale": "8.50", **usd}),
        product_record(3, ["a-small.jpg"], shop_id=13, price={"sale": "12.00", **usd}),
        *(product_record(seed, [f"{seed}.jpg"], price={"sale": "9.00", **usd}) for seed in (51, 52, 53)),
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    workspace = Workspace(make_settings(tmp_path / "data"))
    import_file(workspace, tmp_path / "c.jsonl")
    engine = SearchEngine(workspace)
    try:
        listed = engine.search(params(engine, photo, page_size=10))
        assert set(product_ids(engine, listed)[:3]) == {"p001", "p002", "p003"}
        collapsed = engine.search(params(engine, photo, collapse=True, page_size=10))
        first = collapsed.items[0]
        assert first.product.product_id == "p002" and [offer.product_id for offer in first.offers] == ["p002", "p001", "p003"]
        assert first.score == listed.items[0].score and collapsed.total_count == listed.total_count - 2
        assert all(not item.offers for item in collapsed.items[1:])
        paged = engine.search(params(engine, photo, collapse=True, page_size=1))
        again = engine.search(parse_params({"start_row_key": paged.next_start_row_key.rsplit(":", 1)[0] + ":1"}, engine.rates(), "USD", 10**7))
        assert [offer.product_id for offer in again.items[0].offers] == ["p002", "p001", "p003"]  # kept with the paging cursor
        presented = present_page(collapsed, "en", "http://127.0.0.1")
        v1 = page_json(collapsed, presented, "http://127.0.0.1", "en")["products"][0]
        assert [offer["price"]["sale"] for offer in v1["offers"]] == ["8.50", "10.00", "12.00"]
        v2 = render(collapsed, presented)["data"]["products"][0]
        assert [offer["shop_id"] for offer in v2["offers"]] == [12, 11, 13]
        by_price = engine.search(params(engine, photo, collapse="true", sort_type="price"))
        assert [item.product.product_id for item in by_price.items].count("p001") == 0  # p001 is an offer of p002's item
        with pytest.raises(RequestError) as error:
            params(engine, photo, collapse="maybe")
        assert error.value.code == "InvalidParameterType"
    finally:
        engine.close()
        workspace.close()


def test_categories_are_listed_with_names_and_counts(server: dict[str, Any]) -> None:
    listed = httpx.get(f"{server['base']}/v1/categories", params={"lang": "fr"}, timeout=10).json()["categories"]
    first = [category for category in listed if category["level"] == 1]
    assert first == [{"id": "15", "level": 1, "parent_id": None, "name": "Maison et jardin", "products": first[0]["products"]}]
    second = {category["id"]: category for category in listed if category["level"] == 2}
    assert set(second) == {"100", "101", "102"} and all(category["parent_id"] == "15" for category in second.values())
    assert sum(category["products"] for category in second.values()) == first[0]["products"]
    assert httpx.get(f"{server['base']}/v1/categories", params={"lang": "klingon"}, timeout=10).json()["error"]["code"] == "InvalidLanguage"


@pytest.mark.parametrize("fields", [{"min_score": 10**400}, {"region": [10**400, 0, 1, 1]}, {"region": ["1e999", 0, 5, 5]}])
def test_numbers_too_large_for_a_float_are_refused_not_crashed(engine: SearchEngine, fields: dict[str, Any]) -> None:
    with pytest.raises(RequestError) as error:
        params(engine, product_image(1), **fields)
    assert error.value.code in ("InvalidMinScore", "InvalidRegion")


def two_products(background: tuple[int, int, int] = (120, 110, 100)) -> Image.Image:
    """Products 3 and 9 side by side in one photo, as a shopper photographs two things on a table."""
    photo = Image.new("RGB", (1000, 500), background)
    photo.paste(product_image(3), (60, 90))
    photo.paste(product_image(9), (620, 90))
    return photo


def overlaps(box: tuple[int, int, int, int], truth: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    width = min(box[0] + box[2], truth[0] + truth[2]) - max(box[0], truth[0])
    height = min(box[1] + box[3], truth[1] + truth[3]) - max(box[1], truth[1])
    inter = max(0, width) * max(0, height)
    return inter / (box[2] * box[3] + truth[2] * truth[3] - inter)


@pytest.mark.parametrize("background", [(120, 110, 100), (235, 235, 235)])
def test_groups_answer_each_product_in_the_photo(
    engine: SearchEngine, background: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = []
    embed = engine.parts.embedder.embed
    monkeypatch.setattr(engine.parts.embedder, "embed", lambda images: batches.append(len(images)) or embed(images))
    page = engine.search(params(engine, two_products(background), groups=True, page_size=3))
    assert len(page.groups) >= 2 and page.subject == page.groups[0].region and page.region is None
    assert batches == [1 + len(page.groups)]  # the photo and every group's box in one network run
    found = {}
    for group in page.groups:
        assert group.region is not None and group.page_no == 1 and len(group.items) <= 3
        found[product_ids(engine, group)[0]] = group.region
    assert {"p003", "p009"} <= set(found)
    assert overlaps(found["p003"], (60, 90, 320, 320)) > 0.5 and overlaps(found["p009"], (620, 90, 320, 320)) > 0.5
    assert "locate_ms" in page.timings


def test_crop_searches_the_located_main_subject(engine: SearchEngine) -> None:
    """A product off-centre in a larger empty photo: the located box holds it, and searching it finds the product."""
    photo = Image.new("RGB", (1000, 800), (200, 196, 190))
    photo.paste(product_image(5), (560, 380))
    page = engine.search(params(engine, photo, crop=True))
    assert page.region == page.subject and page.subject is not None
    x, y, width, height = page.subject
    inside = max(0, min(x + width, 880) - max(x, 560)) * max(0, min(y + height, 700) - max(y, 380))
    assert inside >= 0.9 * 320 * 320 and width * height <= 0.5 * 1000 * 800  # the product, not the whole photo
    assert product_ids(engine, page)[0] == "p005"
    x, y, width, height = page.subject
    assert render(page, present_page(page, "en", "http://127.0.0.1"))["subject"] == {"x": x, "y": y, "width": width, "height": height}
    assert engine.search(params(engine, photo, crop=False)).subject is None  # (no crop asked: nothing located)


@pytest.mark.parametrize(("fields", "param"), [
    ({"crop": True, "region": [0, 0, 10, 10]}, "crop"), ({"groups": "true", "region": "0,0,10,10"}, "groups"),
    ({"groups": True, "text": "a red dress"}, "groups"),
])
def test_subject_options_that_contradict_the_query_are_refused(engine: SearchEngine, fields: dict[str, Any], param: str) -> None:
    raw = {**({"image_base64": base64.b64encode(jpeg_bytes(product_image(1))).decode()} if "text" not in fields else {}), **fields}
    with pytest.raises(RequestError) as error:
        parse_params(raw, engine.rates(), "USD", 10_000_000, fields=V1_FIELDS)
    assert error.value.code == "InvalidSubjectOption" and error.value.param == param


def test_groups_over_http_and_the_subject_in_search_v2(server: dict[str, Any]) -> None:
    base = server["base"]
    files = {"file": ("two.jpg", jpeg_bytes(two_products()), "image/jpeg")}
    body = httpx.post(f"{base}/v1/search", files=files, data={"groups": "true", "page_size": "2"}, timeout=60).json()
    assert body["subject"] == body["groups"][0]["region"] and len(body["groups"]) >= 2
    assert {group["products"][0]["product_id"] for group in body["groups"]} >= {"p003", "p009"}
    assert all(set(group["region"]) == {"x", "y", "width", "height"} and group["page"]["number"] == 1 for group in body["groups"])
    refused = httpx.post(f"{base}/v1/search", files=files, data={"groups": "maybe"}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidParameterType"


def test_located_boxes_are_in_the_original_photo_s_pixels(engine: SearchEngine) -> None:
    """A large JPEG is decoded reduced (a draft): the boxes answered are scaled back to the photo the caller sent."""
    photo = two_products().resize((3000, 1500))
    page = engine.search(params(engine, photo, groups=True, crop=True))
    regions = {product_ids(engine, group)[0]: group.region for group in page.groups}
    assert overlaps(regions["p003"], (180, 270, 960, 960)) > 0.5 and overlaps(regions["p009"], (1860, 270, 960, 960)) > 0.5
    assert page.region == page.subject == page.groups[0].region
    # The main subject was the query: its group is that same search (its vector reused, not embedded again).
    assert [item.product.pk for item in page.groups[0].items] == [item.product.pk for item in page.items][: len(page.groups[0].items)]


@pytest.mark.parametrize(("fields", "locates"), [
    ({}, 1),  # a whole photo: its subject is located for the verification, if a candidate needs verifying
    ({"crop": True}, 1),  # the located box is the subject: not located again inside it
    ({"region": [200, 110, 360, 360]}, 0),  # the caller's box is the subject
    ({"groups": True}, 1),  # the photo's boxes serve the main search and each group's
])
def test_same_locates_the_photo_at_most_once(engine: SearchEngine, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], locates: int) -> None:
    """``same`` keeps the query's keypoints to its product; where the search knows the product's box already, it
    is not found a second time (a network pass each)."""
    photo = Image.new("RGB", (600, 500), (200, 196, 190))
    photo.paste(product_image(5), (220, 130))
    calls = []
    locate = engine.locate
    monkeypatch.setattr(engine, "locate", lambda image: calls.append(image.size) or locate(image))
    page = engine.search(params(engine, photo, search_type="same", **fields))
    assert len(calls) <= locates and (page.subject is not None) == bool(fields.get("crop") or fields.get("groups"))
    assert product_ids(engine, page)[:1] == ["p005"]
    for group in page.groups:
        assert product_ids(engine, group)[:1] in (["p005"], [])
