"""A data directory that cannot be written is served read-only: searches answer, writes get ReadOnly, /healthz says so.

The read-only and full-disk cases mount a small tmpfs (root only; skipped elsewhere).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import cli, jpeg_bytes, product_image, product_record, running_server, write_catalog

ADMIN = {"Authorization": "Bearer admin-secret"}


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (ns)."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*") if path.is_file()}


def check_read_only_service(base: str) -> None:
    """Searches answer their first page (saying why there is no cursor), writes get 503 ReadOnly, /healthz is degraded."""
    health = httpx.get(f"{base}/healthz", timeout=10).json()
    assert health["status"] == "degraded" and health["reasons"][0].startswith("serving read-only")
    files = {"file": ("q.jpg", jpeg_bytes(product_image(3)), "image/jpeg")}
    found = httpx.post(f"{base}/v1/search", files=files, data={"page_size": "2"}, timeout=30).json()
    assert found["products"][0]["product_id"] == "p003" and found["page"]["has_next"]
    assert found["next_start_row_key"] is None and any("read-only" in warning for warning in found["warnings"])
    record = product_record(50, [f"{base}/thumbnails/1.jpg"])
    for response in (httpx.put(f"{base}/v1/products/p050", json=record, headers=ADMIN, timeout=30),
                     httpx.delete(f"{base}/v1/products/p001", headers=ADMIN, timeout=30)):
        assert response.status_code == 503 and response.json()["error"]["code"] == "ReadOnly", response.text
    assert httpx.get(f"{base}/v1/products/p001", timeout=10).status_code == 200


def test_the_read_only_setting_serves_without_writing_to_the_catalog(tmp_path: Path, model_cache: Path) -> None:
    data_dir = tmp_path / "data"
    cli(data_dir, model_cache, "import", str(write_catalog(tmp_path, 6)))
    before = listing(data_dir)
    extra = {"IMAGESEARCH_READ_ONLY": "true", "IMAGESEARCH_ADMIN_TOKEN": "admin-secret", "IMAGESEARCH_ALLOW_PRIVATE_IMPORT_URLS": "true"}
    with running_server(data_dir, model_cache, extra) as (base, _):
        check_read_only_service(base)
    after = listing(data_dir)
    assert {name: after[name] for name in before} == before  # no migration, no sweep, nothing rewritten
    # nothing new but SQLite's own files for a reader beside a WAL database (no cursor store, no lock file)
    assert set(after) - set(before) <= {"catalog.sqlite-wal", "catalog.sqlite-shm"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB tmpfs (unmounted afterwards), or a skip where mounting is not allowed."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mountpoint)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.mark.parametrize("trouble", ["read-only file system", "full disk"])
def test_a_data_directory_that_cannot_be_written_starts_read_only(small_disk: Path, model_cache: Path, trouble: str) -> None:
    data_dir = small_disk / "data"
    cli(data_dir, model_cache, "import", str(write_catalog(small_disk, 6)))
    if trouble == "full disk":
        with open(small_disk / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * (1 << 20))
                    filler.flush()
            except OSError:
                pass
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    extra: dict[str, Any] = {"IMAGESEARCH_ADMIN_TOKEN": "admin-secret", "IMAGESEARCH_ALLOW_PRIVATE_IMPORT_URLS": "true"}
    with running_server(data_dir, model_cache, extra) as (base, _):
        check_read_only_service(base)
        assert any("MiB free" in reason or "not writable" in reason for reason in httpx.get(f"{base}/healthz", timeout=10).json()["reasons"])
