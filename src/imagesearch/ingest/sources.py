"""Catalog image bytes from local paths and http(s) URLs.

Local paths are resolved against the folder of the catalog file and must stay
inside it (a catalog file cannot make the service read ``/etc/passwd``).  URLs
go through the service's one fetcher (``fetcher.py``): concurrent, retried with
backoff for transient failures, capped in size and time, and refused when they
point to a non-public address unless ``allow_private_import_urls`` is set.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..config import Settings
from ..fetcher import FetchPolicy, fetch_many


class FetchError(Exception):
    """An image that could not be obtained; the message says why."""


def is_url(reference: str) -> bool:
    return reference.lower().startswith(("http://", "https://"))


def resolve_local(reference: str, base_dir: Path) -> Path:
    """The file ``reference`` names, relative to ``base_dir``; refused if it escapes it."""
    if reference.startswith("file://"):
        reference = reference[len("file://") :]
    base = base_dir.resolve()
    path = (base / reference).resolve()
    if path != base and base not in path.parents:
        raise FetchError(f"image path {reference!r} is outside the catalog file's folder {base}")
    return path


def read_local(reference: str, base_dir: Path, max_bytes: int) -> bytes:
    path = resolve_local(reference, base_dir)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FetchError(f"image {reference!r} is {size} bytes; the limit is {max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise FetchError(f"image file {reference!r} not found (looked in {path.parent})") from None
    except IsADirectoryError:
        raise FetchError(f"image path {reference!r} is a folder, not a file") from None
    except PermissionError:
        raise FetchError(f"image file {reference!r} cannot be read (permission denied)") from None


def fetch_all(references: Iterable[str], base_dir: Path, settings: Settings) -> dict[str, bytes | FetchError]:
    """Bytes (or the error) for every distinct reference."""
    distinct = list(dict.fromkeys(references))
    results: dict[str, bytes | FetchError] = {}
    for reference in distinct:
        if not is_url(reference):
            try:
                results[reference] = read_local(reference, base_dir, settings.max_image_bytes)
            except FetchError as exc:
                results[reference] = exc
    urls = [reference for reference in distinct if is_url(reference)]
    for url, outcome in fetch_many(urls, FetchPolicy.for_imports(settings), settings.fetch_concurrency):
        results[url] = outcome if isinstance(outcome, bytes) else FetchError(f"image {outcome.message}")
    return results
