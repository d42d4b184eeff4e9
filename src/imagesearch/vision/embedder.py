"""The embedder interface: images in, L2-normalised float32 vectors out.

An embedder is identified by ``name`` and ``version``; both are stored with the
index, because vectors from two embedders are not comparable.  Any object with
these attributes and an ``embed`` method can be plugged in by configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image


class Embedder(Protocol):
    """What the search pipeline needs from an image model."""

    name: str
    version: str
    dim: int
    #: Side the embedder resizes to; decoders may draft-decode down to it.
    input_size: int

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Return an ``(len(images), dim)`` float32 array of unit-length rows."""
        ...


class TextEmbedder(Embedder, Protocol):
    """An embedder with a text tower (CLIP-family): texts land in the photos' space, so a text can search them."""

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array of unit-length rows."""
        ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
