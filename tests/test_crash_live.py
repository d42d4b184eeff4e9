"""SIGKILL the running server while it takes live PUT and DELETE requests under concurrent searches.

Each round starts ``imagesearch serve`` (background compactions after nearly every write), sends
catalog writes one after another while two clients search without pause, and kills the server's
whole process group at a random moment.  Then, with the server gone:

- the catalog's image ids are exactly the index's searchable ids (nothing half-written);
- every write the server acknowledged is there (durability), and the one in flight at the kill is
  either wholly there or wholly absent;
- no search was answered with a 5xx before the kill;
- the next round's server starts on what the kill left, and its writes go through.

The default run kills at a few points; ``-m slow`` runs the long version (60 kill points).
"""

from __future__ import annotations

import http.server
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import cli, jpeg_bytes, product_image, product_record, write_catalog

from imagesearch.config import load_settings
from imagesearch.workspace import Workspace

ADMIN = {"Authorization": "Bearer admin-secret"}


class _Images(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = jpeg_bytes(product_image(int(self.path.rsplit("/", 1)[1].split(".")[0])))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server fetching it was killed

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    server = _Images(("127.0.0.1", 0), _ImageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(data_dir: Path, model_cache: Path, log: Any) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ, IMAGESEARCH_MODEL_CACHE_DIR=str(model_cache), IMAGESEARCH_ADMIN_TOKEN="admin-secret",
               IMAGESEARCH_ALLOW_PRIVATE_IMPORT_URLS="true", IMAGESEARCH_COMPACT_MAX_DELTAS="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "imagesearch.cli", "--data-dir", str(data_dir), "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,  # its own group: compactions die with it
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.time() < deadline, "the server did not start after a kill"
        time.sleep(0.1)


def _searches(base: str, stop: threading.Event, failures: list[str], answered: list[int]) -> None:
    files = {"file": ("q.jpg", jpeg_bytes(product_image(2)), "image/jpeg")}
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                response = client.post(f"{base}/v1/search", files=files, data={"ship_to": "US"})
            except httpx.HTTPError:
                continue  # the server is being killed
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(f"{response.status_code} {response.text[:300]}")
            answered.append(response.status_code)


def _expected(products: dict[str, Decimal | None], operation: tuple[str, str, Decimal | None]) -> dict[str, Decimal | None]:
    kind, product_id, price = operation
    after = dict(products)
    if kind == "put":
        after[product_id] = price
    else:
        after.pop(product_id, None)
    return after


def _catalog(data_dir: Path, model_cache: Path) -> tuple[dict[str, Decimal | None], Workspace]:
    """Each product's price, as the data directory holds them now (and the workspace, to look further)."""
    workspace = Workspace(load_settings(data_dir, environ={}).with_overrides(model_cache_dir=str(model_cache)))
    with workspace.catalog.writer() as writer:
        product_ids = writer.product_ids_not_in(set())
    views = [workspace.catalog.product_by_id(product_id) for product_id in product_ids]
    return {view.product_id: view.sale_price for view in views if view is not None}, workspace


def _assert_index_matches_catalog(workspace: Workspace) -> None:
    index = workspace.open_index(workspace.generation())
    with workspace.catalog.writer() as writer:
        catalog_ids = set(writer.image_ids().tolist())
    found: set[int] = set()
    if len(index):
        _, ids = index.search(np.eye(index.dim, dtype=np.float32)[:1], len(index))
        found = set(ids[0][ids[0] >= 0].tolist())
    assert set(index.live_ids().tolist()) == found == catalog_ids


def kill_rounds(tmp_path: Path, model_cache: Path, image_server: str, rounds: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    cli(data_dir, model_cache, "import", str(write_catalog(tmp_path, 8)))
    products, workspace = _catalog(data_dir, model_cache)
    workspace.close()
    totals = {"kills": 0, "acknowledged": 0, "killed_mid_write": 0, "in_flight_applied": 0, "searches": 0, "killed_mid_compaction": 0}
    log_path = tmp_path / "server.log"
    log = open(log_path, "ab")
    for round_no in range(rounds):
        process, base = _start(data_dir, model_cache, log)
        stop, failures, answered = threading.Event(), [], []
        searchers = [threading.Thread(target=_searches, args=(base, stop, failures, answered)) for _ in range(2)]
        for thread in searchers:
            thread.start()
        in_flight: tuple[str, str, Decimal | None] | None = None
        acknowledged: list[tuple[str, str, Decimal | None]] = []

        def writes() -> None:
            nonlocal in_flight
            with httpx.Client(timeout=60) as client:
                for _ in range(1000):
                    existing = sorted(_replay(products, acknowledged))
                    if existing and rng.random() < 0.3:
                        operation: tuple[str, str, Decimal | None] = ("delete", rng.choice(existing), None)
                    else:
                        number = rng.randrange(900)
                        price = Decimal(rng.randrange(100, 99999)) / 100
                        record = product_record(number, [f"{image_server}/img/{rng.randrange(10_000)}.jpg"],
                                                price={"sale": str(price), "currency": "USD"}, ship_to=["US"])
                        operation = ("put", record["product_id"], price)
                    in_flight = operation
                    try:
                        if operation[0] == "put":
                            response = client.put(f"{base}/v1/products/{operation[1]}", json=record, headers=ADMIN)
                        else:
                            response = client.delete(f"{base}/v1/products/{operation[1]}", headers=ADMIN)
                    except httpx.HTTPError:
                        return  # killed while this one was in flight
                    if response.status_code != 200:
                        failures.append(f"{operation}: {response.status_code} {response.text[:300]}")
                        return
                    acknowledged.append(operation)
                    in_flight = None

        writer = threading.Thread(target=writes, daemon=True)
        writer.start()
        time.sleep(rng.uniform(0.05, 2.0))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        writer.join(timeout=60)
        stop.set()
        for thread in searchers:
            thread.join(timeout=60)
        assert not failures, (failures[:3], _errors_logged(log_path))

        found, workspace = _catalog(data_dir, model_cache)
        try:
            _assert_index_matches_catalog(workspace)
        finally:
            workspace.close()
        expected = _replay(products, acknowledged)
        if found != expected:
            assert in_flight is not None and found == _expected(expected, in_flight), f"round {round_no}: lost or half-applied writes"
            totals["in_flight_applied"] += 1
        products = found
        totals["killed_mid_write"] += in_flight is not None
        totals["killed_mid_compaction"] += any(path.name.startswith(".building-") for path in (data_dir / "index").iterdir())
        totals["kills"] += 1
        totals["acknowledged"] += len(acknowledged)
        totals["searches"] += len(answered)
    log.close()
    return totals


def _errors_logged(log_path: Path) -> str:
    """The server log's lines about failures (tracebacks included), for the assertion message."""
    lines = log_path.read_text(errors="replace").splitlines()
    marks = [number for number, line in enumerate(lines) if "Traceback" in line or '"status": 500' in line]
    return "\n".join(lines[marks[0]: marks[0] + 60]) if marks else "(nothing logged)"


def _replay(products: dict[str, Decimal | None], operations: list[tuple[str, str, Decimal | None]]) -> dict[str, Decimal | None]:
    for operation in operations:
        products = _expected(products, operation)
    return products


def test_sigkill_during_live_writes_under_searches(tmp_path: Path, model_cache: Path, image_server: str) -> None:
    totals = kill_rounds(tmp_path, model_cache, image_server, rounds=4, seed=7)
    print(totals)
    assert totals["kills"] == 4 and totals["acknowledged"] > 0 and totals["searches"] > 0


@pytest.mark.slow
def test_sigkill_during_live_writes_under_searches_many_times(tmp_path: Path, model_cache: Path, image_server: str) -> None:
    totals = kill_rounds(tmp_path, model_cache, image_server, rounds=60, seed=11)
    print(totals)
    assert totals["kills"] == 60 and totals["acknowledged"] > 0
