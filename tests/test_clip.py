"""A CLIP-family embedder from a local folder, and searching photos with a text.

The model is a tiny CLIP with random weights, written by the test into a temporary folder in
transformers' format (with a character-level tokenizer): nothing is downloaded.  Random weights
say nothing of quality; the tests check the plumbing: shapes, determinism, the text tower, the
search path and its errors.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import jpeg_bytes, write_catalog

from imagesearch.errors import ErrorCode, ImageSearchError, RequestError
from imagesearch.ingest.importer import import_file
from imagesearch.search.engine import SearchEngine
from imagesearch.search.params import V1_FIELDS
from imagesearch.vision.synthetic import product_image
from imagesearch.workspace import Workspace

transformers = pytest.importorskip("transformers", reason="the CLIP embedder needs transformers (pip install -e '.[test]')")


@pytest.fixture
def clip_workspace(tmp_path: Path, make_settings: Callable[..., Any], tiny_clip: Path) -> Any:
    workspace = Workspace(make_settings(tmp_path / "data", embedder="clip", clip_model=str(tiny_clip)))
    yield workspace
    workspace.close()


def test_photos_and_texts_land_in_one_space(clip_workspace: Workspace) -> None:
    embedder = clip_workspace.embedder
    assert embedder.name.startswith("clip:") and embedder.dim == 16 and embedder.input_size == 64
    photos = embedder.embed([product_image(1), product_image(2), product_image(1)])
    texts = embedder.embed_text(["red dress", "a blue mug with a handle", "red dress"])
    for rows in (photos, texts):
        assert rows.shape[1] == 16 and np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert np.allclose(photos[0], photos[2]) and np.allclose(texts[0], texts[2]) and not np.allclose(texts[0], texts[1])


def test_a_text_searches_the_photos_and_pages_like_a_photo(clip_workspace: Workspace, tmp_path: Path) -> None:
    import_file(clip_workspace, write_catalog(tmp_path / "catalog", 12))
    engine = SearchEngine(clip_workspace)
    try:
        page = engine.search(engine.parse({"text": "a red product", "page_size": 5}, fields=frozenset({"text", "page_size", "ship_to"})))
        assert len(page.items) == 5 and page.total_count == 12 and page.next_start_row_key
        vector = clip_workspace.embedder.embed_text(["a red product"])[0]
        expected = engine.rank_similar(vector, None, None, 0.0)  # the text's vector, ranked as a photo's would be
        assert [item.product.pk for item in page.items] == [item.product_pk for item in expected[:5]]
        second = engine.search(engine.parse({"start_row_key": page.next_start_row_key}, fields=frozenset({"start_row_key"})))
        assert second.page_no == 2 and len(second.items) == 5
        shipped = engine.search(engine.parse({"text": "a red product", "ship_to": "FR"}, fields=frozenset({"text", "ship_to"})))
        assert all(item.product.ship_to is None or "FR" in item.product.ship_to for item in shipped.items)
        for option in ("crop", "groups"):  # CLIP's image tower answers one vector: no feature map to locate products on
            photo = base64.b64encode(jpeg_bytes(product_image(3))).decode()
            with pytest.raises(RequestError) as caught:
                engine.search(engine.parse({"image_base64": photo, option: True}, fields=V1_FIELDS))
            assert caught.value.code == ErrorCode.SubjectUnavailable and "feature map" in caught.value.message
    finally:
        engine.close()


def test_a_folder_that_is_not_a_model_is_refused_by_name(tmp_path: Path, make_settings: Callable[..., Any]) -> None:
    for folder in (tmp_path / "missing", tmp_path):
        with pytest.raises(ImageSearchError, match="is not a model folder"):
            _ = Workspace(make_settings(tmp_path / "data", embedder="clip", clip_model=str(folder))).embedder
    with pytest.raises(ImageSearchError, match="needs clip_model"):
        _ = Workspace(make_settings(tmp_path / "data", embedder="clip")).embedder


def test_text_queries_are_validated_and_need_a_text_tower(engine: SearchEngine, server: dict[str, Any]) -> None:
    """The default embedder reads photos only: a text is TextSearchUnavailable, over HTTP too."""
    with pytest.raises(RequestError) as caught:
        engine.search(engine.parse({"text": "red dress"}, fields=frozenset({"text"})))
    assert caught.value.code == ErrorCode.TextSearchUnavailable
    answer = httpx.post(f"{server['base']}/v1/search", json={"text": "red dress"}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "TextSearchUnavailable"
    fields = frozenset({"text", "image_base64", "search_type", "region"})
    for raw, reason in (
        ({"text": "   "}, "is empty"),
        ({"text": "x" * 301}, "longer than 300"),
        ({"text": "red", "image_base64": "aGVsbG8="}, "sent with a photo"),
        ({"text": "red", "search_type": "same"}, "similar products only"),
        ({"text": "red", "region": [0, 0, 10, 10]}, "cannot take a region"),
    ):
        with pytest.raises(RequestError, match=reason) as caught:
            engine.parse(raw, fields=fields)
        assert caught.value.code == ErrorCode.InvalidText
