"""Rebuilding the index from the catalog, optionally re-embedding every image.

Plain ``reindex`` rebuilds the vector index from the embeddings stored in the
catalog (to change index structure or repair a lost index).  ``re_embed``
recomputes every embedding with the configured embedder, from each image's
source when it can still be read, else from the stored thumbnail, and then
rebuilds; the catalog then records the new embedder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..catalog.meta import EMBEDDER_KEY, GENERATION_KEY
from ..errors import RequestError
from ..parts import Parts
from ..vision.decode import decode_image, draft_side
from .importer import record_generation
from .sources import fetch_all

RE_EMBED_BATCH = 64


@dataclass
class ReindexReport:
    vectors: int = 0
    re_embedded: int = 0
    from_thumbnail: int = 0
    generation: int = 0
    index_kind: str = ""
    seconds: float = 0.0


def _re_embed(parts: Parts, report: ReindexReport, progress: bool) -> dict[str, np.ndarray]:
    embedder = parts.embedder
    catalog = parts.catalog
    shas = catalog.all_blob_shas()
    embeddings: dict[str, np.ndarray] = {}
    for start in tqdm(range(0, len(shas), RE_EMBED_BATCH), desc="re-embed", unit="batch", disable=not progress):
        batch = shas[start : start + RE_EMBED_BATCH]
        sources = {sha: catalog.sources_of(sha) for sha in batch}
        fetched = fetch_all((refs[0] for refs in sources.values() if refs), Path('/'), parts.settings)
        images = []
        for sha in batch:
            refs = sources[sha]
            data = fetched.get(refs[0]) if refs else None
            image = _decode_or_none(data if isinstance(data, bytes) else None, parts, embedder.input_size)
            if image is None:
                report.from_thumbnail += 1
                image = _decode_or_none(catalog.thumbnail_by_sha(sha), parts, embedder.input_size)
            images.append(image)
        vectors = embedder.embed([image for image in images if image is not None])
        for sha, vector in zip([sha for sha, image in zip(batch, images) if image is not None], vectors):
            embeddings[sha] = vector
    report.re_embedded = len(embeddings)
    return embeddings


def _decode_or_none(data: bytes | None, parts: Parts, input_size: int) -> Image.Image | None:
    if data is None:
        return None
    try:
        return decode_image(data, parts.decode_limits, draft_size=draft_side(input_size))
    except RequestError:
        return None


def reindex(parts: Parts, *, re_embed: bool = False, progress: bool = False) -> ReindexReport:
    """Rebuild (and optionally re-embed) atomically, as a new index generation."""
    started = time.perf_counter()
    report = ReindexReport()
    with parts.write_lock():
        if not re_embed:
            parts.check_embedder(parts.catalog.get_meta(EMBEDDER_KEY))
        embeddings = _re_embed(parts, report, progress) if re_embed else {}
        with parts.catalog.writer() as writer:
            generation = int(writer.get_meta(GENERATION_KEY, "0") or 0)
            if embeddings:
                writer.replace_embeddings(embeddings)
            base = parts.vectors.build_base(parts.embedder_identity, writer.image_ids(), writer.vectors_for, labels=writer.image_labels)
            state = parts.vectors.publish_base(generation + 1, parts.embedder_identity, base)
            record_generation(parts, writer, generation + 1)
            writer.drop_unused_blobs(everything=True)
        parts.vectors.sweep(keep=generation + 1)
        report.vectors = state.count
        report.index_kind = str(parts.vectors.describe(state)["kind"])
    report.generation = generation + 1
    report.seconds = time.perf_counter() - started
    return report
