"""Import: validation, atomicity, re-import, --replace, delete, URLs, and the stored images."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import jpeg_bytes, product_record, write_catalog
from sqlalchemy import text

from imagesearch.errors import CatalogError
from imagesearch.ingest.importer import ImportRejected, delete_products, import_file
from imagesearch.ingest.reindex import reindex
from imagesearch.vision.synthetic import product_image
from imagesearch.workspace import Workspace


def write_rows(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


def snapshot(workspace: Workspace) -> tuple[dict[str, int], int, int]:
    generation = workspace.generation()
    state = workspace.index_state(generation)
    return workspace.catalog.counts(), generation, state.count if state else 0


@pytest.fixture
def workspace(tmp_path: Path, make_settings: Callable[..., Any], catalog_url: str) -> Iterator[Workspace]:
    """A workspace on each catalog backend: every import test runs on SQLite and on PostgreSQL."""
    space = Workspace(make_settings(tmp_path / "data", catalog_url=catalog_url))
    yield space
    space.close()


def test_import_stores_products_images_and_vectors(tmp_path: Path, workspace: Workspace) -> None:
    report = import_file(workspace, write_catalog(tmp_path, 6))
    counts, generation, vectors = snapshot(workspace)
    assert report.products_written == 6 and report.images_embedded == 8  # products 0 and 5 have two images
    assert counts["products"] == 6 and counts["images"] == 8 and vectors == 8 and generation == 1
    view = workspace.catalog.product_by_id("p000")
    assert view is not None and len(view.image_ids) == 2
    thumbnails = workspace.catalog.thumbnails(list(view.image_ids))
    assert all(data[:2] == b"\xff\xd8" for data in thumbnails.values())  # JPEG thumbnails
    assert workspace.catalog.get_meta("embedder", "").startswith("efficientnet-lite0")


def test_invalid_rows_change_nothing_and_are_all_reported(tmp_path: Path, workspace: Workspace) -> None:
    import_file(workspace, write_catalog(tmp_path, 3))
    before = snapshot(workspace)
    (tmp_path / "new.jpg").write_bytes(jpeg_bytes(product_image(50)))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    rows = [
        product_record(10, ["new.jpg"]),
        product_record(11, ["missing.jpg"]),
        product_record(12, ["broken.jpg"]),
        product_record(13, ["../outside.jpg"]),
        {"product_id": "p014"},
    ]
    with pytest.raises(ImportRejected) as error:
        import_file(workspace, write_rows(tmp_path / "bad.jsonl", rows))
    assert [e.line for e in error.value.errors] == [2, 3, 4, 5]
    message = str(error.value)
    assert "not found" in message and "not an image" in message and "outside" in message and "shop_id" in message
    assert snapshot(workspace) == before


def test_skip_invalid_imports_the_rest_and_writes_rejects(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(product_image(60)))
    rows = [product_record(1, ["a.jpg"]), product_record(2, ["nope.jpg"]), "{oops"]
    rejects = tmp_path / "rejects.jsonl"
    report = import_file(workspace, write_rows(tmp_path / "c.jsonl", rows), skip_invalid=True, rejects_path=rejects)
    assert report.products_written == 1 and len(report.rejected) == 2
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [line["line"] for line in lines] == [2, 3] and lines[0]["product_id"] == "p002" and "not found" in lines[0]["reason"]
    assert workspace.catalog.counts()["products"] == 1


def test_reimport_updates_and_reembeds_only_changed_images(tmp_path: Path, workspace: Workspace) -> None:
    path = write_catalog(tmp_path, 4)
    import_file(workspace, path)
    first = workspace.catalog.product_by_id("p001")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["price"] = {**rows[1]["price"], "sale": "9.99", "original": "19.99"}
    rows[2]["images"] = ["images/changed.jpg"]
    (tmp_path / "images" / "changed.jpg").write_bytes(jpeg_bytes(product_image(777)))
    report = import_file(workspace, write_rows(path, rows))
    assert report.images_embedded == 1 and report.images_added == 1 and report.images_removed == 1
    second = workspace.catalog.product_by_id("p001")
    assert second is not None and first is not None
    assert str(second.sale_price) == "9.99" and second.image_ids == first.image_ids  # same vector kept
    counts, _, vectors = snapshot(workspace)
    assert counts["images"] == vectors == 5


def test_replace_deletes_products_absent_from_the_file(tmp_path: Path, workspace: Workspace) -> None:
    path = write_catalog(tmp_path, 5)
    import_file(workspace, path)
    rows = [json.loads(line) for line in path.read_text().splitlines()][:2]
    report = import_file(workspace, write_rows(tmp_path / "two.jsonl", rows), replace=True)
    assert report.products_deleted == 3
    counts, _, vectors = snapshot(workspace)
    assert counts["products"] == 2 and counts["images"] == vectors == 3
    assert counts["distinct_images"] == 3  # orphaned image contents are dropped


def test_delete_by_id(tmp_path: Path, workspace: Workspace) -> None:
    import_file(workspace, write_catalog(tmp_path, 4))
    report = delete_products(workspace, ["p000", "p003", "unknown"])
    assert report.products_deleted == 2 and report.images_removed == 3
    counts, _, vectors = snapshot(workspace)
    assert counts["products"] == 2 and vectors == counts["images"] == 2


def test_identical_photos_are_embedded_once(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "same.jpg").write_bytes(jpeg_bytes(product_image(5)))
    rows = [product_record(index, ["same.jpg"]) for index in range(3)]
    report = import_file(workspace, write_rows(tmp_path / "c.jsonl", rows))
    assert report.images_embedded == 1 and report.images_added == 3
    counts, _, vectors = snapshot(workspace)
    assert counts["distinct_images"] == 1 and counts["images"] == vectors == 3


def test_csv_import(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(product_image(70)))
    (tmp_path / "c.csv").write_text(
        "product_id,shop_id,title_en,title_fr,sale_price,original_price,currency,ship_to,images\n"
        "c1,3,Lamp,Lampe,12.50,20.00,EUR,US|FR,a.jpg\n"
    )
    import_file(workspace, tmp_path / "c.csv")
    view = workspace.catalog.product_by_id("c1")
    assert view is not None and view.titles == {"en": "Lamp", "fr": "Lampe"} and view.ship_to == ("FR", "US")


def test_reindex_rebuilds_and_can_change_structure(tmp_path: Path, workspace: Workspace, make_settings: Callable[..., Any]) -> None:
    import_file(workspace, write_catalog(tmp_path, 5))
    report = reindex(Workspace(workspace.settings.with_overrides(index_kind="hnsw")))
    assert report.vectors == 6 and report.index_kind.startswith("hnsw") and report.generation == 2
    re_embedded = reindex(workspace, re_embed=True)
    assert re_embedded.re_embedded == 6 and re_embedded.from_thumbnail == 0


def test_a_different_embedder_is_refused_with_advice(tmp_path: Path, workspace: Workspace, make_settings: Callable[..., Any]) -> None:
    import_file(workspace, write_catalog(tmp_path, 2))
    other = Workspace(workspace.settings.with_overrides(precision="fp32"))
    with pytest.raises(CatalogError, match="reindex --re-embed"):
        import_file(other, write_catalog(tmp_path, 2))
    report = reindex(other, re_embed=True)
    assert report.re_embedded == 3
    import_file(other, write_catalog(tmp_path, 2))  # now consistent


class _ImageServer(http.server.BaseHTTPRequestHandler):
    """Serves /img/<seed>.jpg; /flaky/... fails twice first; /big is over the size cap."""

    hits: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path.startswith("/flaky/") and self.hits[self.path] <= 2:
            self.send_response(503)
            self.end_headers()
            return
        if self.path == "/big":
            body = b"\xff" * 3_000_000
        elif self.path.endswith(".jpg") and self.path.rsplit("/", 1)[1][:-4].isdigit():
            body = jpeg_bytes(product_image(int(self.path.rsplit("/", 1)[1][:-4])))
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_images_from_urls_with_retries_and_limits(tmp_path: Path, image_server: str, make_settings: Callable[..., Any]) -> None:
    workspace = Workspace(make_settings(tmp_path / "data", max_image_bytes=2_000_000, fetch_retries=2, allow_private_import_urls=True))
    rows = [
        product_record(1, [f"{image_server}/img/31.jpg", f"{image_server}/flaky/32.jpg"]),
        product_record(2, [f"{image_server}/missing.jpg"]),
        product_record(3, [f"{image_server}/big"]),
    ]
    report = import_file(workspace, write_rows(tmp_path / "c.jsonl", rows), skip_invalid=True)
    assert report.products_written == 1
    reasons = {error.product_id: error.reason for error in report.rejected}
    assert "404" in reasons["p002"] and "limit" in reasons["p003"]
    view = workspace.catalog.product_by_id("p001")
    assert view is not None and view.image_sources[0] == f"{image_server}/img/31.jpg"
    assert _ImageServer.hits["/flaky/32.jpg"] == 3


def test_a_currency_without_a_rate_is_refused_with_the_way_out(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(product_image(60)))
    vnd = product_record(1, ["a.jpg"], price={"sale": "250000", "currency": "VND"})
    with pytest.raises(ImportRejected) as error:
        import_file(workspace, write_rows(tmp_path / "vnd.jsonl", [vnd]))
    reason = error.value.errors[0].reason
    assert "VND has no exchange rate" in reason and "imagesearch rates import" in reason
    assert workspace.catalog.counts()["products"] == 0


def index_files(workspace: Workspace) -> dict[str, int]:
    """Every file under index/ with its size."""
    root = workspace.data_dir / "index"
    return {str(path.relative_to(root)): path.stat().st_size for path in root.rglob("*") if path.is_file()}


def test_writes_cost_what_they_change(tmp_path: Path, workspace: Workspace) -> None:
    """A price change writes no index bytes; an added image a small segment; a delete only tombstones."""
    path = write_catalog(tmp_path, 8)
    import_file(workspace, path)
    before = index_files(workspace)
    generation = workspace.generation()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["price"] = {**rows[2]["price"], "sale": "1.00"}
    write_rows(tmp_path / "price.jsonl", [rows[2]])
    import_file(workspace, tmp_path / "price.jsonl")
    assert workspace.generation() == generation and index_files(workspace) == before
    assert str(workspace.catalog.product_by_id("p002").sale_price) == "1.00"
    rows[3]["volume"] = 12345  # the whole file again, one product changed: only that one is written
    report = import_file(workspace, write_rows(tmp_path / "all.jsonl", rows))
    assert (report.products_written, report.products_unchanged) == (1, 7)
    assert workspace.generation() == generation and index_files(workspace) == before

    (tmp_path / "new.jpg").write_bytes(jpeg_bytes(product_image(77)))
    write_rows(tmp_path / "add.jsonl", [product_record(30, ["new.jpg"])])
    import_file(workspace, tmp_path / "add.jsonl")
    state = workspace.index_state()
    assert f"{state.segments[0]}/vectors.faiss" in before and state.segment_sizes[1:] == (1,) and state.count == 11
    new_files = {name: size for name, size in index_files(workspace).items() if name not in before}
    assert all(name.startswith(("seg-00000002/", "state-")) for name in new_files)

    delete_products(workspace, ["p004"])
    state = workspace.index_state()
    assert state.tombstone_count == 1 and len(state.segments) == 2 and state.count == 10
    written = {name: size for name, size in index_files(workspace).items() if name.startswith(("tomb-", "state-"))}
    assert sum(written.values()) < 2000


def test_contents_no_image_uses_are_dropped_with_the_change_that_released_them(tmp_path: Path, workspace: Workspace) -> None:
    path = write_catalog(tmp_path, 4, extra_images_every=0)
    import_file(workspace, path)
    (tmp_path / "other.jpg").write_bytes(jpeg_bytes(product_image(99)))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    write_rows(tmp_path / "swap.jsonl", [{**rows[1], "images": ["other.jpg"], "category": {}}])
    import_file(workspace, tmp_path / "swap.jsonl")
    counts = workspace.catalog.counts()
    assert counts["images"] == counts["distinct_images"] == 4  # the old photo's content went with it
    delete_products(workspace, ["p002"])
    assert workspace.catalog.counts()["distinct_images"] == 3
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (tmp_path / "cached.jpg").write_bytes(jpeg_bytes(product_image(98)))
    rejected = [product_record(20, ["cached.jpg"]), product_record(21, ["broken.jpg"])]
    with pytest.raises(ImportRejected):
        import_file(workspace, write_rows(tmp_path / "refused.jsonl", rejected))
    from imagesearch.ingest.compact import compact

    with workspace.catalog.writer() as writer:
        assert writer.connection.execute(text("select count(*) from image_blobs")).scalar() == 4  # a cache entry is left
    compact(workspace)
    with workspace.catalog.writer() as writer:
        assert writer.connection.execute(text("select count(*) from image_blobs")).scalar() == 3


def test_a_new_data_directory_is_private(tmp_path: Path, make_settings: Callable[..., Any]) -> None:
    import stat

    workspace = Workspace(make_settings(tmp_path / "fresh" / "data"))
    assert stat.S_IMODE(workspace.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(workspace.catalog.path.stat().st_mode) == 0o600
    workspace.close()


@pytest.mark.parametrize("catalog_url", [""])  # an earlier SQLite file
def test_embeddings_are_kept_in_float16_and_rows_of_the_earlier_float32_format_still_read(tmp_path: Path, workspace: Workspace) -> None:
    """The catalog stores half-precision embeddings; a catalog written before (float32, no format column) migrates."""
    import sqlite3

    import numpy as np

    import_file(workspace, write_catalog(tmp_path, 2))
    path = workspace.data_dir / "catalog.sqlite"
    workspace.close()
    with sqlite3.connect(path) as connection:
        embedding, stored_as = connection.execute("SELECT embedding, embedding_format FROM image_blobs LIMIT 1").fetchone()
        dim = len(embedding) // 2
        assert stored_as == "float16"
        old = np.random.default_rng(0).normal(size=dim).astype(np.float32)
        # The earlier schema: no embedding_format column, float32 bytes.
        connection.execute("ALTER TABLE image_blobs DROP COLUMN embedding_format")
        connection.execute("UPDATE image_blobs SET embedding = ?", (old.tobytes(),))
    reopened = Workspace(workspace.settings)
    ids, vectors = reopened.catalog.vectors([1])
    assert ids.tolist() == [1] and vectors.dtype == np.float32 and np.array_equal(vectors[0], old)
    reopened.close()


def test_a_file_changed_between_the_two_reads_changes_nothing(tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Phase 2 reads the file again (nothing is held in memory): if it changed since phase 1, the import is refused whole."""
    from imagesearch.errors import CatalogError
    from imagesearch.ingest import importer

    import_file(workspace, write_catalog(tmp_path / "first", 3))
    before = snapshot(workspace)
    path = write_catalog(tmp_path / "second", 4, seed_offset=100)
    real_prepare = importer._prepare

    def prepare_then_edit(*args: Any, **kwargs: Any) -> Any:
        errors = real_prepare(*args, **kwargs)
        lines = path.read_text().splitlines()
        path.write_text("\n".join(reversed(lines)) + "\n")  # same products, other lines
        return errors

    monkeypatch.setattr(importer, "_prepare", prepare_then_edit)
    with pytest.raises(CatalogError, match="changed while it was being imported"):
        import_file(workspace, path, replace=True)
    assert snapshot(workspace) == before
    assert not list(workspace.data_dir.glob(".import-*"))  # the scratch file is gone


def test_ship_to_filters_survive_a_price_change_and_follow_a_shipping_change(tmp_path: Path, workspace: Workspace) -> None:
    """The per-country filter (a scan of the catalog at a million images) is rebuilt only when who ships where changes."""
    from imagesearch.search.engine import SearchEngine

    path = write_catalog(tmp_path, 6)
    import_file(workspace, path)
    engine = SearchEngine(workspace)
    first = engine._filter("US")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["price"]["sale"] = "1.23"  # product 1 ships to the US and France
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    import_file(workspace, path)
    assert engine._filter("US") is first
    rows[2]["ship_to"] = ["US"]  # product 2 shipped to Germany and Britain
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    import_file(workspace, path)
    now = engine._filter("US")
    assert now is not first and len(now) == len(first) + 1
    engine.close()


def test_product_id_is_matched_whole() -> None:
    from imagesearch.catalog.records import validate_record

    record = {"shop_id": 1, "title": "t", "price": {"sale": "1", "currency": "USD"}, "images": ["a.jpg"]}
    assert validate_record({**record, "product_id": "abc-1"}, "en").product_id == "abc-1"
    with pytest.raises(ValueError, match="product_id"):
        validate_record({**record, "product_id": "abc-1\n"}, "en")


def test_image_paths_cannot_leave_the_catalog_files_folder(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "secret.jpg").write_bytes(jpeg_bytes(product_image(5)))
    rows = [product_record(1, ["../secret.jpg"]), product_record(2, ["/etc/passwd"]), product_record(3, ["file:///etc/hostname"])]
    with pytest.raises(ImportRejected) as error:
        import_file(workspace, write_rows(tmp_path / "shop" / "c.jsonl", rows))
    assert len(error.value.errors) == 3 and all("outside the catalog file's folder" in e.reason for e in error.value.errors)
    assert workspace.catalog.counts()["products"] == 0


def test_a_category_s_name_is_the_last_row_s_even_when_rows_repeat_it(tmp_path: Path, workspace: Workspace) -> None:
    """A category written by many rows of one import (written once while its name repeats) takes the name of the
    file's last row that names it, also when that name went back to an earlier one."""
    for index in range(3):
        (tmp_path / f"{index}.jpg").write_bytes(jpeg_bytes(product_image(index)))
    named = [{"en": "Lamps"}, {"en": "Lights", "fr": "Lumières"}, {"en": "Lamps"}]
    rows = [product_record(index, [f"{index}.jpg"], category={"second_level": {"id": "7", "name": name}}) for index, name in enumerate(named)]
    import_file(workspace, write_rows(tmp_path / "catalog.jsonl", rows[:2]))
    names = {category.id: category.names for category, *_ in workspace.catalog.category_tree()}
    assert names["7"] == {"en": "Lights", "fr": "Lumières"}
    import_file(workspace, write_rows(tmp_path / "catalog.jsonl", rows))
    names = {category.id: category.names for category, *_ in workspace.catalog.category_tree()}
    assert names["7"]["en"] == "Lamps"
