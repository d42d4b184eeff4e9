"""A CLIP-family model from a local folder: photos and texts embedded into one space.

Chosen by ``embedder = "clip"`` and ``clip_model = "/path/to/folder"``, a
folder in Hugging Face transformers' format (``config.json``, the weights and
the tokenizer, as ``save_pretrained`` writes them; the README says how to get
one where the internet is available).  Nothing is downloaded: the folder is
read with ``local_files_only``.  Photos go through the same frame trimming,
views and mirror averaging as with the default embedder; texts through the
model's text tower, which is what makes ``text`` searches possible.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ImageSearchError
from .efficientnet import file_digest
from .embedder import l2_normalize
from .preprocess import embed_views, parse_views

#: OpenAI CLIP's pixel normalisation, used when the folder has no preprocessor_config.json saying otherwise.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ClipSettings:
    path: Path
    resize: str = "crop"
    flip: bool = True
    trim: bool = True


def _tensor_of(output: Any) -> Any:
    """transformers 4 returns the projected features as a tensor; 5 wraps them in an output object."""
    return output if hasattr(output, "numpy") else output.pooler_output


class ClipEmbedder:
    """Image and text embeddings of a local CLIP-family model (see the module's docstring)."""

    def __init__(self, settings: ClipSettings, threads: int = 0) -> None:
        try:
            import torch
            from transformers import AutoTokenizer, CLIPModel
        except ModuleNotFoundError as exc:
            raise ImageSearchError(f"embedder = clip needs transformers: pip install 'imagesearch[clip]' ({exc})") from None
        path = settings.path
        weights = sorted(item for item in path.glob("*") if item.suffix in WEIGHT_SUFFIXES) if path.is_dir() else []
        if not (path / "config.json").is_file() or not weights:
            raise ImageSearchError(
                f"clip_model {str(path)!r} is not a model folder (config.json and weights, as transformers' save_pretrained writes them)"
            )
        self.views = parse_views(settings.resize)
        try:
            self._model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as exc:  # transformers raises many types for a folder it cannot read
            raise ImageSearchError(f"clip_model {str(path)!r} cannot be loaded as a CLIP model: {str(exc).splitlines()[0][:300]}") from None
        self._torch = torch
        torch.set_num_threads(threads or (os.cpu_count() or 1))
        self.settings = settings
        self.input_size = int(self._model.config.vision_config.image_size)
        mean, std = _normalisation(path)
        self._mean = np.array(mean, np.float32).reshape(1, 3, 1, 1) * 255.0
        self._scale = 1.0 / (np.array(std, np.float32).reshape(1, 3, 1, 1) * 255.0)
        self._max_tokens = int(self._model.config.text_config.max_position_embeddings)
        self.dim = int(self._model.config.projection_dim)
        digest = hashlib.sha256("".join(file_digest(item) for item in weights).encode()).hexdigest()[:16]
        self.name = f"clip:{path.name}"
        self.version = (
            f"sha={digest};input={self.input_size};mean={','.join(f'{v:g}' for v in mean)};std={','.join(f'{v:g}' for v in std)};"
            f"resize={','.join(self.views)};trim={'frames' if settings.trim else 0};flip={int(settings.flip)}"
        )
        self._pool = ThreadPoolExecutor(max_workers=threads or (os.cpu_count() or 1), thread_name_prefix="preprocess")

    def _features(self, batch: np.ndarray) -> np.ndarray:
        pixels = self._torch.from_numpy(((batch - self._mean) * self._scale).astype(np.float32))
        with self._torch.inference_mode():
            return _tensor_of(self._model.get_image_features(pixel_values=pixels)).float().numpy()

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed a batch of photos; returns unit rows, one per image."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return embed_views(images, self._features, self.input_size, self.views, self.settings.flip, self.settings.trim, self._pool)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts into the photos' space; returns unit rows, one per text."""
        tokens = self._tokenizer(list(texts), padding=True, truncation=True, max_length=self._max_tokens, return_tensors="pt")
        with self._torch.inference_mode():
            return l2_normalize(_tensor_of(self._model.get_text_features(**tokens)).float().numpy())


def _normalisation(path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The pixel mean and std the folder's preprocessor_config.json declares, else OpenAI CLIP's."""
    config = path / "preprocessor_config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if len(data.get("image_mean", [])) == 3 and len(data.get("image_std", [])) == 3:
            return tuple(map(float, data["image_mean"])), tuple(map(float, data["image_std"]))
    return CLIP_MEAN, CLIP_STD
