"""Kill an import at any moment: the catalog and the index hold all of it or none of it.

Two ways: SIGKILL injected at each step of the commit protocol (deterministic),
and SIGKILL from outside at moments spread over a whole import.
"""

from __future__ import annotations

import json
import os
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
from conftest import write_catalog

from imagesearch.index.faiss_index import FaissIndex
from imagesearch.ingest.importer import import_file
from imagesearch.workspace import Workspace


def product_ids(workspace: Workspace) -> set[str]:
    views = workspace.catalog.products_by_pk(list(range(1, 1000)))
    return {view.product_id for view in views.values()}


def assert_consistent(workspace: Workspace) -> None:
    """The current index generation exists and holds exactly the catalog's image ids."""
    generation = workspace.generation()
    index: FaissIndex = workspace.load_index(generation)
    with workspace.catalog.writer() as writer:
        catalog_ids = set()
        for ids, _ in writer.iter_vectors():
            catalog_ids.update(ids.tolist())
    live = set()
    if len(index):
        _, found = index.search(np.eye(index.dim, dtype=np.float32)[:1], len(index))
        live = set(found[0][found[0] >= 0].tolist())
    assert len(index) == len(catalog_ids)
    assert live == catalog_ids


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
    env = dict(os.environ)
    env["IMAGESEARCH_DATA_DIR"] = str(workspace.data_dir)
    env["IMAGESEARCH_MODEL_CACHE_DIR"] = workspace.settings.model_cache_dir
    return env


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from imagesearch.catalog import store as catalog_store
    from imagesearch.index import store as index_store
    from imagesearch.config import load_settings
    from imagesearch.ingest.importer import import_file
    from imagesearch.workspace import Workspace, GENERATION_KEY

    point, catalog_file = sys.argv[1], Path(sys.argv[2])

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

    if point == "before_publish":
        wrap(index_store.IndexStore, "publish", before=True)
    elif point == "staging_written":
        wrap(index_store, "_fsync_dir", when=lambda path: ".staging-" in str(path))
    elif point == "after_rename":
        wrap(index_store.os, "rename")
    elif point == "before_commit":
        wrap(catalog_store.CatalogWriter, "set_meta", when=lambda self, key, value: key == "last_write_at")
    elif point == "after_commit":
        wrap(index_store.IndexStore, "sweep", before=True)
    import_file(Workspace(load_settings()), catalog_file, replace=True)
    """
)


@pytest.mark.parametrize(
    ("point", "committed"),
    [("before_publish", False), ("staging_written", False), ("after_rename", False), ("before_commit", False), ("after_commit", True)],
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
    leftovers = [path.name for path in after.index_store.root.iterdir()]
    assert leftovers == [after.index_store.path(after.generation()).name]


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
