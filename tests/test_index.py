"""The FAISS index: exact and HNSW, add/remove, tombstones, persistence, generations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagesearch.errors import CatalogError
from imagesearch.index.faiss_index import FaissIndex, FaissSettings
from imagesearch.index.store import IndexStore


def unit_vectors(count: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_each_vector_finds_itself(kind: str) -> None:
    vectors = unit_vectors(500)
    index = FaissIndex(32, FaissSettings(kind=kind))
    index.add(np.arange(1000, 1500), vectors)
    scores, ids = index.search(vectors[:50], 1)
    assert (ids[:, 0] == np.arange(1000, 1050)).all()
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_removed_ids_are_never_returned(kind: str, tmp_path: Path) -> None:
    vectors = unit_vectors(300)
    index = FaissIndex(32, FaissSettings(kind=kind, rebuild_tombstone_ratio=0.9))
    index.add(np.arange(300), vectors)
    index.remove(np.arange(0, 300, 2))
    assert len(index) == 150
    _, ids = index.search(vectors, 10)
    assert not set(ids.ravel().tolist()) & set(range(0, 300, 2))
    index.save(tmp_path)
    _, ids = FaissIndex.load(tmp_path, FaissSettings(kind=kind)).search(vectors, 10)
    assert not set(ids.ravel().tolist()) & set(range(0, 300, 2))


def test_auto_switches_structure_both_ways() -> None:
    vectors = unit_vectors(120)
    index = FaissIndex(32, FaissSettings(kind="auto", hnsw_threshold=100))
    index.add(np.arange(80), vectors[:80])
    assert index.kind == "flat"
    index.add(np.arange(80, 120), vectors[80:])
    assert index.kind.startswith("hnsw") and len(index) == 120
    index.remove(np.arange(0, 60))
    assert index.kind == "flat" and len(index) == 60
    _, ids = index.search(vectors[100:101], 1)
    assert ids[0, 0] == 100


def test_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        FaissIndex(32).add(np.arange(3), unit_vectors(3, dim=16))


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=10_000))
def test_search_returns_best_first(count: int, seed: int) -> None:
    vectors = unit_vectors(count, seed=seed)
    index = FaissIndex(32, FaissSettings(kind="flat"))
    index.add(np.arange(count), vectors)
    scores, ids = index.search(vectors[:1], 10)
    assert ids[0, 0] == 0
    assert (np.diff(scores[0][ids[0] >= 0]) <= 1e-6).all()


def test_store_refuses_a_foreign_embedder(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    index = FaissIndex(32)
    index.add(np.arange(5), unit_vectors(5))
    store.publish(index, 1, "model-a", "v1")
    assert len(store.load(1, "model-a", "v1", 32)) == 5
    with pytest.raises(CatalogError, match="reindex --re-embed"):
        store.load(1, "model-b", "v1", 32)


def test_store_sweeps_old_generations(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    for generation in (1, 2, 3):
        store.publish(FaissIndex(32), generation, "m", "v")
    (tmp_path / ".staging-leftover").mkdir()
    store.sweep(keep=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["gen-00000003"]
