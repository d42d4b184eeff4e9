"""Fetching catalog image bytes from local paths and http(s) URLs.

Local paths are resolved against the folder of the catalog file and must stay
inside it (a catalog file cannot make the service read ``/etc/passwd``).  URLs
are downloaded concurrently with a timeout, retries with backoff for transient
failures (connection errors, 429, 5xx) and a size cap enforced while streaming.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..config import Settings


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = 20.0
    retries: int = 2
    concurrency: int = 16
    max_bytes: int = 10 * 1024 * 1024

    @classmethod
    def of(cls, settings: Settings) -> FetchSettings:
        """The fetch limits of the service's settings."""
        return cls(settings.fetch_timeout, settings.fetch_retries, settings.fetch_concurrency, settings.max_image_bytes)


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


async def _download(client: httpx.AsyncClient, url: str, settings: FetchSettings) -> bytes:
    last: str = ""
    for attempt in range(settings.retries + 1):
        if attempt:
            await asyncio.sleep(min(4.0, 0.25 * 2**attempt) * (0.5 + random.random()))
        try:
            async with client.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    last = f"HTTP {response.status_code}"
                    continue
                if response.status_code != 200:
                    raise FetchError(f"image URL {url} answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > settings.max_bytes:
                    raise FetchError(f"image URL {url} is {declared} bytes; the limit is {settings.max_bytes}")
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    if total > settings.max_bytes:
                        raise FetchError(f"image URL {url} is larger than the limit of {settings.max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
    raise FetchError(f"image URL {url} failed after {settings.retries + 1} attempts ({last})")


async def _download_all(urls: list[str], settings: FetchSettings) -> dict[str, bytes | FetchError]:
    semaphore = asyncio.Semaphore(settings.concurrency)
    limits = httpx.Limits(max_connections=settings.concurrency)
    results: dict[str, bytes | FetchError] = {}
    async with httpx.AsyncClient(timeout=settings.timeout, follow_redirects=True, limits=limits) as client:

        async def one(url: str) -> None:
            async with semaphore:
                try:
                    results[url] = await _download(client, url, settings)
                except FetchError as exc:
                    results[url] = exc
                except httpx.HTTPError as exc:
                    results[url] = FetchError(f"image URL {url}: {exc}")

        await asyncio.gather(*(one(url) for url in urls))
    return results


def fetch_all(references: Iterable[str], base_dir: Path, settings: FetchSettings) -> dict[str, bytes | FetchError]:
    """Bytes (or the error) for every distinct reference."""
    distinct = list(dict.fromkeys(references))
    results: dict[str, bytes | FetchError] = {}
    for reference in distinct:
        if not is_url(reference):
            try:
                results[reference] = read_local(reference, base_dir, settings.max_bytes)
            except FetchError as exc:
                results[reference] = exc
    urls = [reference for reference in distinct if is_url(reference)]
    if urls:
        results.update(asyncio.run(_download_all(urls, settings)))
    return results
