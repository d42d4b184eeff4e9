"""The FAISS vector store: segments (flat, ivf, hnsw), tombstones, the learned reduction, filters, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagesearch.errors import CatalogError
from imagesearch.index.base import IdSet, VectorReader
from imagesearch.index.faiss_index import FaissSettings, SegmentBuilder
from imagesearch.index.faiss_store import FaissStore
from imagesearch.index.projection import Projection

EMBEDDER = ("m", "v", 32)


def unit_vectors(count: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def clustered(count: int, dim: int = 32, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Vectors around a few centres, like embeddings of product photos (isotropic noise is no test of an ANN index)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(0, clusters, count)] + 0.35 * rng.normal(size=(count, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def reader(vectors: np.ndarray) -> VectorReader:
    """The catalog's role: the full vectors of the ids asked for (here, row i holds id i)."""
    return lambda ids: (np.asarray(ids, dtype=np.int64), vectors[np.asarray(ids, dtype=np.int64)])


def exact(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The true top-k ids among ``ids`` by inner product."""
    scores = queries @ vectors[ids].T
    return ids[np.argsort(-scores, axis=1, kind="stable")[:, :k]]


def base_of(store: FaissStore, generation: int, ids: np.ndarray, vectors: np.ndarray, embedder: tuple = EMBEDDER):
    return store.publish_base(generation, embedder, store.build_base(embedder, ids, reader(vectors)))


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_each_vector_finds_itself(kind: str, tmp_path: Path) -> None:
    vectors = clustered(6000)
    store = FaissStore(tmp_path, FaissSettings(kind=kind, dim=0))  # type: ignore[arg-type]
    base_of(store, 1, np.arange(6000), vectors)
    index = store.open(1, EMBEDDER)
    assert index.kind.startswith({"flat": "flat", "ivf": "ivf", "hnsw": "hnsw"}[kind])
    scores, ids = index.search(vectors[:200], 1)
    assert (ids[:, 0] == np.arange(200)).mean() >= 0.99
    assert np.allclose(scores[ids[:, 0] == np.arange(200), 0], 1.0, atol=0.02)


def test_auto_is_flat_when_small_and_ivf_when_large() -> None:
    auto = FaissSettings(kind="auto", ann_threshold=5000)
    assert auto.structure_for(4999) == "flat" and auto.structure_for(5000) == "ivf"
    assert FaissSettings(kind="ivf").structure_for(10) == "flat"  # too few vectors to learn cells from
    assert FaissSettings(kind="hnsw").structure_for(10) == "hnsw"


def test_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        SegmentBuilder(32, "flat", 3, FaissSettings()).add(np.arange(3), unit_vectors(3, dim=16))


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=10_000))
def test_search_returns_best_first(count: int, seed: int) -> None:
    vectors = unit_vectors(count, seed=seed)
    builder = SegmentBuilder(32, "flat", count, FaissSettings())
    builder.add(np.arange(count), vectors)
    scores, ids = builder.finish().search(vectors[:1], vectors[:1], 10, None, np.zeros(0, np.int64))
    assert ids[0, 0] == 0
    assert (np.diff(scores[0][ids[0] >= 0]) <= 1e-6).all()


def test_store_refuses_a_foreign_embedder(tmp_path: Path) -> None:
    store = FaissStore(tmp_path)
    base_of(store, 1, np.arange(5), unit_vectors(5))
    assert len(store.open(1, EMBEDDER)) == 5
    with pytest.raises(CatalogError, match="reindex --re-embed"):
        store.open(1, ("model-b", "v", 32))


def test_store_sweeps_what_the_kept_state_does_not_use(tmp_path: Path) -> None:
    store = FaissStore(tmp_path)
    vectors = unit_vectors(20)
    state = base_of(store, 1, np.arange(4), vectors)
    for generation in (2, 3):
        state = store.publish_delta(state, generation, EMBEDDER, np.arange(generation * 4, generation * 4 + 4), reader(vectors), np.array([]))
    base_of(store, 4, np.arange(3), vectors)  # an orphan: published, never recorded
    (tmp_path / ".staging-leftover").mkdir()
    store.sweep(keep=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seg-00000001", "seg-00000002", "seg-00000003", "state-00000003.json"]


def test_segments_and_tombstones_search_exactly_like_one_index(tmp_path: Path) -> None:
    """Base + deltas - tombstones answer what one exact index of the live vectors answers."""
    store = FaissStore(tmp_path, FaissSettings(dim=0))
    vectors = unit_vectors(300, seed=3)
    state = base_of(store, 1, np.arange(200), vectors)
    state = store.publish_delta(state, 2, EMBEDDER, np.arange(200, 250), reader(vectors), np.array([3, 7, 210]))
    state = store.publish_delta(state, 3, EMBEDDER, np.arange(250, 300), reader(vectors), np.array([11, 260]))
    segmented = store.open(3, EMBEDDER)
    live = np.setdiff1d(np.arange(300), [3, 7, 11, 210, 260])
    assert len(segmented) == 295 and state.count == 295 and segmented.kind == "flat + 2 deltas"
    queries = unit_vectors(20, seed=9)
    got_scores, got = segmented.search(queries, 25)
    stored = vectors.astype(np.float16).astype(np.float32)  # flat segments keep float16
    assert got.tolist() == exact(stored, live, queries, 25).tolist()
    assert np.allclose(got_scores, np.sort(queries @ stored[live].T, axis=1)[:, ::-1][:, :25], atol=1e-5)
    assert sorted(segmented.live_ids().tolist()) == live.tolist()


def test_a_new_state_reuses_the_segments_already_open(tmp_path: Path) -> None:
    store = FaissStore(tmp_path)
    vectors = unit_vectors(11)
    state = base_of(store, 1, np.arange(10), vectors)
    first = store.open(1, EMBEDDER)
    store.publish_delta(state, 2, EMBEDDER, np.array([10]), reader(vectors), np.array([]))
    second = store.open(2, EMBEDDER, reuse=first)
    assert second.segments[0][1] is first.segments[0][1] and len(second) == 11


def test_the_earlier_layout_is_read_as_one_segment(tmp_path: Path) -> None:
    """A gen-<n>/ folder with a manifest (the layout before segments) still opens, and the next write moves on."""
    import faiss

    legacy = tmp_path / "gen-00000004"
    legacy.mkdir()
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(32))
    old.add_with_ids(unit_vectors(6), np.arange(6))
    faiss.write_index(old, str(legacy / "vectors.faiss"))
    (legacy / "index.json").write_text(json.dumps({"structure": "flat", "dim": 32, "tombstones": [5]}))
    (legacy / "manifest.json").write_text(json.dumps(
        {"generation": 4, "embedder_name": "m", "embedder_version": "v", "dim": 32, "count": 6, "created_at": 0.0}
    ))
    store = FaissStore(tmp_path)
    index = store.open(4, EMBEDDER)
    assert len(index) == 5 and 5 not in index.search(unit_vectors(6)[5], 6)[1][0].tolist()
    store.publish_delta(store.state(4), 5, EMBEDDER, np.array([6]), reader(unit_vectors(7, seed=2)), np.array([0]))
    store.sweep(keep=5)
    assert len(store.open(5, EMBEDDER)) == 5 and (tmp_path / "gen-00000004").exists()


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("share", [0.5, 0.01])
def test_a_filter_inside_the_search_returns_the_best_kept(tmp_path: Path, kind: str, share: float) -> None:
    """Filtered search (bitmap selector, or an exact scan when few are kept) matches exact search over the kept ids."""
    count = 8000
    store = FaissStore(tmp_path, FaissSettings(kind=kind, dim=0))  # type: ignore[arg-type]
    vectors = clustered(count, seed=4)
    state = base_of(store, 1, np.arange(7000), vectors)
    store.publish_delta(state, 2, EMBEDDER, np.arange(7000, count), reader(vectors), np.array([1, 2, 7600]))
    segmented = store.open(2, EMBEDDER)
    rng = np.random.default_rng(1)
    kept = np.setdiff1d(rng.choice(count, int(count * share), replace=False), [1, 2, 7600])
    only = IdSet(np.concatenate([kept, [2]]))  # a stale filter may name a tombstone: still never returned
    queries = clustered(20, seed=11)
    _, got = segmented.search(queries, 10, only=only)
    assert set(got[got >= 0].tolist()) <= set(kept.tolist())
    want = exact(vectors, kept, queries, 10)
    recall = np.mean([len(set(g.tolist()) & set(w.tolist())) / 10 for g, w in zip(got, want, strict=True)])
    # flat: exact; a selective filter: an exact scan (of 8-bit codes for ivf); else the approximate walk
    assert recall >= {"flat": 1.0, "ivf": 0.98 if share < 0.05 else 0.9, "hnsw": 1.0 if share < 0.05 else 0.9}[kind]


def test_the_reduction_keeps_scores_and_is_exact_for_small_catalogs() -> None:
    """Scores after the uncentred projection stay cosines: exact for vectors in the learned span, close otherwise."""
    small = unit_vectors(10, dim=64, seed=1)
    projection = Projection.learn(small, 16)
    assert projection is not None and projection.basis.shape == (64, 16)
    queries = unit_vectors(5, dim=64, seed=2)
    assert np.allclose(projection.apply(queries) @ projection.apply(small).T, queries @ small.T, atol=1e-5)
    assert Projection.learn(small, 64) is None  # nothing to reduce
    many = clustered(4000, dim=64, clusters=8, seed=3)
    projection = Projection.learn(many, 32)
    assert projection is not None
    error = np.abs(projection.apply(many[:200]) @ projection.apply(many[200:400]).T - many[:200] @ many[200:400].T)
    assert np.median(error) < 0.05


def test_a_learned_reduction_is_stored_shared_by_deltas_and_relearned_by_compaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deltas use the base's reduction; a new base learns its own while older deltas keep theirs; results merge."""
    from imagesearch.index import faiss_store

    monkeypatch.setattr(faiss_store, "MIN_LEARN", 100)
    store = FaissStore(tmp_path, FaissSettings(dim=8))
    rng = np.random.default_rng(5)  # vectors near a 6-d subspace of the 32-d space: 8 learned dimensions keep them apart
    basis, _ = np.linalg.qr(rng.normal(size=(32, 6)))
    vectors = unit_vectors(600, dim=6, seed=5) @ basis.T + 0.01 * rng.normal(size=(600, 32))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    state = store.publish_delta(None, 1, EMBEDDER, np.arange(300), reader(vectors), np.array([]))
    assert len(state.projections) == 1 and store.describe(state)["dimensions"] == 8
    state = store.publish_delta(state, 2, EMBEDDER, np.arange(300, 400), reader(vectors), np.array([0]))
    assert len(state.projections) == 1  # the delta shares the base's reduction
    build = store.build_base(EMBEDDER, store.open(2, EMBEDDER).live_ids(), reader(vectors), folds=state)
    later = store.publish_delta(state, 3, EMBEDDER, np.arange(400, 600), reader(vectors), np.array([1]))  # written during the build
    state = store.publish_base(4, EMBEDDER, build, later=later, compacted=True)
    assert len(state.segments) == 2 and len(state.projections) == 2 and state.tombstone_count == 1
    store.sweep(keep=4)
    index = store.open(4, EMBEDDER)
    live = np.setdiff1d(np.arange(600), [0, 1])
    assert sorted(index.live_ids().tolist()) == live.tolist() and len(index) == 598
    queries = vectors[live[::50]]
    _, got = index.search(queries, 1)
    assert (got[:, 0] == live[::50]).all()  # each finds itself through the reduced spaces


def test_a_state_of_a_newer_layout_is_refused_with_the_way_out(tmp_path: Path) -> None:
    store = FaissStore(tmp_path)
    base_of(store, 1, np.arange(5), unit_vectors(5))
    path = tmp_path / "state-00000001.json"
    document = json.loads(path.read_text())
    assert document["layout"] == 2
    path.write_text(json.dumps({**document, "layout": 3, "shards": 4}))
    with pytest.raises(CatalogError, match="newer version of imagesearch.*imagesearch reindex"):
        store.open(1, EMBEDDER)


@pytest.mark.parametrize("spread", [1, 9], ids=["dense ids", "sparse ids"])
def test_a_compact_segment_re_ranks_its_candidates_on_full_precision_vectors(
    spread: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Codes find the candidates, full vectors score them: the scores are exact cosines and the order is exact.

    Sparse ids (after many removals) find their rows by binary search instead of the dense table.
    """
    from imagesearch.index import faiss_store

    monkeypatch.setattr(faiss_store, "MIN_LEARN", 100)
    store = FaissStore(tmp_path, FaissSettings(kind="ivf", dim=16, nprobe=1000))
    live = np.arange(5000) * spread
    vectors = np.zeros((5000 * spread, 32), np.float32)
    vectors[live] = clustered(5000, seed=8)
    base_of(store, 1, live, vectors)
    index = store.open(1, EMBEDDER)
    assert index.kind.startswith("ivf") and len(index.projections) == 1
    assert (index.segments[0][1].exact._table is None) == (spread > 1)
    # Opened cold (a compaction reads only the ids); a searcher warms it: the same rows, page tables filled.
    rows = index.segments[0][1].exact
    cold = np.asarray(rows.vectors).copy()
    assert not rows._warm
    index.warm()
    assert rows._warm and np.array_equal(np.asarray(rows.vectors), cold)
    queries = clustered(10, seed=9)
    scores, ids = index.search(queries, 10)
    stored = vectors.astype(np.float16).astype(np.float32)
    assert np.allclose(scores, np.take_along_axis(queries @ stored.T, ids, axis=1), atol=1e-5)  # exact cosines
    truth = exact(stored, live, queries, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), truth.tolist(), strict=True)]) >= 0.95


def test_a_sweep_leaves_a_live_compaction_s_base_alone(tmp_path: Path) -> None:
    import os

    store = FaissStore(tmp_path)
    base_of(store, 1, np.arange(5), unit_vectors(5))
    mine, dead = tmp_path / f".building-{os.getpid()}-x", tmp_path / ".building-999999999-y"
    mine.mkdir()
    dead.mkdir()
    store.sweep(keep=1)
    assert mine.exists() and not dead.exists()
