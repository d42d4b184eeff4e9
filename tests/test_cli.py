"""The command line, run as a user runs it (a subprocess per command)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import jpeg_bytes, write_catalog

from imagesearch.vision.synthetic import product_image


def run(
    data_dir: Path, model_cache: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, IMAGESEARCH_MODEL_CACHE_DIR=str(model_cache), **(env or {}))
    process = subprocess.run(
        [sys.executable, "-m", "imagesearch.cli", "--data-dir", str(data_dir), *args], env=env, capture_output=True, text=True
    )
    if check:
        assert process.returncode == 0, process.stderr
    return process


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    run(folder / "data", model_cache, "import", str(write_catalog(folder, 8)))
    return folder, folder / "data"


def test_import_prints_a_report(tmp_path: Path, model_cache: Path) -> None:
    report = json.loads(run(tmp_path / "data", model_cache, "import", str(write_catalog(tmp_path, 3))).stdout)
    assert report["products_written"] == 3 and report["generation"] == 1
    # everything the service created is its user's alone, whatever the umask it was started with
    created = [tmp_path / "data", *(tmp_path / "data").rglob("*")]
    assert {oct(path.stat().st_mode & 0o077) for path in created} == {"0o0"}


def test_search_prints_searchv2_json(imported: tuple[Path, Path], model_cache: Path) -> None:
    folder, data_dir = imported
    query = folder / "query.jpg"
    query.write_bytes(jpeg_bytes(product_image(3).resize((200, 200))))
    out = json.loads(run(data_dir, model_cache, "search", str(query), "--currency", "EUR", "--lang", "fr", "--page-size", "3").stdout)
    result = out["aliexpress_ds_image_searchV2_response"]["result"]
    assert result["ret"] is True and result["data"]["products"][0]["product_id"] == "p003"
    assert result["data"]["products"][0]["price"]["sale"]["currency"] == "EUR"
    assert result["pagination"]["page_size"] == 3 and result["next_start_row_key"]
    page2 = json.loads(run(data_dir, model_cache, "search", str(query), "--start-row-key", result["next_start_row_key"]).stdout)
    assert page2["aliexpress_ds_image_searchV2_response"]["result"]["pagination"]["page_no"] == 2


def test_search_error_has_code_and_exit_status(imported: tuple[Path, Path], model_cache: Path) -> None:
    folder, data_dir = imported
    query = folder / "query.jpg"
    query.write_bytes(jpeg_bytes(product_image(3)))
    process = run(data_dir, model_cache, "search", str(query), "--currency", "XYZ", check=False)
    assert process.returncode == 1
    result = json.loads(process.stdout)["aliexpress_ds_image_searchV2_response"]["result"]
    assert result["ret"] is False and result["code"] == "InvalidCurrency" and "currency" in result["messages"]
    not_image = folder / "notes.txt"
    not_image.write_text("hello")
    process = run(data_dir, model_cache, "search", str(not_image), check=False)
    assert json.loads(process.stdout)["aliexpress_ds_image_searchV2_response"]["result"]["code"] == "InvalidImage"


def test_info(imported: tuple[Path, Path], model_cache: Path) -> None:
    _, data_dir = imported
    info = json.loads(run(data_dir, model_cache, "info").stdout)
    assert info["products"] == 8 and info["images"] == 10 and info["index"]["kind"] == "flat" and info["index"]["vectors"] == 10
    assert info["embedder"].startswith("efficientnet-lite0") and info["rates"]["base"] == "EUR"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["last_write_at"])
    assert info["same_thresholds"]["source"] == "settings" and info["same_thresholds"]["min_inliers"] == 25
    assert (info["same_thresholds"]["joint_inliers"], info["same_thresholds"]["joint_margin"]) == (10, 0.08)


def test_rates_import_ecb_xml(tmp_path: Path, model_cache: Path) -> None:
    xml = tmp_path / "eurofxref-daily.xml"
    xml.write_text(
        '<?xml version="1.0"?><gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
        'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube><Cube time="2026-11-26">'
        '<Cube currency="USD" rate="1.1"/><Cube currency="JPY" rate="170"/></Cube></Cube></gesmes:Envelope>'
    )
    run(tmp_path / "data", model_cache, "import", str(write_catalog(tmp_path, 4)))  # prices in USD, EUR, JPY and GBP
    process = run(tmp_path / "data", model_cache, "rates", "import", str(xml))
    saved = json.loads(process.stdout)
    assert saved["date"] == "2026-11-26" and saved["currencies"] == 3
    assert saved["catalog_currencies_without_rate"] == ["GBP"] and "GBP" in process.stderr
    shown = json.loads(run(tmp_path / "data", model_cache, "rates", "show").stdout)
    assert shown["rates"]["JPY"] == "170"
    bad = tmp_path / "bad.json"
    bad.write_text('{"base": "EUR", "date": "2026-01-01", "rates": {"USD": "-3"}}')
    process = run(tmp_path / "data", model_cache, "rates", "import", str(bad), check=False)
    assert process.returncode == 1 and "positive" in process.stderr


def test_invalid_import_exits_1_with_line_numbers(tmp_path: Path, model_cache: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"product_id": "a"}\nnot json\n')
    process = run(tmp_path / "data", model_cache, "import", str(tmp_path / "c.jsonl"), check=False)
    assert process.returncode == 1 and "line 1" in process.stderr and "line 2" in process.stderr
    assert "Traceback" not in process.stderr


def test_delete_and_reindex(tmp_path: Path, model_cache: Path) -> None:
    data_dir = tmp_path / "data"
    run(data_dir, model_cache, "import", str(write_catalog(tmp_path, 4)))
    deleted = json.loads(run(data_dir, model_cache, "delete", "p001", "p002").stdout)
    assert deleted["products_deleted"] == 2
    rebuilt = json.loads(run(data_dir, model_cache, "reindex", "--index-kind", "hnsw").stdout)
    assert rebuilt["vectors"] == 3 and rebuilt["index_kind"].startswith("hnsw")


def test_bad_setting_is_reported(tmp_path: Path, model_cache: Path) -> None:
    env: dict[str, Any] = dict(os.environ, IMAGESEARCH_INDEX_KIND="btree", IMAGESEARCH_MODEL_CACHE_DIR=str(model_cache))
    process = subprocess.run(
        [sys.executable, "-m", "imagesearch.cli", "--data-dir", str(tmp_path), "info"], env=env, capture_output=True, text=True
    )
    assert process.returncode != 0 and "index_kind" in process.stderr and "Traceback" not in process.stderr


def test_calibrate_dry_run(imported: tuple[Path, Path], model_cache: Path) -> None:
    _, data_dir = imported
    process = run(data_dir, model_cache, "calibrate", "--samples", "5", "--dry-run", "--progress")
    report = json.loads(process.stdout)
    assert report["saved"] is False and report["positives"] == report["negatives"] == 5 * 13
    assert 0.0 <= report["false_positive_rate"] <= 1.0 and report["min_inliers"] >= 6
    assert "calibrate" in process.stderr and "5/5" in process.stderr  # the progress bar


def test_calibrated_thresholds_show_in_info(tmp_path: Path, model_cache: Path) -> None:
    data_dir = tmp_path / "data"
    run(data_dir, model_cache, "import", str(write_catalog(tmp_path, 8)))
    report = json.loads(run(data_dir, model_cache, "calibrate", "--samples", "5").stdout)
    shown = json.loads(run(data_dir, model_cache, "info").stdout)["same_thresholds"]
    assert shown["min_inliers"] == report["min_inliers"] and shown["margin"] == report["margin"]
    assert shown["source"].startswith("calibrated on") and shown["recall"] == report["recall"]


def test_demo_builds_a_catalog_and_an_app_and_prints_examples(tmp_path: Path, model_cache: Path) -> None:
    out = run(tmp_path / "data", model_cache, "demo", "--no-serve", "--port", "8321").stdout
    assert "http://127.0.0.1:8321/" in out and "app_secret:" in out and "curl -s -F file=@" in out
    assert "aliexpress.ds.image.searchV2" in out
    info = json.loads(run(tmp_path / "data", model_cache, "info").stdout)
    assert info["products"] == 80 and info["images"] == 80 and info["distinct_images"] == 60
    again = run(tmp_path / "data", model_cache, "demo", "--no-serve").stdout  # reuses the catalog and the demo app
    apps = json.loads(run(tmp_path / "data", model_cache, "apps", "list").stdout)
    assert len(apps) == 1 and apps[0]["app_key"] in out and apps[0]["app_key"] in again


def test_compact_folds_deltas_and_info_shows_them(tmp_path: Path, model_cache: Path) -> None:
    data_dir = tmp_path / "data"
    env_ratio = {"IMAGESEARCH_COMPACT_DELTA_RATIO": "10"}  # no automatic compaction here
    run(data_dir, model_cache, "import", str(write_catalog(tmp_path / "a", 6)), env=env_ratio)
    run(data_dir, model_cache, "import", str(write_catalog(tmp_path / "b", 3, seed_offset=50)), env=env_ratio)
    run(data_dir, model_cache, "delete", "p001", env=env_ratio)
    index = json.loads(run(data_dir, model_cache, "info").stdout)["index"]
    assert index["segments"] == 2 and index["tombstones"] >= 1 and index["kind"] == "flat + 1 delta"
    assert index["last_compaction_at"] is None
    report = json.loads(run(data_dir, model_cache, "compact").stdout)
    assert report["compacted"] and report["segments_folded"] == 2
    index = json.loads(run(data_dir, model_cache, "info").stdout)["index"]
    assert index["segments"] == 1 and index["tombstones"] == 0 and index["kind"] == "flat" and index["vectors"] == report["vectors"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", index["last_compaction_at"])


def test_imports_compact_by_themselves_past_the_threshold(tmp_path: Path, model_cache: Path) -> None:
    data_dir = tmp_path / "data"
    run(data_dir, model_cache, "import", str(write_catalog(tmp_path / "a", 6)))
    report = json.loads(run(data_dir, model_cache, "import", str(write_catalog(tmp_path / "b", 4, seed_offset=50))).stdout)
    assert report["compaction"]["compacted"] and "more than 20%" in report["compaction"]["reason"]
    assert json.loads(run(data_dir, model_cache, "info").stdout)["index"]["segments"] == 1


def test_an_unknown_backend_is_refused_by_name(tmp_path: Path) -> None:
    from imagesearch.config import ConfigError, load_settings
    from imagesearch.workspace import Workspace

    for environ, message in (
        ({"IMAGESEARCH_VECTOR_STORE": "qdrant"}, "vector_store must be one of faiss, milvus, pgvector, not 'qdrant'"),
        ({"IMAGESEARCH_CATALOG_URL": "mysql://db/catalog"}, "catalog_url must be empty .* or a postgresql:// URL, not 'mysql'"),
        ({"IMAGESEARCH_VECTOR_STORE": "pgvector"}, "needs a PostgreSQL database"),
        ({"IMAGESEARCH_VECTOR_STORE": "milvus"}, "needs index_url"),
    ):
        with pytest.raises(ConfigError, match=message):
            Workspace(load_settings(tmp_path / "data", environ=environ))


@pytest.mark.parametrize(("environ", "message"), [
    ({"IMAGESEARCH_SAME_JOINT_INLIERS": "0"}, "same_min_inliers and same_joint_inliers must be at least 1"),
    ({"IMAGESEARCH_SAME_MARGIN": "-0.1"}, "same_margin and same_joint_margin must not be negative"),
    ({"IMAGESEARCH_IVF_NPROBE": "0"}, "ivf_nprobe and index_rerank must be at least 1"),
    ({"IMAGESEARCH_SIMILAR_CAP": "0"}, "similar_cap must be between 1 and 10000"),
])
def test_settings_out_of_range_are_refused_with_their_range(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    from imagesearch.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path / "data", environ=environ)


def test_an_unreachable_database_or_milvus_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    from servers import free_port

    from imagesearch.config import ConfigError, load_settings
    from imagesearch.workspace import Workspace

    for environ, message in (
        ({"IMAGESEARCH_CATALOG_URL": f"postgresql://shop:secret@127.0.0.1:{free_port()}/catalog"}, "cannot open the catalog database at"),
        ({"IMAGESEARCH_VECTOR_STORE": "milvus", "IMAGESEARCH_INDEX_URL": f"http://127.0.0.1:{free_port()}"}, "cannot reach Milvus at"),
    ):
        with pytest.raises(ConfigError, match=message) as caught:
            Workspace(load_settings(tmp_path / "data", environ=environ))
        assert "secret" not in str(caught.value)
