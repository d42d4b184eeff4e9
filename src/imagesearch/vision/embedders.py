"""Embedders by name, as configuration chooses them (``embedder``; default ``efficientnet``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import Settings, choose_backend
from ..errors import ImageSearchError
from .efficientnet import EfficientNetLiteEmbedder, EfficientNetSettings
from .embedder import Embedder
from .onnx_model import OnnxEmbedder, OnnxModelSettings, parse_triple


def _efficientnet(settings: Settings) -> Embedder:
    return EfficientNetLiteEmbedder(
        EfficientNetSettings(
            model=settings.model,
            resize=settings.resize,
            flip=settings.flip,
            trim=settings.trim,
            pooling=settings.pooling,
            input_size=settings.input_size,
            precision=settings.precision,  # type: ignore[arg-type]
            colour=settings.colour,
        ),
        cache_dir=Path(settings.model_cache_dir) if settings.model_cache_dir else settings.data_dir / "models",
        threads=settings.threads,
    )


def _onnx(settings: Settings) -> Embedder:
    return OnnxEmbedder(
        OnnxModelSettings(
            path=Path(settings.onnx_model).expanduser(),
            input_size=settings.onnx_input_size,
            mean=parse_triple(settings.onnx_mean, "onnx_mean"),
            std=parse_triple(settings.onnx_std, "onnx_std"),
            pooling=settings.onnx_pooling,
            resize=settings.resize,
            flip=settings.flip,
            trim=settings.trim,
        ),
        threads=settings.threads,
    )


def _clip(settings: Settings) -> Embedder:
    from .clip_model import ClipEmbedder, ClipSettings  # transformers and torch are loaded only for this embedder

    if not settings.clip_model:
        raise ImageSearchError('embedder = clip needs clip_model: the folder of a CLIP model saved by transformers (see the README)')
    return ClipEmbedder(
        ClipSettings(path=Path(settings.clip_model).expanduser(), resize=settings.resize, flip=settings.flip, trim=settings.trim),
        threads=settings.threads,
    )


#: Each embedder, built from the settings.
BACKENDS: dict[str, Callable[[Settings], Embedder]] = {"efficientnet": _efficientnet, "onnx": _onnx, "clip": _clip}


def open_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings.embedder`` names."""
    return choose_backend("embedder", BACKENDS, settings)
