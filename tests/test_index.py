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
    store.publish_base(index, 1, ("model-a", "v1", 32))
    assert len(store.load(1, "model-a", "v1", 32)) == 5
    with pytest.raises(CatalogError, match="reindex --re-embed"):
        store.load(1, "model-b", "v1", 32)


def test_store_sweeps_what_the_kept_state_does_not_use(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    vectors = unit_vectors(12)
    state = store.publish_base(FaissIndex(32), 1, ("m", "v", 32))
    for generation in (2, 3):
        state = store.publish_delta(state, generation, ("m", "v", 32), np.arange(generation * 4, generation * 4 + 4), vectors[:4], np.array([]))
    store.publish_base(FaissIndex(32), 4, ("m", "v", 32))  # an orphan: published, never recorded
    (tmp_path / ".staging-leftover").mkdir()
    store.sweep(keep=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seg-00000001", "seg-00000002", "seg-00000003", "state-00000003.json"]


def test_segments_and_tombstones_search_exactly_like_one_index(tmp_path: Path) -> None:
    """Base + deltas - tombstones answer what one flat index of the live vectors answers."""
    store = IndexStore(tmp_path)
    vectors = unit_vectors(300, seed=3)
    base = FaissIndex(32)
    base.add(np.arange(200), vectors[:200])
    state = store.publish_base(base, 1, ("m", "v", 32))
    state = store.publish_delta(state, 2, ("m", "v", 32), np.arange(200, 250), vectors[200:250], np.array([3, 7, 210]))
    state = store.publish_delta(state, 3, ("m", "v", 32), np.arange(250, 300), vectors[250:300], np.array([11, 260]))
    segmented = store.load(3, "m", "v", 32)
    live = np.setdiff1d(np.arange(300), [3, 7, 11, 210, 260])
    reference = FaissIndex(32, FaissSettings(kind="flat"))
    reference.add(live, vectors[live])
    assert len(segmented) == len(reference) == 295 and state.count == 295 and segmented.kind == "flat + 2 deltas"
    for query in unit_vectors(20, seed=9):
        got_scores, got = segmented.search(query, 25)
        want_scores, want = reference.search(query, 25)
        assert got.tolist() == want.tolist() and np.allclose(got_scores, want_scores, atol=1e-6)
    ids, _ = segmented.live_vectors()
    assert sorted(ids.tolist()) == live.tolist()


def test_a_new_state_reuses_the_segments_already_open(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    base = FaissIndex(32)
    base.add(np.arange(10), unit_vectors(10))
    state = store.publish_base(base, 1, ("m", "v", 32))
    first = store.load(1, "m", "v", 32, mmap=True)
    store.publish_delta(state, 2, ("m", "v", 32), np.array([10]), unit_vectors(1, seed=5), np.array([]))
    second = store.load(2, "m", "v", 32, mmap=True, cache=dict(first.segments))
    assert second.segments[0][1] is first.segments[0][1] and len(second) == 11


def test_the_earlier_layout_is_read_as_one_segment(tmp_path: Path) -> None:
    """A gen-<n>/ folder with a manifest (the layout before segments) still opens, and the next write moves on."""
    import json

    legacy = tmp_path / "gen-00000004"
    index = FaissIndex(32)
    index.add(np.arange(6), unit_vectors(6))
    index.save(legacy)
    (legacy / "manifest.json").write_text(json.dumps(
        {"generation": 4, "embedder_name": "m", "embedder_version": "v", "dim": 32, "count": 6, "created_at": 0.0}
    ))
    store = IndexStore(tmp_path)
    assert len(store.load(4, "m", "v", 32)) == 6
    store.publish_delta(store.state(4), 5, ("m", "v", 32), np.array([6]), unit_vectors(1, seed=2), np.array([0]))
    store.sweep(keep=5)
    assert len(store.load(5, "m", "v", 32)) == 6 and (tmp_path / "gen-00000004").exists()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("share", [0.5, 0.01])
def test_a_filter_inside_the_search_returns_the_exact_best_kept(tmp_path: Path, kind: str, share: float) -> None:
    """Filtered search (bitmap selector, or an exact scan when few are kept) equals a flat index of the kept ids."""
    from imagesearch.index.faiss_index import IdFilter

    store = IndexStore(tmp_path, FaissSettings(kind=kind))  # type: ignore[arg-type]
    vectors = unit_vectors(3000, seed=4)
    base = FaissIndex(32, FaissSettings(kind=kind))  # type: ignore[arg-type]
    base.add(np.arange(2500), vectors[:2500])
    state = store.publish_base(base, 1, ("m", "v", 32))
    store.publish_delta(state, 2, ("m", "v", 32), np.arange(2500, 3000), vectors[2500:], np.array([1, 2, 2600]))
    segmented = store.load(2, "m", "v", 32)
    rng = np.random.default_rng(1)
    kept = np.setdiff1d(rng.choice(3000, int(3000 * share), replace=False), [1, 2, 2600])
    only = IdFilter(np.concatenate([kept, [2]]))  # a stale filter may name a tombstone: still never returned
    reference = FaissIndex(32, FaissSettings(kind="flat"))
    reference.add(kept, vectors[kept])
    hits = 0
    for query in unit_vectors(10, seed=11):
        _, got = segmented.search(query, 10, only=only)
        _, want = reference.search(query, 10)
        assert set(got[0][got[0] >= 0].tolist()) <= set(kept.tolist())
        hits += len(set(got[0].tolist()) & set(want[0].tolist()))
    assert hits / (10 * min(10, len(kept))) >= (1.0 if kind == "flat" or share < 0.05 else 0.95)
