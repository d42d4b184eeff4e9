"""The web page in real headless Chromium (Debian's), driven by Playwright.

Skipped, with the reason, where Chromium or Playwright is missing.  Screenshots
of the results page and the product view, at desktop and phone widths, are
saved under ``test-artifacts/`` in the repository root.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import jpeg_bytes, running_server, write_catalog

from imagesearch.config import load_settings
from imagesearch.ingest.importer import import_file
from imagesearch.vision.synthetic import product_image
from imagesearch.workspace import Workspace

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright (pip install playwright) is not installed")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("web")
    workspace = Workspace(load_settings(folder / "data", environ={}).with_overrides(model_cache_dir=str(model_cache)))
    import_file(workspace, write_catalog(folder, 30))
    workspace.close()
    (folder / "query.jpg").write_bytes(jpeg_bytes(product_image(4).resize((280, 280))))
    (folder / "notes.txt").write_text("this is not a picture")
    with running_server(folder / "data", model_cache) as (base, _):
        yield {"base": base, "query": folder / "query.jpg", "not_image": folder / "notes.txt"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(params=list(WIDTHS))
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab at 1280 px (desktop) or 390 px (phone); ``page.width_name`` says which."""
    phone = request.param == "phone"
    context = browser.new_context(viewport=WIDTHS[request.param], device_scale_factor=2 if phone else 1, is_mobile=phone)
    tab = context.new_page()
    tab.width_name = request.param
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))  # an exception in the page's script fails the test
    yield tab
    context.close()
    assert not errors, errors


def upload(page: Any, site: dict[str, Any], path: Path) -> None:
    page.goto(site["base"] + "/")
    page.wait_for_selector("#currency option", state="attached")
    page.set_input_files("#file", str(path))


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{page.width_name}.png"), full_page=True)


def no_horizontal_overflow(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def focused_id(page: Any) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def test_the_empty_page_is_clean(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/")
    page.wait_for_selector("#currency option", state="attached")
    assert not page.locator("#query-preview").is_visible()  # no broken-image icon
    assert not page.locator("#pager").is_visible() and not page.locator("#next").is_visible()
    assert not page.locator("#error").is_visible() and page.locator("#status").inner_text() == ""
    assert page.evaluate("document.querySelector('link[rel=icon]').href").endswith("/static/favicon.svg")
    assert not page.locator("#text-query").is_visible()  # the default model reads photos only
    # A phone offers its photo library as well as the camera (``capture`` would open the camera only).
    assert page.get_attribute("#file", "capture") is None and ".heic" in page.get_attribute("#file", "accept")
    shot(page, "empty")


def test_upload_finds_the_product_and_says_how_many(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    first = page.locator("#results .card").first
    assert "Product 4" in first.locator("h3").inner_text() and "Similarity" in first.inner_text()
    status = page.locator("#status").inner_text()
    assert status.startswith("Showing 1–12 of ") and status.endswith("matches.")
    assert page.locator("#pager").is_visible() and "Page 1 of" in page.locator("#page-info").inner_text()
    assert no_horizontal_overflow(page)
    for card in page.locator("#results .card").all():  # the discount badge is never clipped
        badge = card.locator(".badge")
        if badge.count():
            inner, outer = badge.bounding_box(), card.bounding_box()
            assert inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
    shot(page, "results")


def test_why_it_matched_replaces_the_results_in_the_chosen_language(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    page.select_option("#lang", "fr")
    page.wait_for_function("document.querySelector('#results h3') && document.querySelector('#results h3').textContent.includes('Produit')")
    page.locator("#results .card").first.locator("text=Why it matched").click()
    page.wait_for_selector(".images li p")
    assert not page.locator("#search-view").is_visible() and page.locator("#product-view").is_visible()
    assert page.locator("#product-title").inner_text() == "Produit 4" and focused_id(page) == "product-title"
    assert page.locator("#product-title").bounding_box()["y"] < 200  # on screen, not below the results
    assert "best match" in page.locator(".images").inner_text()
    assert "Product 4" in page.locator("#product-body table").inner_text()  # titles in every language
    assert no_horizontal_overflow(page)
    shot(page, "product")
    page.click("#back")
    page.wait_for_selector("#search-view:not([hidden])")
    assert page.locator("#results .card").count() == 12


def test_prices_are_formatted_for_the_locale(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    page.select_option("#currency", "JPY")
    page.wait_for_function("document.querySelector('.price') && document.querySelector('.price').textContent.includes('¥')")
    assert "JPY" not in page.locator(".price").first.inner_text()  # "¥2,323", not "2323 JPY"
    page.select_option("#lang", "fr")
    page.select_option("#currency", "EUR")
    page.wait_for_function("document.querySelector('.price') && /\\d,\\d\\d\\s€/.test(document.querySelector('.price').textContent)")


def test_paging_forward_and_back(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    first_page = page.locator("#results h3").all_inner_texts()
    page.click("#next")
    page.wait_for_function("document.getElementById('page-info').textContent.startsWith('Page 2')")
    second_page = page.locator("#results h3").all_inner_texts()
    assert second_page and not set(second_page) & set(first_page)
    assert page.locator("#status").inner_text().startswith("Showing 13–")
    page.click("#prev")
    page.wait_for_function("document.getElementById('page-info').textContent.startsWith('Page 1')")
    assert page.locator("#results h3").all_inner_texts() == first_page


def test_an_error_clears_stale_results_and_pager(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    page.set_input_files("#file", str(site["not_image"]))
    page.wait_for_selector("#error:not([hidden])")
    message = page.locator("#error").inner_text()
    assert "not an image" in message and "{" not in message
    assert page.locator("#results .card").count() == 0 and not page.locator("#pager").is_visible()
    assert page.locator("#status").inner_text() == ""


def test_catalog_overview_replaces_the_search_view(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/")
    page.wait_for_selector("#currency option", state="attached")
    page.click("header nav >> text=Catalog")
    page.wait_for_selector("#catalog-body dd")
    assert not page.locator("#search-view").is_visible() and focused_id(page) == "catalog-title"
    assert page.locator("#catalog-title").bounding_box()["y"] < 200
    text = page.locator("#catalog-body").inner_text()
    assert "30" in text and "efficientnet-lite0" in text and "flat" in text
    assert no_horizontal_overflow(page)
    shot(page, "catalog")


def test_docs_page_renders_the_api(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path=\"/v1/search\"]", timeout=15_000)
    assert "Unable to render" not in page.content()


def test_a_box_dragged_on_the_photo_searches_that_part(page: Any, site: dict[str, Any], tmp_path: Path) -> None:
    """A cluttered photo: the whole of it does not find product 4 first; a box dragged around it does, and
    "Search the whole photo" goes back."""
    from PIL import Image

    scene = Image.new("RGB", (960, 640), (110, 120, 130))
    for index, spot in enumerate([(340, 40), (660, 30), (30, 330), (650, 340), (340, 360)]):
        scene.paste(product_image(7000 + index, (280, 280)), spot)
    scene.paste(product_image(4, (280, 280)), (20, 20))  # in a corner: the whole photo's middle is the others
    path = tmp_path / "shelf.jpg"
    path.write_bytes(jpeg_bytes(scene))
    upload(page, site, path)
    page.wait_for_selector("#results .card")
    whole = page.locator("#results .card h3").first.inner_text()
    image = page.locator("#query-preview").bounding_box()
    sx, sy = image["width"] / 960, image["height"] / 640
    with page.expect_response(lambda response: response.url.endswith("/v1/search")) as answer:
        page.mouse.move(image["x"] + 25 * sx, image["y"] + 25 * sy)
        page.mouse.down()
        page.mouse.move(image["x"] + 180 * sx, image["y"] + 180 * sy, steps=5)
        page.mouse.move(image["x"] + 295 * sx, image["y"] + 295 * sy, steps=5)
        page.mouse.up()
    body = answer.value.json()
    assert "Product 4" not in whole and body["products"][0]["title"] == "Product 4"
    assert abs(body["region"]["x"] - 25) < 12 and abs(body["region"]["width"] - 270) < 12
    page.wait_for_function("document.querySelector('#results .card h3').innerText.includes('Product 4')")
    assert page.locator("#region-box").is_visible() and "box" in page.locator("#region-help").inner_text()
    shot(page, "region")
    page.click("#whole-photo")
    page.wait_for_function("document.getElementById('region-box').hidden")


def test_find_each_product_offers_a_box_per_product(page: Any, site: dict[str, Any], tmp_path: Path) -> None:
    """Two products side by side: "Find each product" draws a numbered box on each and shows the main one's
    matches at once; choosing another box shows its matches, sent in the same answer (no second request)."""
    from PIL import Image

    photo = Image.new("RGB", (1000, 500), (120, 110, 100))
    photo.paste(product_image(3), (60, 90))
    photo.paste(product_image(9), (620, 90))
    path = tmp_path / "two.jpg"
    path.write_bytes(jpeg_bytes(photo))
    upload(page, site, path)
    page.wait_for_selector("#results .card")
    with page.expect_response(lambda response: response.url.endswith("/v1/search")) as answer:
        page.click("#find-products")
    groups = answer.value.json()["groups"]
    assert len(groups) >= 2
    page.wait_for_selector(".found-box.active")
    assert page.locator(".found-box").count() == len(groups) and "choose another box" in page.locator("#status").inner_text()
    page.wait_for_function(f"document.querySelector('#results .card h3').innerText === {groups[0]['products'][0]['title']!r}")
    image = page.locator("#query-preview").bounding_box()
    boxes = [page.locator(".found-box").nth(index).bounding_box() for index in range(len(groups))]
    right = max(range(len(groups)), key=lambda index: boxes[index]["x"])
    assert boxes[right]["x"] > image["x"] + image["width"] * 0.45  # a box over the product on the right
    assert groups[right]["products"][0]["product_id"] == "p009" and groups[right]["region"]["x"] > 450
    shot(page, "found")
    searches: list[str] = []
    page.on("request", lambda request: searches.append(request.url) if request.url.endswith("/v1/search") else None)
    box = boxes[right]
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(f"document.querySelector('#results .card h3').innerText === {groups[right]['products'][0]['title']!r}")
    assert not searches and page.locator(".found-box").count() == len(groups)
    assert page.locator(".found-box").nth(right).get_attribute("aria-pressed") == "true" and page.locator("#region-box").is_visible()


def test_a_heic_photo_is_shown_by_the_service_and_its_boxes_land_on_its_products(page: Any, site: dict[str, Any], tmp_path: Path) -> None:
    """Chromium cannot show HEIC (an iPhone's photos): the page shows the service's upright JPEG of it instead
    (1024 px wide for a 2000 px photo), and the boxes the service answers, in the photo's own pixels, still land
    on the products."""
    from PIL import Image

    photo = Image.new("RGB", (2000, 1000), (120, 110, 100))
    photo.paste(product_image(3, (640, 640)), (120, 180))
    photo.paste(product_image(9, (640, 640)), (1240, 180))
    path = tmp_path / "two.heic"
    photo.save(path, format="HEIF", quality=90)
    with page.expect_response(lambda response: response.url.endswith("/v1/preview")) as answer:
        upload(page, site, path)
    assert answer.value.status == 200 and answer.value.headers["x-image-width"] == "2000"
    page.wait_for_function("document.getElementById('query-preview').naturalWidth === 1024")
    page.wait_for_selector("#results .card")
    assert page.locator("#query-preview").is_visible() and not page.locator("#error").is_visible()
    with page.expect_response(lambda response: response.url.endswith("/v1/search")) as found:
        page.click("#find-products")
    groups = found.value.json()["groups"]
    page.wait_for_selector(".found-box.active")
    image = page.locator("#query-preview").bounding_box()
    for index, group in enumerate(groups[:2]):
        box = page.locator(".found-box").nth(index).bounding_box()
        middle = (box["x"] + box["width"] / 2 - image["x"]) / image["width"]
        expected = (group["region"]["x"] + group["region"]["width"] / 2) / 2000
        assert abs(middle - expected) < 0.02 and box["x"] + box["width"] <= image["x"] + image["width"] + 1
    assert {group["products"][0]["product_id"] for group in groups[:2]} == {"p003", "p009"}
    shot(page, "heic")


def test_minimum_similarity_and_one_result_per_item(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    before = page.locator("#status").inner_text()
    with page.expect_response(lambda response: response.url.endswith("/v1/search")) as answer:
        page.fill("#min_score", "0.9")
        page.locator("#min_score").dispatch_event("change")
    assert all(product["score"] >= 0.9 for product in answer.value.json()["products"])
    page.wait_for_function(f"document.getElementById('status').innerText !== {before!r}")
    scores = [float(text.split()[-1]) for text in page.locator("#results .card .score").all_inner_texts()]
    assert scores and min(scores) >= 0.9
    with page.expect_response(lambda response: response.url.endswith("/v1/search")) as answer:
        page.check("#collapse")
    assert answer.value.status == 200 and answer.value.json()["products"]


def test_the_category_filter_lists_the_catalogs_categories(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    labels = page.locator("#category_id option").all_inner_texts()
    assert labels[0] == "Any" and any(label.startswith("Home & Garden (") for label in labels)
    with page.expect_response(lambda response: response.url.endswith("/v1/search")) as answer:
        page.select_option("#category_id", "102")
    products = answer.value.json()["products"]
    assert products and all(product["category"]["second_level"]["id"] == "102" for product in products)


@pytest.fixture(scope="module")
def clip_site(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, tiny_clip: Path) -> Iterator[dict[str, Any]]:
    """A catalog embedded by a (tiny, random) CLIP-family model: the page offers a text search."""
    folder = tmp_path_factory.mktemp("web-clip")
    settings = load_settings(folder / "data", environ={}).with_overrides(model_cache_dir=str(model_cache), embedder="clip", clip_model=str(tiny_clip))
    workspace = Workspace(settings)
    import_file(workspace, write_catalog(folder, 30))
    workspace.close()
    with running_server(folder / "data", model_cache, {"IMAGESEARCH_EMBEDDER": "clip", "IMAGESEARCH_CLIP_MODEL": str(tiny_clip)}) as (base, _):
        yield {"base": base}


def test_words_search_the_photos_when_the_model_reads_text(page: Any, clip_site: dict[str, Any]) -> None:
    page.goto(clip_site["base"] + "/")
    page.wait_for_selector("#text-query:not([hidden])")
    page.click("#text-button")  # nothing typed yet: said so, nothing searched
    assert "Type a few words" in page.locator("#error").inner_text()
    page.fill("#text", "red summer dress")
    page.press("#text", "Enter")
    page.wait_for_selector("#results .card")
    assert page.locator("#status").inner_text().startswith("Showing 1–12 of ") and not page.locator("#error").is_visible()
    first = page.locator("#results .card h3").first.inner_text()
    page.click("#next")  # paging goes on from the stored list
    page.wait_for_function("document.querySelector('#page-info').textContent.startsWith('Page 2')")
    page.click("#prev")
    page.wait_for_function("document.querySelector('#page-info').textContent.startsWith('Page 1')")
    page.select_option("#sort_type", "price")  # a changed option searches the words again, not a photo
    page.wait_for_function("document.querySelector('#results .card h3') && document.querySelector('#status').textContent.startsWith('Showing')")
    assert not page.locator("#error").is_visible() and first
    assert no_horizontal_overflow(page)
    shot(page, "text-search")

