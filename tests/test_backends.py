"""One contract, every backend pair: SQLite + FAISS (the default), PostgreSQL + FAISS, + pgvector, + Milvus.

The same catalog imported into each must answer the same queries with the
same products in the same order, through filters, updates, deletes and a
restart; and a write killed between the vector store's commit and the
catalog's leaves nothing visible.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import backend_settings, jpeg_bytes, write_catalog

from imagesearch.ingest.importer import delete_products, import_file
from imagesearch.ingest.reindex import reindex
from imagesearch.search.engine import SearchEngine
from imagesearch.search.params import parse_params
from imagesearch.vision.synthetic import product_image
from imagesearch.workspace import Workspace

PAIRS = ["sqlite+faiss", "postgresql+faiss", "postgresql+pgvector", "postgresql+milvus"]
PRODUCTS = 16
QUERIES = [0, 3, 7, 12]


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_catalog(tmp_path_factory.mktemp("contract"), PRODUCTS)


@pytest.fixture(params=PAIRS)
def workspace(request: pytest.FixtureRequest, tmp_path: Path, make_settings: Callable[..., Any], catalog_file: Path) -> Iterator[Workspace]:
    space = Workspace(backend_settings(request.param, tmp_path / "data", make_settings, request))
    catalog, vectors = request.param.split("+")
    assert (type(space.catalog).__name__, type(space.vectors).__name__) == (
        {"sqlite": "SqliteCatalog", "postgresql": "PostgresCatalog"}[catalog],
        {"faiss": "FaissStore", "pgvector": "PgVectorStore", "milvus": "MilvusStore"}[vectors],
    )
    import_file(space, catalog_file)
    yield space
    space.close()


def search(space: Workspace, index: int, **fields: Any) -> list[tuple[str, float]]:
    engine = SearchEngine(space)
    try:
        param0 = {"image_base64": base64.b64encode(jpeg_bytes(product_image(index))).decode(), "search_type": "similar", **fields}
        page = engine.search(parse_params(param0, engine.rates(), "USD", 10_000_000))
        return [(item.product.product_id, round(item.score, 3)) for item in page.items]
    finally:
        engine.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, catalog_file: Path) -> dict[str, Any]:
    """What the default pair answers: every pair must answer the same."""
    from imagesearch.config import load_settings

    space = Workspace(load_settings(tmp_path_factory.mktemp("reference") / "data", environ={}).with_overrides(model_cache_dir=str(model_cache)))
    import_file(space, catalog_file)
    answers = {
        "plain": {index: search(space, index) for index in QUERIES},
        "ship_to_FR": {index: search(space, index, ship_to="FR") for index in QUERIES},
        "category_101": {index: search(space, index, category_id="101") for index in QUERIES},
    }
    space.close()
    return answers


def same_answers(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    """The same products in the same order, the same scores to float16 rounding (pgvector stores halfvec)."""
    assert [product for product, _ in got] == [product for product, _ in expected]
    assert np.allclose([score for _, score in got], [score for _, score in expected], atol=0.003)


def test_every_pair_answers_like_the_default(workspace: Workspace, reference: dict[str, Any]) -> None:
    for index in QUERIES:
        same_answers(search(workspace, index), reference["plain"][index])
        assert search(workspace, index)[0][0] == f"p{index:03d}"


def test_filters_answer_alike(workspace: Workspace, reference: dict[str, Any]) -> None:
    for index in QUERIES:
        same_answers(search(workspace, index, ship_to="FR"), reference["ship_to_FR"][index])
        same_answers(search(workspace, index, category_id="101"), reference["category_101"][index])


def test_updates_deletes_and_a_restart(workspace: Workspace, tmp_path: Path, catalog_file: Path) -> None:
    # A product's picture replaced: the new picture finds it, the old one no longer does.
    rows = [json.loads(line) for line in catalog_file.read_text().splitlines()]
    folder = catalog_file.parent
    (folder / "images" / "new-3.jpg").write_bytes(jpeg_bytes(product_image(900)))
    rows[3]["images"] = ["images/new-3.jpg"]
    edited = folder / f"edited-{workspace.settings.vector_store}-{bool(workspace.settings.catalog_url)}.jsonl"
    edited.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    import_file(workspace, edited)
    assert search(workspace, 900)[0][0] == "p003"
    assert all(product != "p003" or score < 0.9 for product, score in search(workspace, 3))
    delete_products(workspace, ["p007"])
    assert "p007" not in [product for product, _ in search(workspace, 7)]
    # A rebuild from the catalog (another structure, or a lost index) keeps every answer.
    answers = {index: search(workspace, index) for index in (0, 12, 900)}
    assert reindex(workspace).vectors == len(workspace.open_index(workspace.generation()))
    assert {index: search(workspace, index) for index in (0, 12, 900)} == answers
    delete_products(workspace, ["p012"])  # and writes go on after it
    assert "p012" not in [product for product, _ in search(workspace, 12)]
    before = {index: search(workspace, index) for index in (0, 3, 900)}
    workspace.close()
    again = Workspace(workspace.settings)
    try:
        assert {index: search(again, index) for index in (0, 3, 900)} == before
    finally:
        again.close()


@pytest.mark.parametrize("pair", ["postgresql+pgvector", "postgresql+milvus"])
def test_vectors_of_a_write_the_catalog_never_recorded_stay_invisible_and_are_swept(
    pair: str, tmp_path: Path, make_settings: Callable[..., Any], request: pytest.FixtureRequest, catalog_file: Path
) -> None:
    """The write is killed after the vector store's commit and before the catalog's: the next generation's
    rows exist in the table but no search at the recorded generation sees them, and the next sweep removes them."""
    space = Workspace(backend_settings(pair, tmp_path / "data", make_settings, request))
    try:
        import_file(space, catalog_file)
        generation = space.generation()
        state = space.index_state(generation)
        stray = np.array([10_000_001], np.int64)
        vector = np.ones((1, space.embedder.dim), np.float32) / np.sqrt(space.embedder.dim)
        space.vectors.publish_delta(state, generation + 1, space.embedder_identity, stray, lambda ids: (ids, vector), np.array([1], np.int64))
        index = space.open_index(generation)
        scores, ids = index.search(vector, 50)
        assert 10_000_001 not in ids[0] and 1 in space.open_index(generation).live_ids()
        # The next write builds on the recorded generation: the dead write's rows never come back with it.
        delete_products(space, ["p005"])
        assert space.generation() == generation + 1
        assert 10_000_001 not in space.open_index(generation + 1).live_ids() and 1 in space.open_index(generation + 1).live_ids()
        generation += 1
        space.vectors.publish_delta(space.index_state(generation), generation + 1, space.embedder_identity, stray,
                                    lambda ids: (ids, vector), np.array([1], np.int64))
        space.vectors.sweep(keep=generation)
        assert space.vectors.state(generation + 1) is None
        assert 10_000_001 not in space.open_index(generation).live_ids() and 1 in space.open_index(generation).live_ids()
        assert [product for product, _ in search(space, 0)][:1] == ["p000"]
    finally:
        space.close()


@pytest.mark.parametrize("pair", ["postgresql+pgvector", "postgresql+milvus"])
def test_page_two_is_served_by_another_worker_on_another_machine(
    pair: str, tmp_path: Path, make_settings: Callable[..., Any], request: pytest.FixtureRequest, catalog_file: Path
) -> None:
    """Two workers with nothing local in common (their own data directories) share the catalog, the vectors and
    the cursors: a search on one, its next page on the other, and a write on one seen by the other's next search."""
    first = Workspace(backend_settings(pair, tmp_path / "machine-a", make_settings, request))
    second = Workspace(first.settings.with_overrides(data_dir=tmp_path / "machine-b"))
    import_file(first, catalog_file)
    one, two = SearchEngine(first), SearchEngine(second)
    try:
        param0 = {"image_base64": base64.b64encode(jpeg_bytes(product_image(4))).decode(), "page_size": 3}
        page = one.search(one.parse(param0))
        assert page.total_count > 3 and page.next_start_row_key
        following = two.search(two.parse({"start_row_key": page.next_start_row_key, "page_size": 3}))
        again = one.search(one.parse({"start_row_key": page.next_start_row_key, "page_size": 3}))
        assert following.page_no == 2 and [item.product.product_id for item in following.items] == [item.product.product_id for item in again.items]
        assert [item.product.product_id for item in two.search(two.parse(param0)).items][0] == "p004"
        delete_products(first, ["p004"])
        assert "p004" not in [item.product.product_id for item in two.search(two.parse(param0)).items]
    finally:
        one.close()
        two.close()
        first.close()
        second.close()


@pytest.mark.parametrize("pair", ["sqlite+faiss", "postgresql+pgvector"])
def test_shards_embedded_apart_make_the_import_embed_nothing(
    pair: str, tmp_path: Path, make_settings: Callable[..., Any], request: pytest.FixtureRequest, catalog_file: Path
) -> None:
    """Bulk embedding scaled out: each worker embeds one shard (searches see nothing yet), the import then only commits."""
    from imagesearch.ingest.importer import embed_file

    settings = backend_settings(pair, tmp_path / "machine-a", make_settings, request)
    workers = [Workspace(settings), Workspace(settings.with_overrides(data_dir=tmp_path / "machine-b") if settings.catalog_url else settings)]
    try:
        reports = [embed_file(space, catalog_file, (number, 2)) for number, space in enumerate(workers)]
        images = sum(len(json.loads(line)["images"]) for line in catalog_file.read_text().splitlines())
        assert sum(report.images_embedded for report in reports) == images and all(report.images_embedded for report in reports)
        assert workers[0].catalog.counts()["products"] == 0 and workers[0].generation() == 0
        report = import_file(workers[0], catalog_file)
        assert (report.images_embedded, report.images_reused, report.products_written) == (0, images, PRODUCTS)
        assert search(workers[1], 5)[0][0] == "p005"
    finally:
        for space in workers:
            space.close()


def test_a_shipping_or_category_change_alone_moves_a_product_in_and_out_of_filters(workspace: Workspace, catalog_file: Path) -> None:
    """No image changes: the FAISS index is not touched (its filters are read from SQL); a store that keeps
    labels (pgvector, Milvus) relabels the product's images, and its filtered searches follow."""
    rows = [json.loads(line) for line in catalog_file.read_text().splitlines()]
    assert rows[2]["ship_to"] == ["DE", "GB"]  # p002 does not ship to France and is in category 102
    assert "p002" not in [product for product, _ in search(workspace, 2, ship_to="FR")]
    generation = workspace.generation()
    rows[2]["ship_to"] = ["FR"]
    rows[2]["category"]["second_level"]["id"] = "101"
    edited = catalog_file.parent / f"shipping-{workspace.settings.vector_store}-{bool(workspace.settings.catalog_url)}.jsonl"
    edited.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    import_file(workspace, edited)
    assert workspace.generation() == generation + (1 if workspace.vectors.keeps_labels else 0)
    assert search(workspace, 2, ship_to="FR")[0][0] == "p002"
    assert search(workspace, 2, category_id="101")[0][0] == "p002"
    assert "p002" not in [product for product, _ in search(workspace, 2, ship_to="DE")]
    assert "p002" not in [product for product, _ in search(workspace, 2, category_id="102")]
