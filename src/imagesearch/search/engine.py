"""The search function the HTTP edge and the CLI call.

``SearchEngine.search(params)`` decodes and embeds the query image, asks the
index for neighbours, aggregates them to products, keeps those that ship to
the requested country, decides same/similar, sorts, stores the ranked list for
paging and returns one page.  A page request with ``start_row_key`` skips all
of that and cuts the page from the stored list.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Mapping

import numpy as np
from PIL import Image
from sqlalchemy.exc import OperationalError

from ..catalog.base import ProductView
from ..catalog.labels import filter_clauses
from ..catalog.meta import (
    CALIBRATION_KEY,
    EMBEDDER_KEY,
    FILTERS_KEY,
    GENERATION_KEY,
    LAST_WRITE_KEY,
)
from ..config import Settings
from ..errors import CatalogError, ErrorCode, RequestError
from ..i18n import pick_text
from ..index.base import IdSet, VectorIndex
from ..parts import Parts
from ..pricing.money import in_base
from ..pricing.rates import RATES_FILE, RatesTable
from ..vision.decode import ORIGINAL_SIZE, REGION_DRAFT_FACTOR, crop_region, decode_image, draft_side, in_original, thumbnail_jpeg
from ..vision.embedder import l2_normalize
from ..vision.subject import WHOLE, Box, Share, locate
from ..vision.verify import VERIFIER, LocalFeatures, best_inliers, extract, query_pair
from .params import DEFAULT_PAGE_SIZE, PARAM0_FIELDS, Region, SearchParams, parse_params
from .ranking import (
    SameThresholds,
    aggregate,
    background,
    collapse,
    same_candidates,
    select_same,
    select_similar,
    sort_items,
)
from .results import RankedItem, ResultSet, ResultStore

log = logging.getLogger("imagesearch.errors")
#: Neighbours fetched per query (images; several may belong to one product).
INITIAL_K = 400
#: Ship-to filters kept ready (one per country asked for recently).
FILTER_CACHE = 64
#: Local features of catalog thumbnails kept in memory for "same" verification.
FEATURE_CACHE = 4096
#: Longest side of a query photo's preview (:meth:`SearchEngine.preview`).
PREVIEW_SIDE = 1024


@dataclass(frozen=True)
class PageItem:
    """One product on a page, with why it matched (and every listing of the item, when collapsed)."""

    product: ProductView
    score: float
    image_id: int
    offers: tuple[ProductView, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """One index generation with the image -> product table read alongside it."""

    generation: int
    index: VectorIndex
    owners: np.ndarray
    same_thresholds: SameThresholds


@dataclass(frozen=True)
class SameEvidence:
    """Why a "same" search decided as it did."""

    ranked: list[RankedItem]
    candidates: list[RankedItem]
    inliers: dict[int, int]


@dataclass(frozen=True)
class SearchPage:
    """One page of a ranked result list, plus what is needed to render it."""

    items: list[PageItem]
    total_count: int
    page_no: int
    page_size: int
    next_start_row_key: str
    currency: str
    lang: str | None
    rates: RatesTable
    #: True when ``total_count`` is the service's cap, not every product that would match.
    capped: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    #: What the client should know about this answer (e.g. that no cursor could be stored).
    warnings: list[str] = field(default_factory=list)
    #: The box of the photo that was searched (x, y, width, height in its pixels), when a region or a crop was asked.
    region: tuple[int, int, int, int] | None = None
    #: The main subject the service located (x, y, width, height in the photo's pixels), when crop or groups was asked.
    subject: tuple[int, int, int, int] | None = None
    #: With ``groups``: one page (first page, its own cursor) per product located in the photo, its box as ``region``.
    groups: list[SearchPage] = field(default_factory=list)

    @property
    def page_count(self) -> int:
        return math.ceil(self.total_count / self.page_size) if self.total_count else 0

    @property
    def has_next(self) -> bool:
        return self.page_no < self.page_count


#: Times a snapshot is loaded again when writes keep replacing the generation being opened.
ATTEMPTS = 5


class SearchEngine:
    """Answers searches over one parts; safe to share between threads."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.results = ResultStore(parts.cursor_database(), self.settings.result_ttl_seconds, read_only=self.settings.read_only)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._rates: tuple[float, RatesTable] | None = None
        self._features: OrderedDict[int, LocalFeatures] = OrderedDict()
        self._filters: OrderedDict[str, tuple[str, IdSet]] = OrderedDict()
        # Local features (18 ms an image) are extracted on every core: OpenCV releases the GIL while it works.
        self._extractors = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="verify")

    # -- shared state, refreshed when an import publishes a new generation ----------

    def snapshot(self) -> Snapshot:
        """The index and image owners of the catalog's current generation (refreshed after writes).

        A new generation costs only what changed: segments already open are
        reused (a segment never changes), and the image -> product table is
        extended with the images added since (an image id is never reused).
        A catalog that cannot be searched (an index of another embedder, a
        missing generation) is ``CatalogUnavailable``, with the way out.
        """
        generation = self.parts.generation()
        with self._lock:
            if self._snapshot is None or self._snapshot.generation != generation:
                self._snapshot = self._load_snapshot(self._snapshot)
            return self._snapshot

    def _load_snapshot(self, previous: Snapshot | None) -> Snapshot:
        known = previous.owners if previous is not None else np.zeros(0, np.int64)
        for attempt in range(ATTEMPTS):
            try:
                generation, ids, owners = self.parts.catalog.owners_since(GENERATION_KEY, len(known) - 1)
                index = self.parts.open_index(generation, reuse=previous.index if previous else None)
                index.warm()
                break
            except CatalogError as exc:
                # A write may have replaced (and swept) the generation just read: read it again.
                if attempt == ATTEMPTS - 1 or self.parts.generation() == generation:
                    raise RequestError(ErrorCode.CatalogUnavailable, reason=str(exc)) from exc
        table = known
        if len(ids):
            table = np.full(int(ids.max()) + 1, -1, np.int64)
            table[: len(known)] = known
            table[ids] = owners
        return Snapshot(generation, index, table, same_thresholds_of(self.parts))

    def rates(self) -> RatesTable:
        """The rates table, re-read when ``rates import`` replaces it."""
        path = self.parts.data_dir / RATES_FILE
        stamp = path.stat().st_mtime if path.exists() else 0.0
        with self._lock:
            if self._rates is None or self._rates[0] != stamp:
                self._rates = (stamp, self.parts.rates())
            return self._rates[1]

    # -- the search itself -------------------------------------------------------

    def decode_query(self, data: bytes, param: str = "image") -> Image.Image:
        """Decode the query exactly as catalog images are decoded (``param`` names it in errors)."""
        return decode_image(data, self.parts.decode_limits, draft_size=draft_side(self.parts.embedder.input_size), param=param)

    def preview(self, data: bytes, param: str = "image") -> tuple[bytes, tuple[int, int]]:
        """The photo upright, as a JPEG of at most :data:`PREVIEW_SIDE` a side, and its upright size in pixels
        (what a ``region`` and the boxes answered are measured in): what a web page shows when its browser cannot
        decode the photo itself (HEIC, in most browsers)."""
        image = decode_image(data, self.parts.decode_limits, draft_size=PREVIEW_SIDE, param=param)
        return thumbnail_jpeg(image, PREVIEW_SIDE), image.info[ORIGINAL_SIZE]

    def embed_query(self, data: bytes, param: str = "image") -> tuple[Image.Image, np.ndarray]:
        """Decode the query as catalog images are decoded, and embed it."""
        image = self.decode_query(data, param)
        return image, self.parts.embedder.embed([image])[0]

    def _region_query(self, data: bytes, param: str, region: Region) -> tuple[Image.Image, tuple[int, int, int, int]]:
        """The caller's box of the photo, and that box in the photo's pixels.

        The photo is decoded larger than usual (a small box keeps its detail), then the box is cut out.
        """
        return crop_region(self._decode_large(data, param), region)

    def _decode_large(self, data: bytes, param: str) -> Image.Image:
        draft = draft_side(self.parts.embedder.input_size) * REGION_DRAFT_FACTOR
        return decode_image(data, self.parts.decode_limits, draft_size=draft, param=param)

    def locate(self, image: Image.Image) -> list[Box]:
        """The products in ``image`` (boxes in its pixels), main subject first, from the embedder's feature map
        (SubjectUnavailable without one)."""
        feature_maps = getattr(self.parts.embedder, "feature_maps", None)
        if feature_maps is None:
            raise RequestError(ErrorCode.SubjectUnavailable, model=self.parts.embedder.name)
        return locate(image, feature_maps)

    def _subject_share(self, image: Image.Image) -> Share | None:
        """The main subject of ``image`` as fractions of it, if the embedder can locate it."""
        if getattr(self.parts.embedder, "feature_maps", None) is None:
            return None
        return self.locate(image)[0].share(image.size)

    def _located_query(self, params: SearchParams, timings: dict[str, float]) -> tuple[Image.Image, Image.Image, list[Box]]:
        """The photo, the query (the main subject with ``crop``, else the photo) and the photo's products (timed as
        ``locate_ms``)."""
        photo = self._decode_large(params.image, params.image_param)  # type: ignore[arg-type]
        started = time.perf_counter()
        boxes = self.locate(photo)
        timings["locate_ms"] = (time.perf_counter() - started) * 1000
        image = photo.crop(boxes[0].corners) if self._crops(params) else photo
        return photo, image, boxes

    def _crops(self, params: SearchParams) -> bool:
        """Whether a photo search runs on the located main subject (the request's ``crop``, else ``subject_crop``)."""
        return params.region is None and params.text is None and (params.crop if params.crop is not None else self.settings.subject_crop)

    def _candidate_features(self, image_ids: list[int]) -> dict[int, LocalFeatures]:
        """Local features of catalog images, from their thumbnails (cached: an image id never changes content)."""
        with self._lock:
            missing = [image_id for image_id in image_ids if image_id not in self._features]
        thumbnails = self.parts.catalog.thumbnails(missing)
        found = dict(zip(thumbnails, self._extractors.map(lambda thumbnail: extract(decode_image(thumbnail)), thumbnails.values())))
        with self._lock:
            self._features.update(found)
            while len(self._features) > FEATURE_CACHE:
                self._features.popitem(last=False)
            return {image_id: self._features[image_id] for image_id in image_ids if image_id in self._features}

    def _filter(self, ship_to: str | None, category_id: str | None = None) -> IdSet | None:
        """The images of products that ship to ``ship_to`` and are in ``category_id``, as a filter searches
        apply inside the index (None: no filter).

        Cached per filter until a write changes what it selects (a product
        added, its ship_to, categories or images changed): a price change keeps them.
        """
        if ship_to is None and category_id is None:
            return None
        key = f"{ship_to or ''}/{category_id or ''}"
        version = self.parts.catalog.get_meta(FILTERS_KEY, "") or ""
        with self._lock:
            cached = self._filters.get(key)
            if cached is not None and cached[0] == version:
                self._filters.move_to_end(key)
                return cached[1]
        version, ids = self.parts.catalog.images_matching(ship_to, category_id)
        only = IdSet(ids, filter_clauses(ship_to, category_id))
        with self._lock:
            self._filters[key] = (version, only)
            while len(self._filters) > FILTER_CACHE:
                self._filters.popitem(last=False)
        return only

    @staticmethod
    def nearest(snapshot: Snapshot, vector: np.ndarray, k: int, only: IdSet | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest images (among ``only``'s ids): (cosines, ids), best first.

        A compact index finds candidates on its codes and re-ranks them on
        full-precision vectors, so the scores decisions read are exact cosines.
        """
        scores, ids = snapshot.index.search(vector[None, :], k, only=only)
        found = ids[0] >= 0
        return scores[0][found], ids[0][found]

    def _neighbours(self, snapshot: Snapshot, vector: np.ndarray, k: int, only: IdSet | None = None) -> list[RankedItem]:
        """Products ranked by their best image among the ``k`` nearest (among ``only``'s ids)."""
        scores, ids = self.nearest(snapshot, vector, k, only)
        return aggregate(scores, ids, snapshot.owners)

    def same_evidence(
        self, image: Image.Image, vector: np.ndarray, ship_to: str | None, exclude: frozenset[int] = frozenset()
    ) -> SameEvidence:
        """What the "same" decision looks at: the ranking, the candidates and their inliers.

        ``exclude`` (product keys) simulates a catalog without those products; calibration uses it.
        """
        return self._same_evidence(self.snapshot(), image, vector, self._filter(ship_to), exclude)

    def _same_evidence(
        self, snapshot: Snapshot, image: Image.Image, vector: np.ndarray, only: IdSet | None, exclude: frozenset[int],
        query_features: Future[LocalFeatures] | None = None, subject: Share | None = None, decide: SameThresholds | None = None,
    ) -> SameEvidence:
        """``subject``: where the product is in ``image``, when the search knows it already (a located box, the
        caller's ``region``: all of it); else it is located here (a network pass, 10-13 ms).  ``decide``: the rule
        the answer will be decided by; candidates it accepts on their lead alone are not verified (calibration,
        which tries many rules, verifies every candidate)."""
        settings = self.settings
        ranked = self._neighbours(snapshot, vector, min(len(snapshot.index), INITIAL_K))
        if exclude:
            ranked = [item for item in ranked if item.product_pk not in exclude]
        candidates = same_candidates(ranked, settings.same_candidates, settings.same_window, settings.same_min_score)
        if only is not None:  # the background stays the whole catalog's: only the answers must pass the filters
            candidates = [item for item in candidates if only.contains(item.image_id)]
        floor = background(ranked)
        unsettled = [item for item in candidates if decide is None or not decide.accepts(0, item.score - floor)]
        if not unsettled:
            return SameEvidence(ranked, candidates, {})
        # The query's features on one thread (its mirror image's follow from them); the candidates' meanwhile.
        direct = query_features or self._extractors.submit(extract, image)
        subject = subject or self._subject_share(image)
        features = self._candidate_features([item.image_id for item in unsettled])
        query = query_pair(direct.result(), subject)
        verified = [item for item in unsettled if item.image_id in features]
        # Matching (OpenCV, which lets go of the GIL) runs on every core too: 2 ms a candidate.
        counts = self._extractors.map(lambda item: best_inliers(query, features[item.image_id]), verified)
        return SameEvidence(ranked, candidates, {item.product_pk: count for item, count in zip(verified, counts)})

    def rank_same(
        self, image: Image.Image, vector: np.ndarray, ship_to: str | None, category_id: str | None = None, min_score: float | None = None,
        query_features: Future[LocalFeatures] | None = None, subject: Share | None = None,
    ) -> list[RankedItem]:
        """Products that are the same item as the query (see :mod:`.ranking` for the rule); ``query_features``: the
        extraction of ``image``'s local features, when it was started already; ``subject``: where the product is in
        ``image``, when known (see :meth:`_same_evidence`)."""
        snapshot = self.snapshot()  # one generation for both the evidence and the thresholds
        thresholds = snapshot.same_thresholds
        evidence = self._same_evidence(
            snapshot, image, vector, self._filter(ship_to, category_id), frozenset(), query_features, subject, thresholds
        )
        chosen = select_same(evidence.ranked, evidence.candidates, evidence.inliers, thresholds)
        return [item for item in chosen if item.score >= min_score] if min_score is not None else chosen

    def rank_similar(
        self, vector: np.ndarray, ship_to: str | None, category_id: str | None = None, min_score: float | None = None,
        exclude: frozenset[int] = frozenset(),
    ) -> list[RankedItem]:
        """The best look-alike products; the filters are applied inside the kNN, in one search.

        ``min_score`` replaces the service's ``similar_min_score`` floor; ``exclude`` leaves products out
        (the product a "more like this" starts from).
        """
        settings = self.settings
        snapshot = self.snapshot()
        k = min(len(snapshot.index), INITIAL_K)
        if not k:
            return []
        ranked = self._neighbours(snapshot, vector, k, self._filter(ship_to, category_id))
        if exclude:
            ranked = [item for item in ranked if item.product_pk not in exclude]
        return select_similar(ranked, settings.similar_min_score if min_score is None else min_score, settings.similar_cap)

    def parse(
        self,
        raw: Mapping[str, Any],
        *,
        image: bytes | None = None,
        image_param: str | None = None,
        fields: frozenset[str] = PARAM0_FIELDS,
    ) -> SearchParams:
        """Validate a request's options with this catalog's rates and limits (see :func:`.params.parse_params`)."""
        settings = self.settings
        return parse_params(
            raw, self.rates(), settings.default_currency, settings.max_image_bytes, image=image, image_param=image_param, fields=fields
        )

    def search(self, params: SearchParams) -> SearchPage:
        """Run a search (or serve a page of an earlier one, given ``start_row_key``).

        The query is a photo, a box of one (``region``), or a text (with a CLIP-family embedder).  Text-to-image
        cosines run far lower than image-to-image ones (0.2-0.35 for a good match with CLIP), so a text search has
        no score floor unless the request gives ``min_score``; it finds similar products only (the validator says so).
        """
        if params.start_row_key is not None:
            return self._page_from_cursor(params)
        if params.image is None and params.text is None:
            raise RequestError(ErrorCode.MissingImage, params.image_param)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        image, photo, box, boxes, crops, floor, early = None, None, None, [], [], params.min_score, None
        cropped = self._crops(params)  # the query is the photo's located main subject
        if params.text is not None:
            vector, floor = self._embed_text(params.text), 0.0 if floor is None else floor
        else:
            if params.region is not None:
                image, box = self._region_query(params.image, params.image_param, params.region)  # type: ignore[arg-type]
            elif params.groups or cropped:
                photo, image, boxes = self._located_query(params, timings)
                box = in_original(photo, boxes[0]) if cropped else None
            else:
                image = self.decode_query(params.image, params.image_param)  # type: ignore[arg-type]
            crops = [photo.crop(located.corners) for located in boxes] if photo is not None and params.groups else []
            # "same" needs the query's local features too: they are extracted beside the embedding, not after it.
            early = self._extractors.submit(extract, image) if params.search_type == "same" else None
            # The query and the groups' boxes (the first is the query itself with ``crop``) in one network run:
            # 1.5-3.7 ms less than a run for each (BENCHMARKS.md).
            vectors = self.parts.embedder.embed([image, *(crops[1:] if cropped else crops)])
            vector = vectors[0]
        timings["embed_ms"] = (time.perf_counter() - started) * 1000 - timings.get("locate_ms", 0.0)
        # Where the product is in the query when the search knows it already (``same`` verifies only its keypoints).
        subject = WHOLE if params.region is not None or cropped else boxes[0].share(photo.size) if photo is not None else None
        page = self._rank_and_page(params, image, vector, floor, timings, early, subject)
        groups = self._group_pages(params, photo, boxes, crops, vectors if cropped else vectors[1:], floor) if crops else []
        return replace(page, region=box, subject=in_original(photo, boxes[0]) if photo is not None and boxes else None, groups=groups)

    def _rank_and_page(
        self, params: SearchParams, image: Image.Image | None, vector: np.ndarray, floor: float | None, timings: dict[str, float],
        query_features: Future[LocalFeatures] | None = None, subject: Share | None = None,
    ) -> SearchPage:
        started = time.perf_counter()
        if params.search_type == "same" and image is not None:
            chosen = self.rank_same(image, vector, params.ship_to, params.category_id, floor, query_features, subject)
        else:
            chosen = self.rank_similar(vector, params.ship_to, params.category_id, floor)
        timings["rank_ms"] = (time.perf_counter() - started) * 1000
        return self._ranked_page(params, chosen, timings)

    def _group_pages(
        self, params: SearchParams, photo: Image.Image, boxes: list[Box], crops: list[Image.Image], vectors: np.ndarray,
        floor: float | None,
    ) -> list[SearchPage]:
        """One first page per located product, each searched on its own box of ``photo`` (``crops``, embedded as
        ``vectors``)."""
        first_page = replace(params, page_no=None)
        return [
            replace(self._rank_and_page(first_page, crop, vector, floor, {}, subject=WHOLE), region=in_original(photo, box))
            for crop, vector, box in zip(crops, vectors, boxes, strict=True)
        ]

    def _embed_text(self, text: str) -> np.ndarray:
        """``text`` in the photos' space, by the embedder's text tower (TextSearchUnavailable without one)."""
        embed_text = getattr(self.parts.embedder, "embed_text", None)
        if embed_text is None:
            raise RequestError(ErrorCode.TextSearchUnavailable, model=self.parts.embedder.name)
        return embed_text([text])[0]

    def similar_to(self, product: ProductView, params: SearchParams) -> SearchPage:
        """"More like this": products that look like ``product``'s main image, the product itself left out.

        The stored embedding is the query (nothing is decoded or embedded); the
        options (filters, sort, page, currency, language) are a search's.
        """
        timings: dict[str, float] = {}
        started = time.perf_counter()
        _, vectors = self.parts.catalog.vectors(list(product.image_ids[:1]))
        if not len(vectors):
            return self._ranked_page(params, [], timings)
        vector = l2_normalize(vectors[:1])[0]
        chosen = self.rank_similar(vector, params.ship_to, params.category_id, params.min_score, exclude=frozenset({product.pk}))
        timings["rank_ms"] = (time.perf_counter() - started) * 1000
        return self._ranked_page(params, chosen, timings)

    def _collapsed(self, chosen: list[RankedItem], price_key: Callable[[int], Decimal | None]) -> list[RankedItem]:
        """One result per item sold by several listings (see :func:`.ranking.collapse`)."""
        if len(chosen) < 2:
            return chosen
        ids, vectors = self.parts.catalog.vectors([item.image_id for item in chosen])
        row_of = {int(image_id): row for row, image_id in enumerate(ids.tolist())}
        matrix = np.zeros((len(chosen), vectors.shape[1] if len(vectors) else 1), np.float32)
        for index, item in enumerate(chosen):
            if item.image_id in row_of:  # (an image deleted meanwhile stays a zero row: it matches nothing)
                matrix[index] = vectors[row_of[item.image_id]]
        return collapse(chosen, l2_normalize(matrix), self.settings.collapse_min_score, price_key)

    def _ranked_page(self, params: SearchParams, chosen: list[RankedItem], timings: dict[str, float]) -> SearchPage:
        """Sort the chosen products as asked (collapsed, if asked), keep the list for paging, and render the asked page."""
        started = time.perf_counter()
        keys = self.parts.catalog.sort_keys([item.product_pk for item in chosen])
        chosen = [item for item in chosen if item.product_pk in keys]
        rates = self.rates()

        def price_key(pk: int) -> Decimal | None:
            return in_base(keys[pk].sale_price, keys[pk].currency, rates)

        if params.collapse:
            chosen = self._collapsed(chosen, price_key)
        ordered = sort_items(
            chosen,
            params.sort_type,
            params.sort_order,
            price_key=price_key,
            orders_key=lambda pk: keys[pk].volume,
            product_id_key=lambda pk: keys[pk].product_id,
        )
        page_size = params.page_size or DEFAULT_PAGE_SIZE
        result = ResultSet(
            items=ordered,
            search_type=params.search_type,
            currency=params.currency,
            lang=params.lang,
            ship_to=params.ship_to,
            sort_type=params.sort_type,
            sort_order=params.sort_order,
            page_size=page_size,
            capped=params.search_type == "similar" and len(ordered) >= self.settings.similar_cap,
        )
        timings["sort_ms"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        key, warnings = "", []
        if len(ordered) > page_size and self.results.read_only:
            warnings.append("the service runs read-only, so the next pages cannot be stored: "
                            "no next_start_row_key; ask for another page_no with the same search")
        elif len(ordered) > page_size:
            try:
                key = self.results.save(result)
            except OperationalError:  # a full or read-only disk: answer this page, without a cursor
                log.exception("the result list could not be stored for paging")
                warnings.append("the next pages could not be stored (the server's disk is full or read-only): "
                                "no next_start_row_key; ask for another page_no with the same search")
        timings["save_ms"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        page = self._page(result, key, params.page_no or 1, page_size, rates, timings)
        page.warnings.extend(warnings)
        timings["page_ms"] = (time.perf_counter() - started) * 1000
        return page

    def _page_from_cursor(self, params: SearchParams) -> SearchPage:
        assert params.start_row_key is not None
        key, page_no = params.start_row_key
        result = self.results.load(key)
        if result is None:
            raise RequestError(ErrorCode.ExpiredStartRowKey, "start_row_key", ttl=self.settings.result_ttl_seconds)
        page_size = params.page_size or result.page_size
        page_no = params.page_no or page_no
        return self._page(result, key, page_no, page_size, self.rates(), {})

    def _page(
        self,
        result: ResultSet,
        key: str,
        page_no: int,
        page_size: int,
        rates: RatesTable,
        timings: dict[str, float],
    ) -> SearchPage:
        start = (page_no - 1) * page_size
        slice_ = result.items[start : start + page_size]
        views = self.parts.catalog.products_by_pk(list(dict.fromkeys(pk for item in slice_ for pk in (item.product_pk, *item.offers))))
        items = [
            PageItem(views[item.product_pk], item.score, item.image_id, tuple(views[pk] for pk in item.offers if pk in views))
            for item in slice_ if item.product_pk in views
        ]
        total = len(result.items)
        has_next = page_no < math.ceil(total / page_size)
        return SearchPage(
            items=items,
            total_count=total,
            page_no=page_no,
            page_size=page_size,
            next_start_row_key=f"{key}:{page_no + 1}" if has_next and key else "",
            currency=result.currency,
            lang=result.lang,
            rates=rates,
            capped=result.capped,
            timings=timings,
        )

    def warm_up(self) -> None:
        """Load the index and the model, and run one embedding, so the first search is as fast as the others.

        A catalog that cannot be searched yet is not an error here: searches will say why.
        """
        try:
            self.snapshot()
        except RequestError:
            return
        self.parts.embedder.embed([Image.new("RGB", (64, 64), (255, 255, 255))])

    def match_images(self, product: ProductView, data: bytes, param: str) -> dict[int, float]:
        """How similar each image of ``product`` is to the photo ``data`` (cosine, clipped to [0, 1])."""
        _, vector = self.embed_query(data, param)
        ids, vectors = self.parts.catalog.vectors(list(product.image_ids))
        return {int(image_id): min(1.0, max(0.0, float(score))) for image_id, score in zip(ids, vectors @ vector, strict=True)}

    def categories(self, lang: str | None) -> list[dict[str, Any]]:
        """The catalog's categories in use, named in ``lang`` (falling back as titles do), with their product counts."""
        return [
            {"id": category.id, "level": level, "parent_id": parent, "name": pick_text(category.names, lang, self.settings.default_lang),
             "products": count}
            for category, level, parent, count in self.parts.catalog.category_tree()
        ]

    def overview(self) -> dict[str, Any]:
        """Counts, embedder, index, last write, rates and defaults: what ``/v1/catalog`` shows."""
        snapshot = self.snapshot()
        rates = self.rates()
        catalog = self.parts.catalog
        last = catalog.get_meta(LAST_WRITE_KEY)
        return {
            **catalog.counts(),
            "embedder": catalog.get_meta(EMBEDDER_KEY),
            "index": {
                "kind": snapshot.index.kind, "vectors": len(snapshot.index), "generation": snapshot.generation,
                "segments": snapshot.index.segment_count, "tombstones": snapshot.index.tombstone_count,
            },
            "last_write_at": iso_time(float(last)) if last else None,
            "rates": {"base": rates.base, "date": rates.date.isoformat(), "currencies": sorted(rates.rates)},
            "default_currency": self.settings.default_currency,
            "default_lang": self.settings.default_lang,
            "similar_cap": self.settings.similar_cap,
            # Whether /v1/search takes a text (the embedder has a text tower): the web page shows its text box then.
            "text_search": hasattr(self.parts.embedder, "embed_text"),
        }

    def close(self) -> None:
        self.results.close()
        self._extractors.shutdown(wait=False)


def same_thresholds_of(parts: Parts) -> SameThresholds:
    """The catalog's own calibration (``imagesearch calibrate``) if any, else the settings."""
    return same_thresholds_from(parts.catalog.get_meta(CALIBRATION_KEY), parts.settings)


def same_thresholds_from(stored: str | None, settings: Settings) -> SameThresholds:
    """The calibration ``stored`` in the catalog, if there is one this verifier can use, else the settings'."""
    if stored:
        calibrated = SameThresholds.from_json(stored)
        if calibrated.verifier == VERIFIER:
            return calibrated
        # Inlier counts of another verifier (an older version's ORB) mean nothing to this one: the settings apply
        # until `imagesearch calibrate` runs again (`imagesearch info` says so).
    return SameThresholds(settings.same_min_inliers, settings.same_margin, joint_inliers=settings.same_joint_inliers,
                          joint_margin=settings.same_joint_margin)


def iso_time(epoch: float) -> str:
    """An instant as ISO 8601 in UTC, to the second: ``2026-11-29T13:07:31Z``."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
