"""Where the products are in a photo, from the embedding network's own activations (no detector weights).

SCDA (Wei et al., 2017): sum the last feature map over its channels; the cells
above the map's mean (and above a share of its peak) are where the network sees
an object, and the connected group of them with the most activation is the main
subject.  Every sizeable group is one box of
a photo showing several products.  The network runs on the whole photo (its long
side :data:`LOCATE_SIDE` pixels, the aspect ratio kept, since it is fully
convolutional), one pass, so the boxes come in the photo's own coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

#: Long side of the photo the network looks at to locate things: 14 cells of 32 pixels at most.
LOCATE_SIDE = 448
#: The network's stride (EfficientNet-Lite: 32): the input is rounded to a multiple of it.
STRIDE = 32
#: Cells must also reach this share of the strongest one: a small product in a large photo leaves the map's mean
#: low, and the faint activations of the background's edges above it.
PEAK_SHARE = 0.2
#: A group of cells is a product of its own if it covers at least this share of the largest one.
MIN_GROUP_SHARE = 0.25
#: Boxes answered at most (the main subject first).
MAX_BOXES = 5
#: A box grows by this share of a cell on each side: the activations fade before the object's edge does.
MARGIN_CELLS = 0.5


#: A box as fractions of its image (left, top, right, bottom).
Share = tuple[float, float, float, float]
#: All of an image.
WHOLE: Share = (0.0, 0.0, 1.0, 1.0)


class Box(NamedTuple):
    """x, y, width, height in the photo's pixels."""

    x: int
    y: int
    width: int
    height: int

    @property
    def corners(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom): what ``Image.crop`` takes."""
        return self.x, self.y, self.x + self.width, self.y + self.height

    def share(self, size: tuple[int, int]) -> Share:
        """This box as fractions of a photo of ``size``."""
        left, top, right, bottom = self.corners
        return left / size[0], top / size[1], right / size[0], bottom / size[1]


def locate(image: Image.Image, feature_maps: Callable[[np.ndarray], np.ndarray], max_boxes: int = MAX_BOXES) -> list[Box]:
    """The boxes of the products in ``image``, the main subject first (largest activation mass).

    ``feature_maps`` runs the network on an NCHW batch of raw 0-255 pixels and returns its last map.
    """
    scale = LOCATE_SIDE / max(image.size)
    columns = max(1, round(image.width * scale / STRIDE))
    rows = max(1, round(image.height * scale / STRIDE))
    pixels = np.asarray(image.convert("RGB").resize((columns * STRIDE, rows * STRIDE), Image.Resampling.BILINEAR), dtype=np.float32)
    activation = np.asarray(feature_maps(np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])), dtype=np.float32)[0].sum(axis=0)
    return boxes_from_activation(activation, image.size, max_boxes)


def boxes_from_activation(activation: np.ndarray, size: tuple[int, int], max_boxes: int = MAX_BOXES) -> list[Box]:
    """The boxes of the strong groups of cells of a ``rows`` x ``columns`` activation map, in a photo of ``size``."""
    mask = (activation > max(float(activation.mean()), PEAK_SHARE * float(activation.max()))).astype(np.uint8)
    if not mask.any():  # a flat map (a blank photo): the whole photo is the subject
        return [Box(0, 0, size[0], size[1])]
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    groups = []
    for label in range(1, count):
        cells = labels == label
        groups.append((float(activation[cells].sum()), int(cells.sum()), cells))
    groups.sort(key=lambda group: group[0], reverse=True)
    largest = max(area for _, area, _ in groups)
    rows, columns = activation.shape
    cell_w, cell_h = size[0] / columns, size[1] / rows
    boxes = []
    for _, area, cells in groups:
        if area < MIN_GROUP_SHARE * largest and boxes:
            continue
        ys, xs = np.nonzero(cells)
        left = max(0.0, (xs.min() - MARGIN_CELLS) * cell_w)
        top = max(0.0, (ys.min() - MARGIN_CELLS) * cell_h)
        right = min(float(size[0]), (xs.max() + 1 + MARGIN_CELLS) * cell_w)
        bottom = min(float(size[1]), (ys.max() + 1 + MARGIN_CELLS) * cell_h)
        boxes.append(Box(round(left), round(top), max(1, round(right - left)), max(1, round(bottom - top))))
        if len(boxes) == max_boxes:
            break
    return boxes
