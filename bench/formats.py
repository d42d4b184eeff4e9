"""Phone photo formats: what decoding a query costs in each, and whether each embeds like its JPEG.

    python bench/formats.py                # 10 photos at 12 MP (4032 x 3024, a phone's), 5 rounds
    python bench/formats.py --side 2048    # smaller photos

Clothing-small test photos, enlarged to the side given (a phone photo's pixel count; enlarged photos
are smoother than real ones, so every format compresses them well), each saved as JPEG (q90), HEIC
(q80), AVIF (q70) and WebP (q85), then decoded as a query is (``decode_image`` at the embedder's
draft size: JPEG decodes reduced, the others at full size and are reduced after). Reported per
format: bytes, decode p50, and the cosine of each photo's vector to its JPEG's.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
from common import RESULTS, dataset_split, machine, today
from PIL import Image

from imagesearch.config import load_settings
from imagesearch.vision.decode import decode_image, draft_side
from imagesearch.workspace import Workspace

FORMATS = {"JPEG": {"quality": 90}, "HEIF": {"quality": 80}, "AVIF": {"quality": 70}, "WEBP": {"quality": 85}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--side", type=int, default=4032)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workspace = Workspace(load_settings(RESULTS / "formats-data").with_overrides(model_cache_dir=str(RESULTS / "models")))
    embedder = workspace.embedder
    draft = draft_side(embedder.input_size)
    size = (args.side, args.side * 3 // 4)
    encoded: dict[str, list[bytes]] = {name: [] for name in FORMATS}
    for path, _ in dataset_split("clothing-small", "test")[: args.photos]:
        photo = Image.open(path).convert("RGB").resize(size, Image.Resampling.BICUBIC)
        for name, options in FORMATS.items():
            buffer = io.BytesIO()
            photo.save(buffer, format=name, **options)
            encoded[name].append(buffer.getvalue())
    report: dict = {"date": today(), "machine": machine(), "photo_size": list(size), "formats": {}}
    vectors = {}
    for name, items in encoded.items():
        millis = []
        for _ in range(args.rounds):
            for data in items:
                started = time.perf_counter()
                decode_image(data, workspace.decode_limits, draft_size=draft)
                millis.append((time.perf_counter() - started) * 1000)
        vectors[name] = embedder.embed([decode_image(data, workspace.decode_limits, draft_size=draft) for data in items])
        report["formats"][name] = {"kB_median": round(float(np.median([len(data) for data in items])) / 1000, 1),
                                   "decode_ms_p50": round(float(np.median(millis)), 1)}
    for name in FORMATS:
        report["formats"][name]["cosine_to_jpeg_min"] = round(float((vectors[name] * vectors["JPEG"]).sum(axis=1).min()), 4)
        print(name, report["formats"][name], flush=True)
    workspace.close()
    (RESULTS / f"formats-{today()}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
