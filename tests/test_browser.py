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


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def upload(page: Any, site: dict[str, Any], path: Path) -> None:
    page.goto(site["base"] + "/")
    page.wait_for_selector("#currency option", state="attached")
    page.set_input_files("#file", str(path))


def test_upload_finds_the_product_first_and_screenshots(page: Any, site: dict[str, Any], browser: Any) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    first = page.locator("#results .card").first
    assert "Product 4" in first.locator("h3").inner_text()
    assert "Similarity" in first.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results-desktop.png"), full_page=True)
    first.locator("text=Why it matched").click()
    page.wait_for_selector(".images li p")
    assert "best match" in page.locator(".images").inner_text()
    assert "Produit 4" in page.locator("#product-body table").inner_text()  # titles in every language
    page.screenshot(path=str(ARTIFACTS / "product-desktop.png"), full_page=True)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    small = phone.new_page()
    upload(small, site, site["query"])
    small.wait_for_selector("#results .card")
    small.screenshot(path=str(ARTIFACTS / "results-phone.png"), full_page=True)
    small.locator("#results .card").first.locator("text=Why it matched").click()
    small.wait_for_selector(".images li p")
    small.screenshot(path=str(ARTIFACTS / "product-phone.png"), full_page=True)
    phone.close()


def test_changing_currency_changes_prices(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    assert "USD" in page.locator(".price").first.inner_text()
    page.select_option("#currency", "JPY")
    page.wait_for_function("document.querySelector('.price') && document.querySelector('.price').textContent.includes('JPY')")
    assert "JPY" in page.locator(".price").first.inner_text()


def test_paging_forward_and_back(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["query"])
    page.wait_for_selector("#results .card")
    first_page = page.locator("#results h3").all_inner_texts()
    assert "Page 1 of" in page.locator("#page-info").inner_text()
    page.click("#next")
    page.wait_for_function("document.getElementById('page-info').textContent.startsWith('Page 2')")
    second_page = page.locator("#results h3").all_inner_texts()
    assert second_page and not set(second_page) & set(first_page)
    page.click("#prev")
    page.wait_for_function("document.getElementById('page-info').textContent.startsWith('Page 1')")
    assert page.locator("#results h3").all_inner_texts() == first_page


def test_a_non_image_shows_a_readable_error(page: Any, site: dict[str, Any]) -> None:
    upload(page, site, site["not_image"])
    page.wait_for_selector("#error:not([hidden])")
    message = page.locator("#error").inner_text()
    assert "not an image" in message and "{" not in message


def test_catalog_overview(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/#/catalog")
    page.wait_for_selector("#catalog-body dd")
    text = page.locator("#catalog-body").inner_text()
    assert "30" in text and "efficientnet-lite0" in text and "flat" in text
