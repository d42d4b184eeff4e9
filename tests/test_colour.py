"""The colour signature appended to the default embedder's vectors: what it measures, and what it changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from imagesearch.config import ConfigError, load_settings
from imagesearch.errors import ImageSearchError
from imagesearch.vision.colour import DIM, signature
from imagesearch.vision.efficientnet import FEATURE_DIM, EfficientNetLiteEmbedder, EfficientNetSettings
from imagesearch.vision.preprocess import fit_square
from imagesearch.vision.synthetic import product_image


def middle(image: Image.Image) -> Image.Image:
    return fit_square(image, 64, "inner", Image.Resampling.NEAREST)


def swapped(image: Image.Image) -> Image.Image:
    """The same picture in other colours (red and blue exchanged): same shapes, same texture."""
    red, green, blue = image.split()
    return Image.merge("RGB", (blue, green, red))


def test_a_signature_is_a_unit_histogram_that_tells_colours_apart() -> None:
    product = product_image(5)
    own = signature(middle(product))
    assert own.shape == (DIM,) and abs(float(np.linalg.norm(own)) - 1) < 1e-5 and (own >= 0).all()
    assert float(own @ signature(middle(product.resize((150, 150))))) > 0.9  # the size does not matter
    assert float(own @ signature(middle(ImageEnhance.Brightness(product).enhance(1.2)))) > 0.7  # nor a little more light
    assert float(own @ signature(middle(swapped(product)))) < 0.5  # other colours do


@pytest.fixture(scope="module")
def embedders(model_cache: Path) -> dict[float, EfficientNetLiteEmbedder]:
    return {weight: EfficientNetLiteEmbedder(EfficientNetSettings(colour=weight), model_cache) for weight in (0.0, 0.2)}


def test_the_signature_is_part_of_the_embedder_s_vector_and_version(embedders: dict[float, EfficientNetLiteEmbedder]) -> None:
    plain, coloured = embedders[0.0], embedders[0.2]
    assert (plain.dim, coloured.dim) == (FEATURE_DIM, FEATURE_DIM + DIM)
    assert "colour" not in plain.version and coloured.version.endswith(";colour=0.2")  # a catalog of one is refused by the other
    vectors = coloured.embed([product_image(1), product_image(2)])
    assert vectors.shape == (2, FEATURE_DIM + DIM) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # The network's part is the plain embedder's vector, scaled: the signature is appended, nothing else changes.
    assert np.allclose(vectors[:, :FEATURE_DIM] / np.linalg.norm(vectors[:, :FEATURE_DIM], axis=1, keepdims=True),
                       plain.embed([product_image(1), product_image(2)]), atol=1e-5)


def test_the_same_product_in_other_colours_falls_behind(embedders: dict[float, EfficientNetLiteEmbedder]) -> None:
    """A photo of a red product scores its red listing further ahead of the same design in blue with the signature."""
    product = product_image(8)
    query = product.resize((180, 180)).rotate(4, fillcolor=(255, 255, 255))
    gaps = {}
    for weight, embedder in embedders.items():
        own, other, asked = embedder.embed([product, swapped(product), query])
        gaps[weight] = float(asked @ own - asked @ other)
    assert gaps[0.2] > gaps[0.0] + 0.01


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_colour_weight_out_of_range_is_refused(weight: float, tmp_path: Path, model_cache: Path) -> None:
    with pytest.raises(ConfigError, match="colour must be between 0"):
        load_settings(tmp_path, environ={"IMAGESEARCH_COLOUR": str(weight)})
    with pytest.raises(ImageSearchError, match="colour must be between 0"):
        EfficientNetLiteEmbedder(EfficientNetSettings(colour=weight), model_cache)
