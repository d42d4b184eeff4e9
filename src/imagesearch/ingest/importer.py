"""The import pipeline: file -> validated rows -> image bytes -> blobs -> one atomic commit.

Phase 1 (slow, resumable): read and validate the rows a chunk at a time, fetch
every image, decode and embed only contents never seen before, and store those
as content-addressed blobs; what phase 2 needs of each row goes to a scratch
file, so a file of any size imports in bounded memory.  Blobs are a cache: nothing references them yet, so
the catalog a reader sees has not changed.
Phase 2 (fast, atomic): in one catalog transaction, upsert products (the file
read again), delete what ``--replace`` or ``delete`` removes, publish what that
changed in the index as the next generation, record the generation, commit.  A crash anywhere leaves either the old or the new catalog+index.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..catalog.base import Blob, CatalogWriter
from ..catalog.meta import EMBEDDER_KEY, GENERATION_KEY, LAST_WRITE_KEY
from ..catalog.readers import Row, RowError, iter_catalog_file
from ..catalog.records import validate_record
from ..errors import CatalogError, ImageSearchError, RequestError
from ..parts import Parts
from ..pricing.rates import RatesTable
from ..vision.decode import ORIGINAL_SIZE, decode_image, draft_side, thumbnail_jpeg
from .sources import FetchError, fetch_all, is_url, resolve_local

CHUNK_PRODUCTS = 64
CHANGED_DURING_IMPORT = "the catalog file changed while it was being imported; nothing was changed: import it again"
EMBED_BATCH = 16
#: Batches embedded at once (see :func:`_embed_new`).
EMBED_CONCURRENCY = 2
DECODE_THREADS = 2


class ImportRejected(ImageSearchError):
    """The file has invalid rows and ``skip_invalid`` was not given: nothing was changed."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = sorted(errors, key=lambda error: error.line)
        lines = "\n".join(error.describe() for error in self.errors[:50])
        more = f"\n... and {len(self.errors) - 50} more" if len(self.errors) > 50 else ""
        super().__init__(f"{len(self.errors)} invalid row(s); the catalog was not changed:\n{lines}{more}")


@dataclass
class ImportReport:
    """What an import did."""

    products_written: int = 0
    products_unchanged: int = 0
    products_deleted: int = 0
    images_added: int = 0
    images_removed: int = 0
    images_embedded: int = 0
    images_reused: int = 0
    rejected: list[RowError] = field(default_factory=list)
    generation: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "products_written": self.products_written,
            "products_unchanged": self.products_unchanged,
            "products_deleted": self.products_deleted,
            "images_added": self.images_added,
            "images_removed": self.images_removed,
            "images_embedded": self.images_embedded,
            "images_reused": self.images_reused,
            "rejected": len(self.rejected),
            "generation": self.generation,
            "seconds": round(self.seconds, 3),
        }


def _decode(parts: Parts, draft: int, data: bytes) -> tuple[Image.Image, bytes] | str:
    """Decoded image and thumbnail, or the reason the bytes are refused."""
    try:
        image = decode_image(data, parts.decode_limits, draft_size=draft)
    except RequestError as exc:
        return exc.message
    return image, thumbnail_jpeg(image)


def _embed_new(parts: Parts, contents: dict[str, bytes]) -> tuple[list[Blob], dict[str, str]]:
    """Decode, thumbnail and embed contents; returns blobs and per-sha decode errors.

    Decoding runs in a thread pool (Pillow releases the GIL) ahead of the
    embedder, so the CPU is busy with both at once.
    """
    embedder = parts.embedder
    draft = draft_side(embedder.input_size)
    failures: dict[str, str] = {}
    pending: list[tuple[str, Image.Image, bytes]] = []
    batches: list[Future[list[Blob]]] = []

    def embedded(batch: list[tuple[str, Image.Image, bytes]]) -> list[Blob]:
        vectors = embedder.embed([image for _, image, _ in batch])
        return [Blob(sha, *image.info.get(ORIGINAL_SIZE, image.size), thumb, vector)
                for (sha, image, thumb), vector in zip(batch, vectors, strict=True)]

    # Two batches are embedded at once: one's resizing and pooling (Python, one core) fill the pauses of the
    # other's network run, which keeps both cores busy (about 170 % of them with one batch at a time).
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool, ThreadPoolExecutor(max_workers=EMBED_CONCURRENCY) as embedding:
        decoded = pool.map(lambda item: (item[0], _decode(parts, draft, item[1])), contents.items())
        for sha, outcome in decoded:
            if isinstance(outcome, str):
                failures[sha] = outcome
                continue
            pending.append((sha, *outcome))
            if len(pending) >= EMBED_BATCH:
                batches.append(embedding.submit(embedded, pending))
                pending = []
        if pending:
            batches.append(embedding.submit(embedded, pending))
        blobs = [blob for batch in batches for blob in batch.result()]
    return blobs, failures


#: Where each phase reads the rows from, afresh: a catalog file is read twice rather than held in memory.
RowSource = Callable[[], Iterable[Row | RowError]]


def _chunks(items: Iterable[Row | RowError], size: int) -> Iterator[list[Row | RowError]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _prepare(parts: Parts, rows: RowSource, base_dir: Path, report: ImportReport, progress: bool, scratch: IO[str]) -> list[RowError]:
    """Phase 1: fetch, embed and store new contents, a chunk of rows at a time; returns the rejected rows.

    Each row ready for phase 2 leaves one line in ``scratch`` (its line
    number, product id, image sources and content hashes), so memory stays
    bounded whatever the size of the file.
    """
    errors: list[RowError] = []
    rates = parts.rates()
    bar = tqdm(unit="product", desc="import", disable=not progress)
    try:
        for chunk in _chunks(rows(), CHUNK_PRODUCTS):
            valid: list[Row] = []
            for item in chunk:
                refused = item if isinstance(item, RowError) else _unpriced(item, rates)
                if refused is None:
                    valid.append(item)  # type: ignore[arg-type]
                else:
                    errors.append(refused)
            fetched = fetch_all((ref for row in valid for ref in row.record.images), base_dir, parts.settings)
            hashes = {ref: hashlib.sha256(data).hexdigest() for ref, data in fetched.items() if isinstance(data, bytes)}
            known = parts.catalog.known_blobs(hashes.values())
            new_contents = {hashes[ref]: data for ref, data in fetched.items() if isinstance(data, bytes) and hashes[ref] not in known}
            blobs, failures = _embed_new(parts, new_contents)
            parts.catalog.store_blobs(blobs)
            report.images_embedded += len(blobs)
            report.images_reused += sum(1 for ref in hashes if hashes[ref] in known)
            for row in valid:
                problems = []
                for ref in row.record.images:
                    outcome = fetched[ref]
                    if isinstance(outcome, FetchError):
                        problems.append(str(outcome))
                    elif hashes[ref] in failures:
                        problems.append(f"image {ref!r}: {failures[hashes[ref]]}")
                if problems:
                    errors.append(RowError(row.line, "; ".join(problems), row.record.product_id, row.record.model_dump_json()))
                else:
                    sources = [ref if is_url(ref) else str(resolve_local(ref, base_dir)) for ref in row.record.images]
                    scratch.write(json.dumps([row.line, row.record.product_id, sources, [hashes[ref] for ref in row.record.images]]) + "\n")
            bar.update(len(chunk))
    finally:
        bar.close()
    return errors


def _unpriced(row: Row, rates: RatesTable) -> RowError | None:
    """The error of a row whose currency the rates table cannot convert, or None.

    A price that cannot be converted could not be shown in a shopper's
    currency, so it is refused here, naming the way to add rates.
    """
    currency = row.record.price.currency
    if currency in rates.rates:
        return None
    return RowError(
        row.line,
        f"price.currency: {currency} has no exchange rate in the rates table of {rates.date}; "
        "add one first with `imagesearch rates import FILE` (the ECB daily XML or our JSON)",
        row.record.product_id, row.record.model_dump_json(),
    )


def write_rejects(path: Path, errors: Sequence[RowError]) -> None:
    """One JSON object per rejected row: line, product_id, reason, and the row (as read, or as validated)."""
    with open(path, "w", encoding="utf-8") as handle:
        for error in sorted(errors, key=lambda item: item.line):
            handle.write(json.dumps({"line": error.line, "product_id": error.product_id, "reason": error.reason, "row": error.raw}, ensure_ascii=False) + "\n")


def commit_changes(parts: Parts, change: Callable[[CatalogWriter], tuple[list[int], list[int]]]) -> int:
    """Phase 2: run ``change`` in a catalog transaction and publish what it did to the index.

    ``change`` returns (image ids added, image ids removed).  Only images cost
    index writes: added vectors become a new segment, removed ids tombstones;
    a change that touches no image (a price, a title, shipping) writes no
    index bytes and keeps the generation.  Returns the generation in force.
    """
    with parts.catalog.writer() as writer:
        parts.check_embedder(writer.get_meta(EMBEDDER_KEY))
        generation = int(writer.get_meta(GENERATION_KEY, "0") or 0)
        added, removed = change(writer)
        writer.drop_unused_blobs()
        # A store that keeps filter labels hears of products whose shipping or categories changed (a new
        # generation for it); for the others such a change writes nothing.
        relabelled = sorted(writer.relabelled - set(added)) if parts.vectors.keeps_labels else []
        if added or removed or relabelled:
            parts.vectors.publish_delta(
                parts.index_state(generation), generation + 1, parts.embedder_identity,
                np.array(added, dtype=np.int64), writer.vectors_for, np.array(removed, dtype=np.int64),
                np.array(relabelled, dtype=np.int64), writer.image_labels,
            )
            record_generation(parts, writer, generation + 1)
            generation += 1
        writer.set_meta(LAST_WRITE_KEY, str(time.time()))
    parts.vectors.sweep(keep=generation)
    return generation


def record_generation(parts: Parts, writer: CatalogWriter, generation: int) -> None:
    """Make ``generation`` (already published by the index store) current when ``writer``'s transaction commits."""
    embedder = parts.embedder
    writer.set_meta(GENERATION_KEY, str(generation))
    writer.set_meta(EMBEDDER_KEY, f"{embedder.name} {embedder.version}")


def import_file(
    parts: Parts,
    path: Path,
    *,
    replace: bool = False,
    skip_invalid: bool = False,
    rejects_path: Path | None = None,
    file_format: str | None = None,
    images_root: Path | None = None,
    progress: bool = False,
) -> ImportReport:
    """Import a JSON Lines or CSV catalog file of any size; see the module docstring for the guarantees.

    Relative image paths are resolved against ``images_root`` (default: the
    file's folder) and may not leave it.  The file is read once per phase.
    """
    with parts.write_lock():
        return _import_rows(
            parts, lambda: iter_catalog_file(path, parts.settings.default_lang, file_format), images_root or path.parent,
            replace=replace, skip_invalid=skip_invalid, rejects_path=rejects_path, progress=progress,
        )


def embed_file(
    parts: Parts, path: Path, shard: tuple[int, int] = (0, 1), *, images_root: Path | None = None, file_format: str | None = None,
    progress: bool = False,
) -> ImportReport:
    """Phase 1 alone, for one shard of a file (rows whose position modulo ``shard[1]`` is ``shard[0]``): fetch, embed
    and store the images' contents, without the write lock and without changing what searches see.

    Bulk embedding scales out this way: N machines (or processes) sharing a
    PostgreSQL catalog each embed one shard; the ``import`` of the whole file
    then finds every content already embedded (content-addressed, so nothing
    is embedded twice) and only fetches, hashes and commits.
    """
    index, count = shard
    if not 0 <= index < count:
        raise CatalogError(f"shard {index}/{count}: the shard number must be at least 0 and below the number of shards")
    started = time.perf_counter()
    report = ImportReport()
    parts.check_embedder(parts.catalog.get_meta(EMBEDDER_KEY))
    rows = lambda: itertools.islice(iter_catalog_file(path, parts.settings.default_lang, file_format), index, None, count)  # noqa: E731
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=parts.data_dir, prefix=".embed-") as scratch:
        report.rejected = sorted(_prepare(parts, rows, images_root or path.parent, report, progress, scratch), key=lambda error: error.line)
    report.seconds = time.perf_counter() - started
    return report


def import_product(parts: Parts, data: object, wait: float = 0.0) -> ImportReport:
    """Insert or replace one product given as a JSON object (the live ``PUT`` of the HTTP API).

    Same validation and atomicity as a file import; images must be http(s) URLs.  ``wait``: seconds
    allowed for another write (or a compaction's swap) to finish before this one is refused.
    """
    try:
        record = validate_record(data, parts.settings.default_lang)
    except ValueError as exc:
        raise ImportRejected([RowError(1, str(exc))]) from None
    local = [image for image in record.images if not is_url(image)]
    if local:
        raise ImportRejected([RowError(1, f"images must be http(s) URLs here, not {local[0]!r}", record.product_id)])
    with parts.write_lock(wait=wait):
        return _import_rows(parts, lambda: [Row(1, record)], Path("/nonexistent"), replace=False, skip_invalid=False)


def _import_rows(
    parts: Parts,
    rows: RowSource,
    base_dir: Path,
    *,
    replace: bool,
    skip_invalid: bool,
    rejects_path: Path | None = None,
    progress: bool = False,
) -> ImportReport:
    """Phases 1 and 2 (the caller holds the write lock)."""
    started = time.perf_counter()
    report = ImportReport()
    parts.check_embedder(parts.catalog.get_meta(EMBEDDER_KEY))
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=parts.data_dir, prefix=".import-") as scratch:
        errors = _prepare(parts, rows, base_dir, report, progress, scratch)
        if errors and not skip_invalid:
            raise ImportRejected(errors)
        report.rejected = sorted(errors, key=lambda error: error.line)
        if rejects_path is not None and errors:
            write_rejects(rejects_path, report.rejected)
        keep = {error.product_id for error in errors if error.product_id}

        def change(writer: CatalogWriter) -> tuple[list[int], list[int]]:
            added: list[int] = []
            removed: list[int] = []
            scratch.seek(0)
            ready = (json.loads(line) for line in scratch)
            pending = next(ready, None)
            for item in rows():
                if pending is None:
                    break
                if isinstance(item, Row) and item.line == pending[0]:
                    if item.record.product_id != pending[1]:
                        raise CatalogError(CHANGED_DURING_IMPORT)
                    new, old = writer.upsert_product(item.record, pending[2], pending[3])
                    added.extend(new)
                    removed.extend(old)
                    keep.add(item.record.product_id)
                    report.products_written += 1
                    pending = next(ready, None)
            if pending is not None:
                raise CatalogError(CHANGED_DURING_IMPORT)
            report.products_unchanged = writer.unchanged
            report.products_written -= writer.unchanged
            if replace:
                deleted, images_gone = writer.delete_products(writer.product_ids_not_in(keep))
                report.products_deleted = len(deleted)
                removed.extend(images_gone)
            report.images_added, report.images_removed = len(added), len(removed)
            return added, removed

        report.generation = commit_changes(parts, change)
    report.seconds = time.perf_counter() - started
    return report


def delete_products(parts: Parts, product_ids: Sequence[str], wait: float = 0.0) -> ImportReport:
    """Remove products (and their vectors) by id, atomically; unknown ids are ignored (``wait``: as for :func:`import_product`)."""
    started = time.perf_counter()
    report = ImportReport()
    with parts.write_lock(wait=wait):

        def change(writer: CatalogWriter) -> tuple[list[int], list[int]]:
            deleted, images_gone = writer.delete_products(product_ids)
            report.products_deleted = len(deleted)
            report.images_removed = len(images_gone)
            return [], images_gone

        report.generation = commit_changes(parts, change)
    report.seconds = time.perf_counter() - started
    return report
