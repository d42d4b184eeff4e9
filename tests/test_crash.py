"""Kill an import at any moment: the catalog and the index hold all of it or none of it.

Two ways: SIGKILL injected at each step of the commit protocol (deterministic),
and SIGKILL from outside at moments spread over a whole import.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import backend_settings, settings_environment, write_catalog

from imagesearch.index import faiss_index
from imagesearch.ingest.compact import compact
from imagesearch.ingest.importer import delete_products, import_file
from imagesearch.workspace import Workspace


def product_ids(workspace: Workspace) -> set[str]:
    views = workspace.catalog.products_by_pk(list(range(1, 1000)))
    return {view.product_id for view in views.values()}


def assert_consistent(workspace: Workspace) -> None:
    """The current index generation exists and holds exactly the catalog's image ids."""
    generation = workspace.generation()
    index = workspace.open_index(generation)
    with workspace.catalog.writer() as writer:
        catalog_ids = set(writer.image_ids().tolist())
    found = set()
    if len(index):
        _, ids = index.search(np.eye(index.dim, dtype=np.float32)[:1], len(index))
        found = set(ids[0][ids[0] >= 0].tolist())
    assert len(index) == len(catalog_ids)
    assert set(index.live_ids().tolist()) == found == catalog_ids


@pytest.fixture
def two_states(tmp_path: Path, make_settings: Callable[..., Any]) -> tuple[Workspace, Path, set[str], set[str]]:
    """A data dir holding state A, and a --replace import file that leads to state B."""
    first = write_catalog(tmp_path / "a", 6)
    workspace = Workspace(make_settings(tmp_path / "data"))
    import_file(workspace, first)
    state_a = product_ids(workspace)
    second = write_catalog(tmp_path / "b", 40, seed_offset=500)
    rows = [json.loads(line) for line in second.read_text().splitlines()][3:]  # p000-p002 deleted, p003-p005 updated
    second.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    state_b = {row["product_id"] for row in rows}
    return workspace, second, state_a, state_b


def _environment(workspace: Workspace) -> dict[str, str]:
    return settings_environment(workspace.settings)


#: What both kill scripts start with: ``wrap(owner, name)`` makes a call SIGKILL the process before or after it runs.
PRELUDE = textwrap.dedent(
    """
    import os, signal, sys

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner, name, before=False, when=lambda *a, **k: True):
        real = getattr(owner, name)
        def patched(*args, **kwargs):
            if before and when(*args, **kwargs):
                die()
            result = real(*args, **kwargs)
            if not before and when(*args, **kwargs):
                die()
            return result
        setattr(owner, name, patched)

    def kill_while_publishing(point):
        # The index store's own steps, the same for a write and a compaction; False for any other point.
        from imagesearch.index import faiss_store as index_store
        if point in ("staging_written", "base_written"):
            wrap(index_store, "_fsync_dir", when=lambda path: ".staging-" in str(path) or ".building-" in str(path))
        elif point == "after_rename":
            wrap(index_store.os, "rename")
        elif point == "projection_written":
            wrap(index_store.FaissStore, "_write_file", when=lambda self, name, write: name.startswith("proj-"))
        elif point == "state_written":
            wrap(index_store.FaissStore, "_write_file", when=lambda self, name, write: name.startswith("state-"))
        elif point == "after_commit":
            wrap(index_store.FaissStore, "sweep", before=True)
        else:
            return False
        return True
    """
)

KILLER = PRELUDE + textwrap.dedent(
    """
    from pathlib import Path
    from imagesearch.catalog import sql as catalog_store
    from imagesearch.index import faiss_store as index_store
    from imagesearch.config import load_settings
    from imagesearch.ingest.importer import import_file
    from imagesearch.workspace import Workspace

    point, catalog_file = sys.argv[1], Path(sys.argv[2])

    if point == "before_publish":
        wrap(index_store.FaissStore, "publish_delta", before=True)
    elif point == "before_commit":
        wrap(catalog_store.SqlCatalogWriter, "set_meta", when=lambda self, key, value: key == "last_write_at")
    else:
        assert kill_while_publishing(point), point
    import_file(Workspace(load_settings()), catalog_file, replace=True)
    """
)


def assert_swept(workspace: Workspace) -> None:
    """index/ holds exactly what the state in force uses."""
    state = workspace.index_state()
    used = {*state.segments, *state.projections, f"state-{state.generation:08d}.json"} | ({state.tombstones} if state.tombstones else set())
    assert {path.name for path in (workspace.data_dir / "index").iterdir()} == used


@pytest.mark.parametrize(
    ("point", "committed"),
    [("before_publish", False), ("staging_written", False), ("after_rename", False), ("state_written", False),
     ("before_commit", False), ("after_commit", True)],
)
def test_sigkill_at_each_commit_step(two_states: Any, point: str, committed: bool) -> None:
    workspace, second, state_a, state_b = two_states
    process = subprocess.run([sys.executable, "-c", KILLER, point, str(second)], env=_environment(workspace), capture_output=True)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    after = Workspace(workspace.settings)
    assert product_ids(after) == (state_b if committed else state_a)
    assert_consistent(after)
    import_file(after, second, replace=True)  # and the next import goes through
    assert product_ids(after) == state_b
    assert_consistent(after)
    assert_swept(after)


COMPACTION_KILLER = PRELUDE + textwrap.dedent(
    """
    from imagesearch.catalog import sql as catalog_store
    from imagesearch.index import faiss_index, faiss_store
    from imagesearch.config import load_settings
    from imagesearch.ingest import compact as compaction
    from imagesearch.catalog.meta import GENERATION_KEY
    from imagesearch.workspace import Workspace

    point = sys.argv[1]

    faiss_store.MIN_LEARN = 4  # so that this small catalog learns a reduction (written at publication)
    if point == "while_building":
        wrap(faiss_index.SegmentBuilder, "add")
    elif point == "before_commit":
        wrap(catalog_store.SqlCatalogWriter, "set_meta", when=lambda self, key, value: key == GENERATION_KEY)
    else:
        assert kill_while_publishing(point), point
    compaction.compact(Workspace(load_settings()))
    """
)


@pytest.fixture
def with_deltas(two_states: Any) -> tuple[Workspace, set[str]]:
    """State B reached by a delta (segments and tombstones over A's base)."""
    workspace, second, _, state_b = two_states
    import_file(workspace, second, replace=True)
    state = workspace.index_state()
    assert len(state.segments) == 2 and state.tombstone_count > 0
    return workspace, state_b


@pytest.mark.parametrize(
    ("point", "committed"),
    [("while_building", False), ("projection_written", False), ("base_written", False), ("after_rename", False),
     ("state_written", False), ("before_commit", False), ("after_commit", True)],
)
def test_sigkill_at_each_compaction_step(with_deltas: Any, point: str, committed: bool) -> None:
    workspace, state_b = with_deltas
    before = workspace.generation()
    environment = {**_environment(workspace), "IMAGESEARCH_INDEX_DIM": "16"}
    process = subprocess.run([sys.executable, "-c", COMPACTION_KILLER, point], env=environment, capture_output=True)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    after = Workspace(workspace.settings)
    assert product_ids(after) == state_b
    assert after.generation() == (before + 1 if committed else before)
    assert len(after.index_state().segments) == (1 if committed else 2)
    assert_consistent(after)
    assert bool(after.index_state().projections) == committed  # the reduction is in force only once committed
    compact(after)  # and the next compaction goes through
    assert len(after.index_state().segments) == 1 and after.index_state().tombstone_count == 0
    assert_consistent(after)
    delete_products(after, ["no-such-product"])  # the next write sweeps what the kill left
    assert_swept(after)


def test_writes_made_during_a_compaction_are_kept(with_deltas: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An import and a delete that land while the new base is being built are in the compacted index."""
    workspace, state_b = with_deltas
    extra = write_catalog(tmp_path / "extra", 3, seed_offset=900)
    rows = [json.loads(line) for line in extra.read_text().splitlines()]
    for row in rows:
        row["product_id"] = "x" + row["product_id"]
    extra.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    victim = sorted(state_b)[0]

    real_add = faiss_index.SegmentBuilder.add
    writes: list[str] = []

    def add_then_write(self: faiss_index.SegmentBuilder, ids: np.ndarray, vectors: np.ndarray) -> None:
        real_add(self, ids, vectors)
        if not writes:  # the compaction's base, not the import's own segment
            writes.append("done")
            import_file(workspace, extra)  # takes the write lock the compaction does not hold yet
            delete_products(workspace, [victim])

    monkeypatch.setattr(faiss_index.SegmentBuilder, "add", add_then_write)
    report = compact(workspace)
    assert report.compacted
    state = workspace.index_state()
    assert len(state.segments) == 2 and state.tombstone_count >= 1  # the base, the import's segment; the delete's tombstones
    assert product_ids(workspace) == (state_b - {victim}) | {row["product_id"] for row in rows}
    assert_consistent(workspace)


def test_sigkill_at_random_moments(two_states: Any) -> None:
    workspace, second, state_a, state_b = two_states
    command = [sys.executable, "-m", "imagesearch.cli", "import", str(second), "--replace", "--no-progress"]
    started = time.perf_counter()
    subprocess.run(command, env=_environment(workspace), check=True, capture_output=True)
    duration = time.perf_counter() - started
    # Back to state A, then kill at moments spread over the whole run.
    import_file(workspace, second.parent.parent / "a" / "catalog.jsonl", replace=True)
    outcomes = []
    for fraction in (0.2, 0.4, 0.6, 0.75, 0.85, 0.9, 0.95, 0.98):
        process = subprocess.Popen(command, env=_environment(workspace), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(duration * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        after = Workspace(workspace.settings)
        ids = product_ids(after)
        assert ids in (state_a, state_b), f"half-written catalog after a kill at {fraction:.0%}"
        assert_consistent(after)
        outcomes.append(ids == state_b)
        if ids == state_b:
            import_file(after, second.parent.parent / "a" / "catalog.jsonl", replace=True)
        after.close()
    assert not all(outcomes), "no kill landed before the commit; the test proves nothing"


def test_a_generation_swept_while_it_is_opened_is_reported_as_replaced(with_deltas: Any) -> None:
    """A reader that lost the race with a writer's sweep gets CatalogError (and the engine reads the new
    generation again), not a FileNotFoundError that would answer 500."""
    from imagesearch.errors import CatalogError

    workspace, _ = with_deltas
    state = workspace.index_state()
    (workspace.data_dir / "index" / state.tombstones).unlink()
    with pytest.raises(CatalogError, match="replaced while it was being opened"):
        workspace.open_index(state.generation)
    (workspace.data_dir / "index" / f"state-{state.generation:08d}.json").unlink()
    with pytest.raises(CatalogError, match="missing"):
        workspace.open_index(state.generation)


SERVER_KILLER = PRELUDE + textwrap.dedent(
    """
    from pathlib import Path
    from imagesearch.config import load_settings
    from imagesearch.index import milvus_store, pgvector_store
    from imagesearch.ingest.importer import import_file
    from imagesearch.workspace import Workspace

    point, catalog_file, store = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    owner = {"pgvector": pgvector_store.PgVectorStore, "milvus": milvus_store.MilvusStore}[store]
    if point == "before_vectors":
        wrap(owner, "publish_delta", before=True)
    elif point == "after_vectors":  # the vectors are committed in their system; the catalog's transaction is not
        wrap(owner, "publish_delta")
    else:
        wrap(owner, "sweep", before=True)
    import_file(Workspace(load_settings()), catalog_file, replace=True)
    """
)


@pytest.mark.parametrize("store", ["pgvector", "milvus"])
@pytest.mark.parametrize(("point", "committed"), [("before_vectors", False), ("after_vectors", False), ("after_commit", True)])
def test_sigkill_between_the_catalog_and_a_vector_server(
    tmp_path: Path, make_settings: Callable[..., Any], request: pytest.FixtureRequest, store: str, point: str, committed: bool
) -> None:
    """PostgreSQL catalog, vectors in pgvector or Milvus (two commits): killed between them, searches see state A
    exactly, and the next import repairs and reaches B."""
    workspace = Workspace(backend_settings(f"postgresql+{store}", tmp_path / "data", make_settings, request))
    import_file(workspace, write_catalog(tmp_path / "a", 6))
    state_a = product_ids(workspace)
    second = write_catalog(tmp_path / "b", 12, seed_offset=500)
    rows = [json.loads(line) for line in second.read_text().splitlines()][3:]  # p000-p002 deleted, p003-p005 updated
    second.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    state_b = {row["product_id"] for row in rows}
    workspace.close()
    process = subprocess.run([sys.executable, "-c", SERVER_KILLER, point, str(second), store], env=_environment(workspace), capture_output=True)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    after = Workspace(workspace.settings)
    assert product_ids(after) == (state_b if committed else state_a)
    assert_consistent(after)
    import_file(after, second, replace=True)
    assert product_ids(after) == state_b
    assert_consistent(after)
    after.close()
